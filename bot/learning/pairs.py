"""The questions customers asked a person and what the agents answered, from resolved conversations.

A conversation counts when the bot handed it off and an agent resolved it. Its messages are read in order:
the customer's messages before an agent's reply (what they asked the bot, and wrote while waiting) are one
question, the agent's messages up to the customer's next question are its answer. Greetings, thanks,
goodbyes and "a person, please" are not questions or answers: the intent layer tells (a message it would
answer with a conversational intent, or hand off as one, is skipped), and so are the console's canned
responses an agent sent (its greeting, "anything else?"). Personal data in both becomes
placeholders (bot/learning/placeholders.py) before anything leaves this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bot.learning.placeholders import mask
from bot.nlu.language import detect_language
from bot.nlu.normalize import has_words
from bot.nlu.policy import Decision
from bot.storage.database import Database
from bot.storage.models import Agent, Conversation, Customer, Message

MAX_PAIR_CHARS = 1000  # a question or answer longer than this is a conversation, not an FAQ entry


@dataclass(frozen=True)
class Turn:
    """One message of a resolved conversation, as the learning side needs it."""

    conversation_id: int
    sender: str  # customer / agent
    text: str


@dataclass(frozen=True)
class Pair:
    """One question and the agent's answer to it, personal data replaced by placeholders."""

    conversation_id: int
    question: str  # masked
    question_language: str
    answer: str  # masked
    answer_language: str
    raw_question: str  # as written, for the intent layer and the embeddings only; never shown


@dataclass
class History:
    """The resolved conversations' messages, and the names each conversation knows (to mask)."""

    turns: list[Turn]
    names: dict[int, list[str]]  # conversation id -> customer and agent names
    languages: dict[int, str | None]


async def load_history(database: Database, since: datetime, limit: int) -> History:
    """Customer and agent messages of the (at most `limit`) latest handed-off conversations resolved since."""
    async with database.session() as session:
        rows = await session.execute(
            select(Conversation.id, Conversation.language, Customer.display_name, Customer.username)
            .join(Customer, Customer.id == Conversation.customer_id)
            .where(
                Conversation.handoff_at.is_not(None),
                Conversation.resolved_at.is_not(None),
                Conversation.resolved_at >= since,
            )
            .order_by(Conversation.resolved_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
        names: dict[int, list[str]] = {}
        languages: dict[int, str | None] = {}
        for conversation_id, language, display_name, username in rows:
            names[conversation_id] = [n for n in (display_name, username) if n]
            languages[conversation_id] = language
        messages = await session.execute(
            select(Message.conversation_id, Message.sender, Message.text, Agent.name)
            .outerjoin(Agent, Agent.id == Message.agent_id)
            .where(
                Message.conversation_id.in_(list(names)),
                Message.sender.in_(("customer", "agent")),
            )
            .order_by(Message.conversation_id, Message.id)
        )
        turns = []
        for conversation_id, sender, text, agent_name in messages:
            if agent_name:
                names[conversation_id].append(agent_name)
            if text and has_words(text):
                turns.append(Turn(conversation_id, sender, text.strip()))
    return History(turns, names, languages)


def _language(text: str, fallback: str | None, languages: Sequence[str]) -> str:
    detected = detect_language(text)[0]
    if detected is not None and detected in languages:
        return detected
    return fallback if fallback is not None and fallback in languages else languages[0]


def canned_patterns(texts: Sequence[str]) -> list[re.Pattern[str]]:
    """Patterns for the console's canned responses, their {agent} and {customer} standing for any name."""
    patterns = []
    for text in texts:
        parts = re.split(r"\{(?:agent|customer)\}", " ".join(text.split()))
        patterns.append(re.compile(r".{1,80}?".join(re.escape(part) for part in parts), re.IGNORECASE))
    return patterns


def pair_up(
    history: History,
    decisions: dict[str, Decision],
    languages: Sequence[str],
    canned: Sequence[re.Pattern[str]] = (),
) -> list[Pair]:
    """Pair each conversation's questions with the agents' answers (see the module docstring).

    `decisions` holds the intent layer's decision for every turn's text; a turn decided as a conversational
    intent (respond, or a handoff such as human_request) is no question and no answer. An agent's message
    that is one of the console's canned responses (`canned`: a greeting, "anything else?") is no answer.
    """
    pairs: list[Pair] = []
    question: list[Turn] = []
    answer: list[Turn] = []

    def flush() -> None:
        if question and answer:
            first = question[0].conversation_id
            known = history.names.get(first, [])
            raw_q = " ".join(t.text for t in question)
            raw_a = "\n".join(t.text for t in answer)
            if len(raw_q) <= MAX_PAIR_CHARS and len(raw_a) <= MAX_PAIR_CHARS:
                fallback = history.languages.get(first)
                pairs.append(
                    Pair(
                        first,
                        mask(raw_q, known),
                        _language(raw_q, fallback, languages),
                        mask(raw_a, known),
                        _language(raw_a, fallback, languages),
                        raw_q,
                    )
                )
        question.clear()
        answer.clear()

    current: int | None = None
    for turn in history.turns:
        if turn.conversation_id != current:
            flush()
            question.clear()
            current = turn.conversation_id
        decision = decisions.get(turn.text)
        if decision is not None and _conversational(decision):
            continue
        if turn.sender == "agent" and any(p.fullmatch(" ".join(turn.text.split())) for p in canned):
            continue
        if turn.sender == "customer":
            if answer:  # a new question after an answer: the previous pair is complete
                flush()
            question.append(turn)
        elif question:
            answer.append(turn)
    flush()
    return pairs


def _conversational(decision: Decision) -> bool:
    """A greeting, thanks, goodbye, "a person, please", a complaint: an intent, not an FAQ question."""
    return decision.kind in ("respond", "handoff")

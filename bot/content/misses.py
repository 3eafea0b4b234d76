"""What the bot failed on: the customer questions content editors should read (`supportbot kb misses`).

A miss is an inbound message the bot could not answer on its own (an honest fallback, or a clarifying
question because two entries were close) or an answer the customer marked 👎. Identical questions are
grouped (case and spacing aside) and counted, most frequent first, with what the bot thought of them.
The CSV it writes has an empty `intent` column: filled in with a KB entry id or `oos`, the same file
scores the bot with `supportbot eval --test`, and its rows are the raw material for new KB questions and
`intents/` out-of-scope examples.

A miss someone has acted on in the console (made a KB question or an out-of-scope example, the audit
events below) is marked handled and listed after the others, until the bot misses it again; a question
made out of scope and then declined as out of scope is not missed again, it is declined as it was told.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select

from bot.insights.stats import FOR_AGENT
from bot.nlu.language import detect_language
from bot.storage.database import Database
from bot.storage.models import Conversation, Event, Message, as_utc

MISSED = {"fallback", "clarify"}
NOT_A_QUESTION = {"empty", "no_text"}  # a sticker, a photo, an empty message: nothing to learn from
COLUMNS = ("text", "intent", "lang", "count", "kind", "reason", "bot_entry", "score", "last_seen")
QUESTION_ADDED = "kb_question_added"  # audit events of bot/insights/api.py; data: text, entry, language, file
EXAMPLE_ADDED = "oos_example_added"  # data: text, file
HANDLED_BY = {QUESTION_ADDED: "question", EXAMPLE_ADDED: "out_of_scope"}


@dataclass(frozen=True)
class Handled:
    """What was done about a miss after it was last seen: made a question of `entry`, or out of scope."""

    action: str  # question / out_of_scope
    entry: str | None
    by: str  # the audit actor, agent:<login>
    at: datetime


@dataclass
class Miss:
    """One question (as first written), how often it came, and what the bot made of it the last time."""

    text: str
    count: int
    kind: str  # fallback / clarify / disliked
    reason: str  # the decision's reason (low_confidence, out_of_scope, close_candidates, unsure, feedback)
    bot_entry: str | None  # the entry the bot answered or thought closest
    score: float
    language: str | None
    last_seen: datetime
    kinds: set[str] = field(default_factory=set, repr=False)
    handled: Handled | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the miss as JSON for GET /api/v1/misses."""
        handled = self.handled
        return {
            "text": self.text,
            "count": self.count,
            "kind": self.kind,
            "kinds": sorted(self.kinds),
            "reason": self.reason,
            "closest_entry": self.bot_entry,
            "score": round(self.score, 4),
            "language": self.language,
            "last_seen": as_utc(self.last_seen).isoformat(timespec="seconds"),
            "handled": None
            if handled is None
            else {
                "action": handled.action,
                "entry": handled.entry,
                "by": handled.by.removeprefix("agent:"),
                "at": as_utc(handled.at).isoformat(timespec="seconds"),
            },
        }

    def row(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "intent": "",
            "lang": self.language or "",
            "count": self.count,
            "kind": "+".join(sorted(self.kinds)) or self.kind,
            "reason": self.reason,
            "bot_entry": self.bot_entry or "",
            "score": round(self.score, 4),
            "last_seen": self.last_seen.isoformat(timespec="seconds"),
        }


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def _closest(decision: dict[str, Any]) -> tuple[str | None, float]:
    """The entry the bot chose or came closest to, with its score (a fallback has no label of its own)."""
    label = decision.get("label")
    if label is not None:
        return label, float(decision.get("score") or 0.0)
    closest = next((c for c in decision.get("candidates") or [] if c.get("kind") == "kb"), None)
    if closest is None:
        return None, float(decision.get("score") or 0.0)
    return closest.get("label"), float(closest.get("score") or 0.0)


async def collect_misses(database: Database, since: datetime, limit: int = 200) -> list[Miss]:
    """The questions missed since `since` (at most `limit`): grouped, most frequent first, handled last."""
    found: dict[str, Miss] = {}

    def add(
        message: Message, language: str | None, kind: str, reason: str, entry: str | None, score: float
    ) -> None:
        language = detect_language(message.text)[0] or language  # the conversation's is its latest
        key = _key(message.text)
        miss = found.get(key)
        if miss is None:
            miss = found[key] = Miss(
                message.text, 0, kind, reason, entry, score, language, message.created_at
            )
        miss.count += 1
        miss.kinds.add(kind)
        if message.created_at >= miss.last_seen:
            miss.kind, miss.reason, miss.bot_entry, miss.score = kind, reason, entry, score
            miss.last_seen, miss.language = message.created_at, language or miss.language

    async with database.session() as session:
        inbound = await session.execute(
            select(Message, Conversation.language)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.direction == "in",
                Message.sender == "customer",
                Message.created_at >= since,
                Message.decision.is_not(None),
                ~FOR_AGENT,  # written to a person while waiting or talking to one: not the bot's to answer
            )
            .order_by(Message.id)
        )
        answered: dict[int, list[Message]] = {}  # conversation -> its answered messages, oldest first
        for message, language in inbound:
            decision = message.decision or {}
            kind = decision.get("decision")
            if kind in MISSED and decision.get("reason") not in NOT_A_QUESTION and message.text.strip():
                entry, score = _closest(decision)
                add(message, language, str(kind), str(decision.get("reason") or ""), entry, score)
            elif kind == "answer" and message.text.strip():
                answered.setdefault(message.conversation_id, []).append(message)
        disliked = await session.execute(
            select(Event, Conversation.language)
            .join(Conversation, Conversation.id == Event.conversation_id)
            .where(Event.kind == "answer_feedback", Event.created_at >= since)
            .order_by(Event.id)
        )
        for event, language in disliked:
            if event.data.get("vote") != "down" or event.conversation_id is None:
                continue
            # the question behind the 👎: the latest earlier message of that conversation answered with it
            asked = [
                m
                for m in answered.get(event.conversation_id, [])
                if m.created_at <= event.created_at
                and (m.decision or {}).get("label") == event.data.get("entry")
            ]
            if asked:
                entry, score = _closest(asked[-1].decision or {})
                add(asked[-1], language, "disliked", "feedback", entry, score)
        handlings = await session.execute(
            select(Event).where(Event.kind.in_(HANDLED_BY), Event.created_at >= since).order_by(Event.id)
        )
        for handling in handlings.scalars():
            miss = found.get(_key(str(handling.data.get("text") or "")))
            if miss is None:
                continue
            action = HANDLED_BY[handling.kind]
            declined = action == "out_of_scope" and miss.reason == "out_of_scope"  # as it was told to
            if declined or as_utc(handling.created_at) >= as_utc(miss.last_seen):
                miss.handled = Handled(
                    action, handling.data.get("entry"), handling.actor, handling.created_at
                )
    ranked = sorted(
        found.values(), key=lambda m: (m.handled is not None, -m.count, -as_utc(m.last_seen).timestamp())
    )
    return ranked[:limit]


def write_csv(misses: Sequence[Miss], out: IO[str]) -> None:
    """Write the misses as CSV with an empty `intent` column to fill in (see the module docstring)."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for miss in misses:
        writer.writerow(miss.row())

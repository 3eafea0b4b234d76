"""CSAT: after an agent resolves a chat, the customer rates it with one of three buttons.

Three buttons because WhatsApp shows at most three reply buttons (more become a list behind a "Choose"
button); Telegram and the web chat show the same three. The scale is 1 (😞) to 3 (😀). A button's payload
names the conversation it rates (`csat:<conversation id>:<score>`), so the rating is stored on that
conversation (an event `csat` {score, agent}) even though the customer's next message would start a new
one. A conversation is rated once: a second press is thanked but not counted, and a press later than
`handoff.csat_window` after the resolution (or for someone else's conversation) is not counted either.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Button, IncomingMessage, OutgoingReply
from bot.phrases import phrase
from bot.states import State
from bot.storage.models import Agent, Conversation, Customer, Event, as_utc

CSAT_PAYLOAD = "csat:"
SCORES = (1, 2, 3)
_FACES = {1: ("😞", "csat_bad"), 2: ("😐", "csat_ok"), 3: ("😀", "csat_great")}


def question(conversation_id: int, language: str | None) -> OutgoingReply:
    """The rating question with its three buttons, in the customer's language."""
    language = language or "en"
    buttons = tuple(
        Button(f"{face} {phrase(key, language)}", f"{CSAT_PAYLOAD}{conversation_id}:{score}")
        for score, (face, key) in _FACES.items()
    )
    return OutgoingReply(phrase("csat_question", language), buttons)


def parse(payload: str | None) -> tuple[int, int] | None:
    """(conversation id, score) of a rating button's payload; None for anything else."""
    if not payload or not payload.startswith(CSAT_PAYLOAD):
        return None
    parts = payload[len(CSAT_PAYLOAD) :].split(":")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    conversation_id, score = int(parts[0]), int(parts[1])
    return (conversation_id, score) if score in SCORES else None


async def rated_conversation(
    session: AsyncSession, message: IncomingMessage
) -> tuple[Customer, Conversation, int] | None:
    """The customer and the resolved conversation a rating button names (locked), with the score.

    None when the payload is no rating, or names a conversation that is not this customer's or not
    resolved: the press is then an ordinary (unknown) button.
    """
    parsed = parse(message.payload)
    if parsed is None:
        return None
    conversation_id, score = parsed
    found = (
        await session.execute(
            select(Customer, Conversation)
            .join(Conversation, Conversation.customer_id == Customer.id)
            .where(
                Conversation.id == conversation_id,
                Customer.channel == message.channel,
                Customer.external_id == message.customer_id,
                Conversation.state == State.RESOLVED,
            )
            .with_for_update(of=Conversation)
        )
    ).first()
    if found is None:
        return None
    customer, conversation = found
    return customer, conversation, score


async def record(
    session: AsyncSession, conversation: Conversation, score: int, now: datetime, window: float
) -> OutgoingReply:
    """Store the rating (once, within the window) and return what the customer is told."""
    language = conversation.language or "en"
    rated = await session.execute(
        select(Event.id).where(Event.conversation_id == conversation.id, Event.kind == "csat").limit(1)
    )
    if rated.first() is not None:
        return OutgoingReply(phrase("csat_already", language))
    resolved_at = as_utc(conversation.resolved_at)
    if resolved_at is None or now - resolved_at > timedelta(seconds=window):
        return OutgoingReply(phrase("csat_expired", language))
    agent_id = (
        await session.execute(
            select(Event.agent_id)
            .where(Event.conversation_id == conversation.id, Event.kind == "resolved")
            .order_by(Event.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    agent = await session.get(Agent, agent_id) if agent_id is not None else None
    session.add(
        Event(
            conversation_id=conversation.id,
            kind="csat",
            actor="customer",
            agent_id=agent_id,
            data={"score": score, "agent": agent.login if agent else None},
        )
    )
    await session.flush()
    return OutgoingReply(phrase("csat_thanks", language))

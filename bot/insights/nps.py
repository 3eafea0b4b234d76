"""NPS (optional, `feedback.nps`): "how likely are you to recommend us, 0-10?" after a resolved chat.

Asked at most once per customer per `feedback.nps_interval_days`: right after the CSAT rating when CSAT
is on, else with the resolution. Buttons 0-10 where the channel has room for eleven; WhatsApp (three
reply buttons, ten list rows) asks for a typed number, which every channel accepts. The answer is an
event `nps` {score} on the conversation it was asked on, stored once, within `feedback.nps_window`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.config import Settings
from bot.messages import Button, IncomingMessage, OutgoingReply
from bot.phrases import phrase
from bot.storage.models import Conversation, Customer, Event, as_utc

NPS_PAYLOAD = "nps:"
SCORES = range(0, 11)
TYPED_ONLY = frozenset({"whatsapp"})  # eleven choices fit neither three reply buttons nor a ten-row list
ASKED, ANSWERED = "nps_asked", "nps"


def question(conversation_id: int, language: str | None, channel: str) -> OutgoingReply:
    """The question in the customer's language: with buttons 0-10, or asking for a typed number."""
    language = language or "en"
    if channel in TYPED_ONLY:
        return OutgoingReply(f"{phrase('nps_question', language)} {phrase('nps_type_number', language)}")
    buttons = tuple(Button(str(score), f"{NPS_PAYLOAD}{conversation_id}:{score}") for score in SCORES)
    return OutgoingReply(phrase("nps_question", language), buttons)


def parse(payload: str | None) -> tuple[int, int] | None:
    """(conversation id, score) of an NPS button's payload; None for anything else."""
    if not payload or not payload.startswith(NPS_PAYLOAD):
        return None
    parts = payload[len(NPS_PAYLOAD) :].split(":")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    return (int(parts[0]), int(parts[1])) if int(parts[1]) in SCORES else None


def typed(text: str) -> int | None:
    """A bare number 0-10 (the answer where there are no buttons)."""
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit() and len(stripped) <= 2 and int(stripped) in SCORES:
        return int(stripped)
    return None


async def ask(
    session: AsyncSession, settings: Settings, conversation: Conversation, now: datetime
) -> OutgoingReply | None:
    """The question after this resolved conversation, if NPS is on and the customer is due one."""
    if not settings.feedback.nps:
        return None
    since = now - timedelta(days=settings.feedback.nps_interval_days)
    asked = await session.execute(
        select(Event.id)
        .join(Conversation, Conversation.id == Event.conversation_id)
        .where(
            Conversation.customer_id == conversation.customer_id,
            Event.kind == ASKED,
            Event.created_at >= since,
        )
        .limit(1)
    )
    if asked.first() is not None:
        return None
    session.add(Event(conversation_id=conversation.id, kind=ASKED, actor="system", data={}, created_at=now))
    return question(conversation.id, conversation.language, conversation.channel)


async def asked_conversation(
    session: AsyncSession, message: IncomingMessage, now: datetime, window: float
) -> tuple[Customer, Conversation, int] | None:
    """The conversation this message answers the NPS question of (locked), with the score; else None.

    A button names its conversation; a typed number answers the customer's latest question within the
    window that has no answer yet.
    """
    pressed = parse(message.payload)
    score = pressed[1] if pressed else (typed(message.text) if not message.payload else None)
    if score is None:
        return None
    answered = aliased(Event)
    query = (
        select(Customer, Conversation)
        .join(Conversation, Conversation.customer_id == Customer.id)
        .join(Event, Event.conversation_id == Conversation.id)
        .where(
            Customer.channel == message.channel,
            Customer.external_id == message.customer_id,
            Event.kind == ASKED,
            Event.created_at >= now - timedelta(seconds=window),
        )
        .order_by(Event.id.desc())
        .limit(1)
        .with_for_update(of=Conversation)
    )
    if pressed:
        query = query.where(Conversation.id == pressed[0])
    else:  # a typed number counts only while the question is open
        query = query.where(
            ~select(answered.id)
            .where(answered.conversation_id == Conversation.id, answered.kind == ANSWERED)
            .exists()
        )
    found = (await session.execute(query)).first()
    if found is None:
        return None
    customer, conversation = found
    return customer, conversation, score


async def record(
    session: AsyncSession, conversation: Conversation, score: int, now: datetime
) -> OutgoingReply:
    """Store the answer once; what the customer is told."""
    language = conversation.language or "en"
    done = await session.execute(
        select(Event.created_at)
        .where(Event.conversation_id == conversation.id, Event.kind == ANSWERED)
        .limit(1)
    )
    if done.first() is not None:
        return OutgoingReply(phrase("nps_already", language))
    session.add(
        Event(
            conversation_id=conversation.id,
            kind=ANSWERED,
            actor="customer",
            data={"score": score},
            created_at=as_utc(now),
        )
    )
    await session.flush()
    return OutgoingReply(phrase("nps_thanks", language))

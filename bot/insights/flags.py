"""Code Red (likely unhappy customers) and Code Green (kudos): signals the stored data already has.

Code Red signals: the `complaint` intent; a handoff about a topic the same customer already wrote about
within `flags.repeat_days`; a 👎 on an answer followed by a handoff; a wait past the SLA; a low CSAT
rating; strong negative wording (bot/nlu/sentiment.py). Each signal is stored once per conversation in
`conversation_flags` with why it was raised; the first one marks the conversation (`code_red_at`), moves
it up the queue (`handoff.priority.code_red`) and is an event `code_red` on the supervisors' live stream.
Kudos: the `compliment` intent and a top CSAT rating followed by words of the customer.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.handoff.assignment import audit
from bot.insights import metrics
from bot.nlu.policy import Decision
from bot.states import State
from bot.storage.models import Conversation, ConversationFlag, Event, Message, utcnow

log = logging.getLogger(__name__)

CODE_RED, KUDOS = "code_red", "kudos"
COMPLAINT, REPEAT, THUMBS_DOWN = "complaint", "repeat_contact", "thumbs_down_handoff"
SLA_WAIT, LOW_CSAT, NEGATIVE = "sla_wait", "low_csat", "negative_wording"
COMPLIMENT, CSAT_COMMENT = "compliment", "csat_comment"
TOP_CSAT = 3  # 😀 (bot/insights/csat.py)
TEXT_LIMIT = 1000  # characters of the customer's words kept with a flag


async def raise_flag(
    session: AsyncSession,
    conversation: Conversation,
    kind: str,
    signal: str,
    reason: dict[str, Any],
    text: str | None = None,
    now: datetime | None = None,
    bump: int = 0,
) -> bool:
    """Store the flag (once per conversation and signal); a first Code Red marks, bumps and alerts."""
    now = now or utcnow()
    known = select(ConversationFlag.id).where(
        ConversationFlag.conversation_id == conversation.id,
        ConversationFlag.kind == kind,
        ConversationFlag.signal == signal,
    )
    if (await session.execute(known.limit(1))).first() is not None:
        return False
    row = ConversationFlag(
        conversation_id=conversation.id,
        kind=kind,
        signal=signal,
        reason=reason,
        text=text[:TEXT_LIMIT] if text else None,
        created_at=now,
    )
    try:
        async with session.begin_nested():  # another process raised the same flag meanwhile: keep theirs
            session.add(row)
    except IntegrityError:
        return False
    audit(session, conversation.id, kind, "system", None, signal=signal, reason=reason)
    if kind == CODE_RED:
        metrics.flag_raised(signal)
        if conversation.code_red_at is None:
            conversation.code_red_at = now
            _bump(session, conversation, bump)
    return True


def _bump(session: AsyncSession, conversation: Conversation, bump: int) -> None:
    """A waiting conversation flagged now moves up the queue (at a handoff, Intake adds the bump itself)."""
    if bump <= 0 or conversation.state != State.WAITING or conversation.assigned_agent_id is not None:
        return
    previous = conversation.priority or 0
    conversation.priority = previous + bump
    audit(
        session,
        conversation.id,
        "priority_changed",
        "system",
        None,
        priority=conversation.priority,
        previous=previous,
        reason=CODE_RED,
    )


def code_red_bump(settings: Settings, reason: str | None) -> int:
    """The queue bump of a Code Red conversation; not again on top of the complaint bump."""
    if reason == COMPLAINT:
        return 0
    return settings.handoff.priority.get(CODE_RED, 0)


# --- the signals -----------------------------------------------------------------------------------


async def at_handoff(
    session: AsyncSession, settings: Settings, conversation: Conversation, reason: str, now: datetime
) -> None:
    """Signals a handoff reveals: a complaint, a repeated contact about one topic, a 👎 before it."""
    if not settings.flags.enabled:
        return
    if reason == COMPLAINT:
        await raise_flag(session, conversation, CODE_RED, COMPLAINT, {"why": "the complaint intent"}, now=now)
    thumbs_down = (
        await session.execute(
            select(Event.data)
            .where(Event.conversation_id == conversation.id, Event.kind == "answer_feedback")
            .order_by(Event.id.desc())
        )
    ).scalars()
    disliked = [data.get("entry") for data in thumbs_down if data.get("vote") == "down"]
    if disliked:
        why = {"why": "👎 on an answer, then a handoff", "entries": disliked, "handoff_reason": reason}
        await raise_flag(session, conversation, CODE_RED, THUMBS_DOWN, why, now=now)
    repeated = await _repeated_topics(session, conversation, now - timedelta(days=settings.flags.repeat_days))
    if repeated:
        why = {
            "why": f"the customer wrote about this within {settings.flags.repeat_days:g} days",
            "topics": sorted(repeated),
            "earlier_conversations": sorted({cid for ids in repeated.values() for cid in ids}),
        }
        await raise_flag(session, conversation, CODE_RED, REPEAT, why, now=now)


async def _repeated_topics(
    session: AsyncSession, conversation: Conversation, since: datetime
) -> dict[str, list[int]]:
    """The topics (KB entries the bot read the customer's messages as) shared with earlier conversations."""
    rows = (
        await session.execute(
            select(Message.conversation_id, Message.decision)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.customer_id == conversation.customer_id,
                Conversation.created_at >= since,
                Message.direction == "in",
                Message.decision.is_not(None),
            )
        )
    ).all()
    topics: dict[int, set[str]] = {}
    for conversation_id, decision in rows:
        topic = _topic(decision)
        if topic is not None:
            topics.setdefault(conversation_id, set()).add(topic)
    here = topics.pop(conversation.id, set())
    shared: dict[str, list[int]] = {}
    for earlier, seen in topics.items():
        for topic in here & seen:
            shared.setdefault(topic, []).append(earlier)
    return shared


def _topic(decision: dict[str, Any] | None) -> str | None:
    """The KB entry a message was about: the one answered, else the best KB candidate."""
    if not decision:
        return None
    if decision.get("decision") in ("answer", "clarify") and decision.get("kind") not in ("respond",):
        label = decision.get("label")
        if label:
            return str(label)
    for candidate in decision.get("candidates") or []:
        if candidate.get("kind") == "kb":
            return str(candidate.get("label"))
    return None


async def customer_wrote(
    session: AsyncSession,
    settings: Settings,
    conversation: Conversation,
    text: str,
    decision: Decision | None,
    now: datetime,
) -> None:
    """Signals in one customer message: strong negative wording (Code Red), a compliment (kudos)."""
    flags = settings.flags
    if not flags.enabled or decision is None:
        return
    if decision.negativity is not None and decision.negativity >= flags.negative_threshold:
        why = {
            "why": "strong negative wording",
            "score": decision.negativity,
            "threshold": flags.negative_threshold,
        }
        await raise_flag(
            session, conversation, CODE_RED, NEGATIVE, why, text, now, code_red_bump(settings, None)
        )
    if decision.kind == "respond" and decision.label == COMPLIMENT:
        await raise_flag(
            session, conversation, KUDOS, COMPLIMENT, {"why": "the compliment intent"}, text, now
        )


async def rated(session: AsyncSession, settings: Settings, conversation: Conversation, now: datetime) -> None:
    """After a CSAT press: the stored rating, if low, is a Code Red on the rated conversation."""
    if not settings.flags.enabled:
        return
    stored = (
        await session.execute(
            select(Event.data).where(Event.conversation_id == conversation.id, Event.kind == "csat").limit(1)
        )
    ).scalar_one_or_none()
    score = (stored or {}).get("score")
    if isinstance(score, int) and score <= settings.flags.low_csat:
        why = {"why": "a low CSAT rating", "score": score, "at_most": settings.flags.low_csat}
        await raise_flag(session, conversation, CODE_RED, LOW_CSAT, why, now=now)


async def csat_comment(
    session: AsyncSession, settings: Settings, customer_id: int, text: str, now: datetime, window: float
) -> None:
    """Words a customer writes after giving the top CSAT rating (within the window): kudos for that chat."""
    if not settings.flags.enabled or not text.strip() or text.strip().isdigit():
        return  # a bare number answers the NPS question
    found = (
        await session.execute(
            select(Conversation, Event.data, Event.created_at)
            .join(Event, Event.conversation_id == Conversation.id)
            .where(
                Conversation.customer_id == customer_id,
                Event.kind == "csat",
                Event.created_at >= now - timedelta(seconds=window),
            )
            .order_by(Event.id.desc())
            .limit(1)
        )
    ).first()
    if found is None or found[1].get("score") != TOP_CSAT:
        return
    rated_conversation, data, _ = found
    why = {
        "why": "the top CSAT rating with a comment",
        "score": data.get("score"),
        "agent": data.get("agent"),
    }
    await raise_flag(session, rated_conversation, KUDOS, CSAT_COMMENT, why, text, now)


async def sla_breached(
    session: AsyncSession, settings: Settings, conversation: Conversation, now: datetime, waited: float
) -> None:
    """A wait past handoff.sla_first_response."""
    if settings.flags.enabled:
        why = {
            "why": "waited past the SLA",
            "waited_seconds": round(waited),
            "sla_seconds": settings.handoff.sla_first_response,
        }
        reason = (conversation.handoff_context or {}).get("reason")
        await raise_flag(
            session, conversation, CODE_RED, SLA_WAIT, why, now=now, bump=code_red_bump(settings, reason)
        )

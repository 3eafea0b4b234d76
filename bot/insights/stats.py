"""The numbers a support lead watches, computed from what is stored (`GET /api/v1/stats`, `supportbot stats`).

Every figure covers one window, the last `days` days up to now, and counts what happened in it: the
conversations started, the customer messages and the bot's decisions on them, handoffs (the `queued`
events, by reason), the wait from handoff to an agent's first reply (for conversations handed off in
the window), SLA breaches, resolutions, 👍/👎 votes, complaints and compliments (intents in the
decisions) and CSAT ratings. Counting is done in SQL (one grouped query per figure, the same on SQLite
and PostgreSQL); only the handoff waits come back as rows, two timestamps each, for the percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bot.insights.csat import SCORES as CSAT_SCORES
from bot.storage.database import Database
from bot.storage.models import Agent, Conversation, ConversationFlag, Event, Message, as_utc, utcnow

DECISIONS = ("answer", "clarify", "fallback", "handoff")
INTENT_KINDS = ("respond", "handoff")  # a conversational intent won: a canned reply or a handoff


@dataclass
class Decisions:
    """The bot's decisions on customer messages (those the bot answered: not buttons, not for an agent)."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # answer / clarify / fallback / handoff
    rates: dict[str, float | None] = field(default_factory=dict)  # the same over `total`


@dataclass
class Handoffs:
    total: int = 0  # times a conversation was queued for a person
    conversations: int = 0  # distinct conversations queued
    reasons: dict[str, int] = field(default_factory=dict)  # human_request, repeated_misses, complaint...


@dataclass
class Waits:
    """Seconds from handoff to an agent's first reply, over conversations handed off in the window."""

    answered: int = 0
    unanswered: int = 0  # still waiting, or the customer left before an agent wrote
    median_seconds: float | None = None
    p90_seconds: float | None = None


@dataclass
class Feedback:
    up: int = 0
    down: int = 0
    up_share: float | None = None  # 👍 / (👍 + 👎)


@dataclass
class Csat:
    """Ratings after resolved chats (bot/insights/csat.py): 1 😞, 2 😐, 3 😀."""

    count: int = 0
    average: float | None = None
    satisfied_share: float | None = None  # share of 😀, the usual "CSAT %"
    scores: dict[str, int] = field(default_factory=dict)  # "1".."3" -> ratings


@dataclass
class CodeRed:
    """Conversations flagged as likely unhappy in the window (bot/insights/flags.py), and how many are resolved."""

    count: int = 0
    resolved: int = 0
    resolved_share: float | None = None
    signals: dict[str, int] = field(default_factory=dict)  # complaint, repeat_contact, low_csat...


@dataclass
class Nps:
    """Answers to "how likely are you to recommend us, 0-10" (bot/insights/nps.py)."""

    count: int = 0
    promoters: int = 0  # 9-10
    passives: int = 0  # 7-8
    detractors: int = 0  # 0-6
    score: float | None = None  # % promoters - % detractors, -100..100


@dataclass
class AgentNumbers:
    login: str
    name: str
    resolved: int = 0
    csat_count: int = 0
    csat_average: float | None = None


@dataclass
class SupportStats:
    days: int
    since: datetime
    until: datetime
    conversations: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_language: dict[str, int] = field(default_factory=dict)
    customer_messages: int = 0
    decisions: Decisions = field(default_factory=Decisions)
    intents: dict[str, int] = field(default_factory=dict)  # every conversational intent recognised
    complaints: int = 0
    compliments: int = 0
    handoffs: Handoffs = field(default_factory=Handoffs)
    wait: Waits = field(default_factory=Waits)
    sla_breaches: int = 0
    resolved: int = 0
    feedback: Feedback = field(default_factory=Feedback)
    csat: Csat = field(default_factory=Csat)
    nps: Nps = field(default_factory=Nps)
    code_red: CodeRed = field(default_factory=CodeRed)
    kudos: int = 0
    agents: list[AgentNumbers] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat(timespec="seconds")
        data["until"] = self.until.isoformat(timespec="seconds")
        return data


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The `fraction` quantile of `values`, interpolated linearly between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 1)


def _seconds(start: datetime, end: datetime) -> float:
    return float((as_utc(end) - as_utc(start)).total_seconds())


async def _grouped(
    session: AsyncSession, key: ColumnElement[Any] | InstrumentedAttribute[Any], *where: ColumnElement[bool]
) -> dict[Any, int]:
    """`SELECT key, count(*) ... WHERE ... GROUP BY key` as a dict (a NULL key is kept as None)."""
    rows = await session.execute(select(key, func.count()).where(*where).group_by(key))
    return {value: int(count) for value, count in rows.all()}


def _inbound(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        Message.direction == "in",
        Message.sender == "customer",
        Message.created_at >= since,
        Message.created_at <= until,
    ]


def _events(kind: str, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [Event.kind == kind, Event.created_at >= since, Event.created_at <= until]


async def compute_stats(database: Database, days: int, now: datetime | None = None) -> SupportStats:
    """The support lead's numbers for the last `days` days up to `now` (default: the current time)."""
    until = now or utcnow()
    since = until - timedelta(days=days)
    stats = SupportStats(days=days, since=since, until=until)
    async with database.session() as session:
        await _conversations(session, stats)
        await _messages(session, stats)
        await _handoffs(session, stats)
        await _feedback_and_csat(session, stats)
        await _nps(session, stats)
        await _flags(session, stats)
    return stats


async def _conversations(session: AsyncSession, stats: SupportStats) -> None:
    started = [Conversation.created_at >= stats.since, Conversation.created_at <= stats.until]
    rows = await session.execute(
        select(Conversation.channel, Conversation.language, func.count())
        .where(*started)
        .group_by(Conversation.channel, Conversation.language)
    )
    for channel, language, count in rows.all():
        stats.conversations += int(count)
        stats.by_channel[channel] = stats.by_channel.get(channel, 0) + int(count)
        key = language or "unknown"
        stats.by_language[key] = stats.by_language.get(key, 0) + int(count)
    breached = and_(Conversation.sla_breached_at >= stats.since, Conversation.sla_breached_at <= stats.until)
    resolved = and_(Conversation.resolved_at >= stats.since, Conversation.resolved_at <= stats.until)
    # the WHERE lets each side use its own index (a bitmap OR) instead of reading every conversation
    counts = (
        await session.execute(
            select(
                func.count(Conversation.sla_breached_at).filter(breached),
                func.count(Conversation.resolved_at).filter(resolved),
            ).where(or_(breached, resolved))
        )
    ).one()
    stats.sla_breaches, stats.resolved = int(counts[0]), int(counts[1])
    waits = await session.execute(
        select(Conversation.handoff_at, Conversation.first_response_at).where(
            Conversation.handoff_at >= stats.since, Conversation.handoff_at <= stats.until
        )
    )
    seconds: list[float] = []
    for handed_off, answered in waits.all():
        if handed_off is None or answered is None:
            stats.wait.unanswered += 1
        else:
            seconds.append(max(0.0, _seconds(handed_off, answered)))
    stats.wait.answered = len(seconds)
    stats.wait.median_seconds = percentile(seconds, 0.5)
    stats.wait.p90_seconds = percentile(seconds, 0.9)


# A message written while waiting for or talking to an agent went to the agent: the model read it
# (a "cancel" takes the customer back to the bot) but the bot did not answer it.
FOR_AGENT = exists().where(
    Event.conversation_id == Message.conversation_id,
    Event.kind == "customer_message_for_agent",
    Event.data["message_id"].as_integer() == Message.id,
)


async def _messages(session: AsyncSession, stats: SupportStats) -> None:
    inbound = _inbound(stats.since, stats.until)
    stats.customer_messages = int(
        (await session.execute(select(func.count()).select_from(Message).where(*inbound))).scalar_one()
    )
    bot_read = [*inbound, ~FOR_AGENT]
    decision = Message.decision["decision"].as_string()
    counts = await _grouped(session, decision, *bot_read, decision.is_not(None))
    decisions = stats.decisions
    decisions.total = sum(counts.values())
    decisions.counts = {kind: counts.get(kind, 0) for kind in DECISIONS}
    decisions.rates = {kind: share(count, decisions.total) for kind, count in decisions.counts.items()}
    label = Message.decision["label"].as_string()
    kind = Message.decision["kind"].as_string()
    intents = await _grouped(session, label, *bot_read, kind.in_(INTENT_KINDS), label.is_not(None))
    stats.intents = dict(sorted(intents.items()))
    stats.complaints = intents.get("complaint", 0)
    stats.compliments = intents.get("compliment", 0)


async def _handoffs(session: AsyncSession, stats: SupportStats) -> None:
    queued = _events("queued", stats.since, stats.until)
    reasons = await _grouped(session, Event.data["reason"].as_string(), *queued)
    stats.handoffs.total = sum(reasons.values())
    stats.handoffs.reasons = {
        reason or "unknown": count for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])
    }
    stats.handoffs.conversations = int(
        (
            await session.execute(select(func.count(func.distinct(Event.conversation_id))).where(*queued))
        ).scalar_one()
    )


async def _nps(session: AsyncSession, stats: SupportStats) -> None:
    scores = await _grouped(
        session, Event.data["score"].as_integer(), *_events("nps", stats.since, stats.until)
    )
    nps = stats.nps
    for score, count in scores.items():
        if score is None:
            continue
        nps.count += count
        if score >= 9:
            nps.promoters += count
        elif score >= 7:
            nps.passives += count
        else:
            nps.detractors += count
    if nps.count:
        nps.score = round(100 * (nps.promoters - nps.detractors) / nps.count, 1)


async def _flags(session: AsyncSession, stats: SupportStats) -> None:
    window = (ConversationFlag.created_at >= stats.since, ConversationFlag.created_at <= stats.until)
    red = (ConversationFlag.kind == "code_red", *window)
    stats.code_red.signals = dict(sorted((await _grouped(session, ConversationFlag.signal, *red)).items()))
    flagged = select(ConversationFlag.conversation_id).where(*red).distinct().subquery()
    count, resolved = (
        await session.execute(
            select(func.count(), func.count(Conversation.resolved_at))
            .select_from(flagged)
            .join(Conversation, Conversation.id == flagged.c.conversation_id)
        )
    ).one()
    stats.code_red.count, stats.code_red.resolved = int(count), int(resolved)
    stats.code_red.resolved_share = share(stats.code_red.resolved, stats.code_red.count)
    kudos = (
        select(func.count()).select_from(ConversationFlag).where(ConversationFlag.kind == "kudos", *window)
    )
    stats.kudos = int((await session.execute(kudos)).scalar_one())


async def _feedback_and_csat(session: AsyncSession, stats: SupportStats) -> None:
    votes = await _grouped(
        session, Event.data["vote"].as_string(), *_events("answer_feedback", stats.since, stats.until)
    )
    stats.feedback.up, stats.feedback.down = votes.get("up", 0), votes.get("down", 0)
    stats.feedback.up_share = share(stats.feedback.up, stats.feedback.up + stats.feedback.down)

    score = Event.data["score"].as_integer()
    rows = await session.execute(
        select(Event.agent_id, score, func.count())
        .where(*_events("csat", stats.since, stats.until), score.in_(CSAT_SCORES))
        .group_by(Event.agent_id, score)
    )
    per_agent: dict[int | None, list[int]] = {}  # agent -> [count, sum]
    scores = dict.fromkeys(CSAT_SCORES, 0)
    for agent_id, value, count in rows.all():
        scores[int(value)] += int(count)
        totals = per_agent.setdefault(agent_id, [0, 0])
        totals[0] += int(count)
        totals[1] += int(value) * int(count)
    stats.csat.count = sum(scores.values())
    stats.csat.scores = {str(value): count for value, count in scores.items()}
    if stats.csat.count:
        stats.csat.average = round(sum(v * c for v, c in scores.items()) / stats.csat.count, 2)
    stats.csat.satisfied_share = share(scores[max(CSAT_SCORES)], stats.csat.count)

    resolved = await _grouped(
        session, Event.agent_id, *_events("resolved", stats.since, stats.until), Event.agent_id.is_not(None)
    )
    ids = {agent_id for agent_id in [*resolved, *per_agent] if agent_id is not None}
    if not ids:
        return
    agents = (await session.execute(select(Agent).where(Agent.id.in_(ids)))).scalars().all()
    for agent in sorted(agents, key=lambda a: a.login):
        count, total = per_agent.get(agent.id, [0, 0])
        stats.agents.append(
            AgentNumbers(
                agent.login,
                agent.name,
                resolved=resolved.get(agent.id, 0),
                csat_count=count,
                csat_average=round(total / count, 2) if count else None,
            )
        )

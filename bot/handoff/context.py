"""The context card an agent sees on handoff, derived from the stored conversation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.identity import shown_customer_id
from bot.handoff.providers import is_vip
from bot.storage.models import Agent, Assignment, Conversation, Customer, Event, Message
from bot.storage.repositories import MessageRepository


def build_context(
    conversation: Conversation, customer: Customer, transcript: Sequence[Message], reason: str
) -> dict[str, Any]:
    """Return the transcript, what the bot matched and answered, and the customer's profile."""
    matched = []
    answered = []
    for message in transcript:
        decision = message.decision or {}
        if message.direction == "in" and decision:
            matched.append(
                {
                    "message_id": message.id,
                    "text": message.text[:500],
                    "decision": decision.get("decision"),
                    "label": decision.get("label"),
                    "score": decision.get("score"),
                    "candidates": decision.get("candidates", [])[:3],
                }
            )
            if decision.get("decision") == "answer" and decision.get("kind") == "answer":
                answered.append(decision.get("label"))
    return {
        "reason": reason,
        "language": conversation.language,
        "customer": {
            "channel": customer.channel,
            "external_id": shown_customer_id(customer.channel, customer.external_id),
            "name": customer.display_name,
            "username": customer.username,
            "phone": customer.phone,
            "language": customer.language,
        },
        "transcript": [
            {
                "id": m.id,
                "direction": m.direction,
                "sender": m.sender,
                "text": m.text[:2000],
                "attachments": m.attachments,
                "at": m.created_at.isoformat() if m.created_at else None,
            }
            for m in transcript
        ],
        "matched": matched,
        "answered_entries": answered,
    }


def customer_info(conversation: Conversation, customer: Customer) -> dict[str, Any]:
    """What context providers are told about the customer."""
    return {
        "channel": customer.channel,
        "external_id": customer.external_id,
        "name": customer.display_name,
        "username": customer.username,
        "phone": customer.phone,
        "language": conversation.language or customer.language,
        "conversation_id": conversation.id,
    }


async def previous_conversations(
    session: AsyncSession, customer_id: int, current_id: int, limit: int = 10
) -> list[dict[str, Any]]:
    """The customer's earlier conversations, newest first, with who handled them and how they ended."""
    rows = (
        (
            await session.execute(
                select(Conversation)
                .where(Conversation.customer_id == customer_id, Conversation.id != current_id)
                .order_by(Conversation.id.desc())
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if not rows:
        return []
    ids = [row.id for row in rows]
    agents: dict[int, list[str]] = {}
    for conversation_id, login in await session.execute(
        select(Assignment.conversation_id, Agent.login)
        .join(Agent, Agent.id == Assignment.agent_id)
        .where(Assignment.conversation_id.in_(ids))
        .order_by(Assignment.id)
    ):
        names = agents.setdefault(conversation_id, [])
        if login not in names:
            names.append(login)
    resolutions: dict[int, Any] = {}
    for conversation_id, data in await session.execute(
        select(Event.conversation_id, Event.data)
        .where(Event.conversation_id.in_(ids), Event.kind == "resolved")
        .order_by(Event.id)
    ):
        resolutions[conversation_id] = (data or {}).get("reason")
    answered: dict[int, list[str]] = {}
    for conversation_id, decision in await session.execute(
        select(Message.conversation_id, Message.decision).where(
            Message.conversation_id.in_(ids), Message.direction == "in", Message.decision.is_not(None)
        )
    ):
        if decision and decision.get("decision") == "answer" and decision.get("kind") == "answer":
            labels = answered.setdefault(conversation_id, [])
            if decision.get("label") not in labels:
                labels.append(decision.get("label"))
    return [
        {
            "id": row.id,
            "channel": row.channel,
            "state": row.state,
            "started_at": _iso(row.created_at),
            "resolved_at": _iso(row.resolved_at),
            "outcome": (
                "resolved by an agent"
                if row.id in resolutions
                else ("answered by the bot" if row.state == "bot" else row.state)
            ),
            "resolution": resolutions.get(row.id),
            "agents": agents.get(row.id, []),
            "answered_entries": answered.get(row.id, []),
        }
        for row in rows
    ]


async def context_card(session: AsyncSession, conversation: Conversation) -> dict[str, Any]:
    """The card as it is now: derived from the stored conversation, plus the providers' last answers."""
    customer = await session.get(Customer, conversation.customer_id)
    assert customer is not None
    transcript = await MessageRepository(session).transcript(conversation.id)
    stored = conversation.handoff_context or {}
    card = build_context(conversation, customer, transcript, str(stored.get("reason") or ""))
    providers = stored.get("providers") or {}
    card["providers"] = providers
    card["vip"] = is_vip(providers)
    card["priority"] = conversation.priority or 0
    card["previous_conversations"] = await previous_conversations(session, customer.id, conversation.id)
    return card


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).isoformat()

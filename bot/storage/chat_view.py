"""What a customer sees of their chat: the stored messages and where the conversation stands.

Channels that serve the chat themselves (the web chat) read it through `Inbox.chat_view`, so a reply is
never lost when the visitor's live stream is not connected: everything shown comes from the database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.agents import iso
from bot.handoff.queue import queue_position
from bot.states import State
from bot.storage.database import Database
from bot.storage.models import Agent, Conversation, Customer, Message

MAX_MESSAGES = 500  # one call returns at most this many; page on with the last id


async def chat_view(
    database: Database, channel: str, customer_id: str, after: int | None, limit: int = MAX_MESSAGES
) -> dict[str, Any]:
    """Return {"state", "queue_position", "agent", "last_id", "messages"} for one customer of a channel.

    `messages` are those after message id `after` (both directions, oldest first, at most `limit`);
    `after=None` returns none (just the state and the last id). Failed outbound messages are left out.
    """
    view: dict[str, Any] = {
        "state": State.BOT.value,
        "queue_position": None,
        "agent": None,
        "last_id": 0,
        "messages": [],
    }
    async with database.session() as session:
        customer = (
            await session.execute(
                select(Customer).where(Customer.channel == channel, Customer.external_id == customer_id)
            )
        ).scalar_one_or_none()
        if customer is None:
            return view
        conversation_ids = select(Conversation.id).where(Conversation.customer_id == customer.id)
        view.update(await _standing(session, customer))
        view["last_id"] = int(
            (
                await session.execute(
                    select(func.max(Message.id)).where(Message.conversation_id.in_(conversation_ids))
                )
            ).scalar_one()
            or 0
        )
        if after is not None:
            view["messages"] = await _messages(session, conversation_ids, after, limit)
    return view


async def _standing(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    """Where the customer's latest conversation stands: its state, queue position and agent."""
    current = (
        (
            await session.execute(
                select(Conversation)
                .where(Conversation.customer_id == customer.id)
                .order_by(Conversation.id.desc())
                .limit(1)
            )
        )
        .scalars()
        .first()
    )
    if current is None:
        return {}
    standing: dict[str, Any] = {"state": current.state}
    if current.state == State.WAITING and current.assigned_agent_id is None:
        standing["queue_position"] = await queue_position(session, current)
    if current.state == State.WITH_AGENT and current.assigned_agent_id is not None:
        agent = await session.get(Agent, current.assigned_agent_id)
        standing["agent"] = agent.name if agent is not None else None
    return standing


async def _messages(
    session: AsyncSession, conversation_ids: Select[Any], after: int, limit: int
) -> list[dict[str, Any]]:
    """The customer's messages after id `after`, both directions, oldest first; failed ones left out."""
    rows = (
        (
            await session.execute(
                select(Message)
                .where(
                    Message.conversation_id.in_(conversation_ids),
                    Message.id > after,
                    Message.status != "failed",
                )
                .order_by(Message.id)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    names: dict[int, str] = {}
    agent_ids = {row.agent_id for row in rows if row.agent_id}
    if agent_ids:
        names = {
            agent.id: agent.name
            for agent in (await session.execute(select(Agent).where(Agent.id.in_(agent_ids)))).scalars()
        }
    return [
        {
            "id": row.id,
            "direction": row.direction,
            "sender": row.sender,
            "agent": names.get(row.agent_id) if row.agent_id else None,
            "text": row.text,
            "buttons": [
                {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                for b in row.buttons or []
            ],
            "attachments": [a.get("kind") for a in row.attachments or []],
            "at": iso(row.created_at),
        }
        for row in rows
    ]

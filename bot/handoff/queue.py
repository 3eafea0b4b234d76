"""The waiting queue: oldest first; the position a customer is told is computed, not guessed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.base import QueueTicket
from bot.states import State
from bot.storage.models import Conversation, Message
from bot.storage.repositories import ConversationRepository


async def queue_position(session: AsyncSession, conversation: Conversation) -> int:
    """Return 1 + the number of conversations that have waited longer than this one."""
    query = (
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.state == State.WAITING,
            Conversation.id != conversation.id,
            Conversation.waiting_since <= conversation.waiting_since,
        )
    )
    return int((await session.execute(query)).scalar_one()) + 1


class WaitingQueue:
    """A first-come queue with an audit trail; assignment to agents plugs in on top of it."""

    async def enqueue(
        self, session: AsyncSession, conversation: Conversation, context: dict[str, Any], reason: str
    ) -> QueueTicket:
        conversation.handoff_context = context
        await ConversationRepository(session).add_event(conversation.id, "queued", "bot", {"reason": reason})
        return QueueTicket(position=await queue_position(session, conversation))

    async def customer_message(
        self, session: AsyncSession, conversation: Conversation, message: Message
    ) -> None:
        await ConversationRepository(session).add_event(
            conversation.id, "customer_message_for_agent", "customer", {"message_id": message.id}
        )

    async def cancelled(self, session: AsyncSession, conversation: Conversation) -> None:
        await ConversationRepository(session).add_event(conversation.id, "left_queue", "customer", {})

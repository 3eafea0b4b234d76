"""The engine's side of the live desk: a conversation joins the queue, the customer writes, or leaves.

These run inside the engine's transaction; what needs the network (the context providers) or other
conversations (the assigner) starts after that transaction has committed and the customer was answered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.assignment import audit, end_assignment
from bot.handoff.base import QueueTicket
from bot.handoff.context import customer_info
from bot.handoff.desk import Desk
from bot.handoff.providers import fetch_all, is_vip
from bot.handoff.queue import estimate_wait, handling_time, queue_position, staffing
from bot.handoff.texts import estimate_text, text, when_text
from bot.insights import flags, metrics
from bot.states import HUMAN_STATES
from bot.storage.models import Conversation, Customer, Message
from bot.storage.repositories import ConversationRepository


class Intake:
    """What the conversation engine calls at a handoff and after it (the `Handoff` protocol's moves)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    async def enqueue(
        self, session: AsyncSession, conversation: Conversation, context: dict[str, Any], reason: str
    ) -> QueueTicket:
        """Queue a conversation (inside the engine's transaction) and say honestly how long it may take."""
        desk = self.desk
        now = desk.clock()
        stored = dict(context)
        stored["providers"] = {provider.name: {"status": "pending"} for provider in desk.providers}
        conversation.handoff_context = stored
        conversation.handoff_at = now
        conversation.first_response_at = None
        conversation.sla_breached_at = None
        conversation.closed_notice_at = None
        conversation.assigned_agent_id = None
        await flags.at_handoff(session, desk.settings, conversation, reason, now)  # Code Red signals
        conversation.priority = self.priority_for(reason, {}, conversation.code_red_at is not None)
        audit(session, conversation.id, "queued", "bot", reason=reason, priority=conversation.priority)
        desk.on_commit(session, lambda: metrics.handoff(reason))
        await session.flush()
        position = await queue_position(session, conversation)
        staff = await staffing(session)
        language = conversation.language
        estimate: float | None = None
        if staff.online_agents == 0 and not desk.hours.is_open(now):
            back = desk.hours.next_open(now)
            notice = (
                text("closed", language, when=when_text(back, language))
                if back
                else text("closed_no_agents", language)
            )
            conversation.closed_notice_at = now
        else:
            handling, _ = await handling_time(
                session, desk.config.estimate_sample, desk.config.default_handling_time
            )
            estimate = estimate_wait(position, handling, staff)
            notice = estimate_text(estimate, language)
        conversation.estimate_told_seconds = estimate
        conversation.estimate_told_at = now
        conversation_id = conversation.id
        desk.on_commit(
            session, lambda: desk.spawn(self._after_handoff(conversation_id), name="after-handoff")
        )
        return QueueTicket(position, estimate, notice)

    async def customer_message(
        self, session: AsyncSession, conversation: Conversation, message: Message
    ) -> None:
        """A customer wrote while waiting or with an agent: it is for the agent (a live event)."""
        audit(
            session,
            conversation.id,
            "customer_message_for_agent",
            "customer",
            conversation.assigned_agent_id,
            message_id=message.id,
            text=message.text[:1000],
            attachments=[a.get("kind") for a in message.attachments or []],
        )
        self.desk.on_commit(session, self.desk.notifier.notify)

    async def cancelled(self, session: AsyncSession, conversation: Conversation) -> None:
        """The customer went back to the bot while waiting."""
        ended = await end_assignment(session, conversation.id, "customer_left")
        audit(session, conversation.id, "left_queue", "customer", ended.agent_id if ended else None)
        self.desk.on_commit(session, self.desk.notifier.notify)

    def priority_for(
        self, reason: str | None, providers: dict[str, dict[str, Any]], code_red: bool = False
    ) -> int:
        """The queue bump: `handoff.priority.complaint` for complaints, `.code_red` for Code Red, `.vip` for
        VIP customers (summed)."""
        bumps = self.desk.config.priority
        priority = 0
        if reason == "complaint":
            priority += bumps.get("complaint", 0)
        if code_red:
            priority += flags.code_red_bump(self.desk.settings, reason)
        if is_vip(providers):
            priority += bumps.get("vip", 0)
        return priority

    async def _after_handoff(self, conversation_id: int) -> None:
        self.desk.notifier.notify()  # the queue grew: whoever follows the events looks now
        if self.desk.providers:
            await self.refresh_context(conversation_id)
        await self.desk.assign()

    async def refresh_context(self, conversation_id: int) -> dict[str, dict[str, Any]]:
        """Ask the context providers (each within its timeout) and put their answers on the card."""
        database = self.desk.database
        async with database.session() as session:
            conversation = await session.get(Conversation, conversation_id)
            customer = await session.get(Customer, conversation.customer_id) if conversation else None
            if conversation is None or customer is None:
                return {}
            info = customer_info(conversation, customer)
        results = await fetch_all(self.desk.providers, info)
        async with database.session() as session:
            conversation = await ConversationRepository(session).get(conversation_id, lock=True)
            if conversation is None:
                return results
            stored = dict(conversation.handoff_context or {})
            stored["providers"] = results
            conversation.handoff_context = stored
            audit(
                session,
                conversation.id,
                "context_updated",
                "system",
                conversation.assigned_agent_id,
                providers={name: result["status"] for name, result in results.items()},
            )
            if conversation.state in HUMAN_STATES:
                self._reprioritise(session, conversation, stored.get("reason"), results)
        self.desk.notifier.notify()
        return results

    def _reprioritise(
        self,
        session: AsyncSession,
        conversation: Conversation,
        reason: str | None,
        providers: dict[str, dict[str, Any]],
    ) -> None:
        """A provider's answer (a VIP) can move a queued conversation up: audited as priority_changed."""
        priority = self.priority_for(reason, providers, conversation.code_red_at is not None)
        if priority == conversation.priority:
            return
        audit(
            session,
            conversation.id,
            "priority_changed",
            "system",
            None,
            priority=priority,
            previous=conversation.priority,
            reason="vip" if is_vip(providers) else "providers",
        )
        conversation.priority = priority

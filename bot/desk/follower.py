"""From the handoff's audit trail to the desk's posts: the desk follows the events table.

Every move (queued, assigned, an agent's message from the console, a note, a transfer, the resolution,
an SLA breach, a customer's message for the agent) is an audit row the live desk wrote anyway; this turns
each new row into what the forum group should show, stored as posts (bot/desk/store.py) with the event's
id in their key, so a row read twice is posted once. The queue itself knows nothing of Telegram.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.desk import card as render
from bot.desk.store import CURSOR, add_post, state_row, topic_of_customer
from bot.handoff.context import context_card
from bot.storage.models import Agent, Conversation, Customer, DeskTopic, Event, Message

log = logging.getLogger(__name__)
VIA = "telegram_desk"  # what the desk's own moves carry in their audit rows: not posted back to it
BATCH = 200
_MEDIA_METHODS = {"photo": "sendPhoto", "document": "sendDocument"}


class Follower:
    """Reads events after the cursor and stores the posts they call for, in one transaction per batch."""

    def __init__(self, chat_id: int, general_thread_id: int | None) -> None:
        self.chat_id = chat_id
        self.general_thread_id = general_thread_id

    async def round(self, session: AsyncSession) -> int:
        """Turn the next batch of events into posts; return how many events were read."""
        cursor = await state_row(session, CURSOR, lock=True)
        events = list(
            (
                await session.execute(
                    select(Event).where(Event.id > cursor.number).order_by(Event.id).limit(BATCH)
                )
            ).scalars()
        )
        for event in events:
            if event.conversation_id is None:
                continue
            conversation = await session.get(Conversation, event.conversation_id)
            if conversation is None:
                continue
            await self.on_event(session, event, conversation)
        if events:
            cursor.number = events[-1].id
        return len(events)

    async def on_event(self, session: AsyncSession, event: Event, conversation: Conversation) -> None:
        data = event.data or {}
        kind = event.kind
        if kind == "queued":
            await self._queued(session, event, conversation)
            return
        topic = await self._topic(session, conversation)
        if topic is None or topic.status == "gone":
            return  # never handed off while the desk ran, or deleted by hand: nothing to show it in
        line = await self._line(session, event, conversation, data)
        if kind == "customer_message_for_agent":
            await self._mirror_customer(session, event, conversation, topic, data)
        elif kind == "context_updated":
            await self._card(session, event, conversation, topic, edit=True)
        elif line is not None:
            await self._post(session, event, topic, line)
        if kind == "resolved":
            await add_post(session, f"close:{event.id}", "close", {}, topic.id, conversation.id)
        if kind == "sla_breached" and data.get("state") == "waiting":
            await self._queue_line(session, event, conversation, topic, data)

    async def _queued(self, session: AsyncSession, event: Event, conversation: Conversation) -> None:
        customer = await session.get(Customer, conversation.customer_id)
        assert customer is not None
        name = render.topic_name(customer.display_name, conversation.channel, conversation.language)
        topic = await topic_of_customer(session, customer.id, self.chat_id, name)
        if topic.status == "gone" or topic.chat_id != self.chat_id:
            # deleted by hand (or another group now): a new topic is made for the customer's return
            topic.thread_id, topic.status, topic.card_message_id, topic.chat_id = (
                None,
                "new",
                None,
                self.chat_id,
            )
            topic.claimed_until = None
        elif topic.status != "new":
            # closed at the last resolution (or about to be: its close post may not be sent yet)
            await add_post(session, f"reopen:{event.id}", "reopen", {}, topic.id, conversation.id)
        topic.name = name
        topic.card_conversation_id = conversation.id
        await self._card(session, event, conversation, topic, edit=False)

    async def _card(
        self, session: AsyncSession, event: Event, conversation: Conversation, topic: DeskTopic, edit: bool
    ) -> None:
        card = await context_card(session, conversation)
        body = {"html": render.render_card(card, conversation.id, conversation.state)}
        if edit and topic.card_conversation_id == conversation.id:
            await add_post(session, f"card:{event.id}", "card_edit", body, topic.id, conversation.id)
        else:
            await add_post(session, f"card:{event.id}", "card", body, topic.id, conversation.id)

    async def _topic(self, session: AsyncSession, conversation: Conversation) -> DeskTopic | None:
        query = select(DeskTopic).where(DeskTopic.customer_id == conversation.customer_id)
        return (await session.execute(query)).scalar_one_or_none()

    async def _post(self, session: AsyncSession, event: Event, topic: DeskTopic, html_text: str) -> None:
        await add_post(
            session, f"event:{event.id}", "text", {"html": html_text}, topic.id, event.conversation_id
        )

    async def _line(
        self, session: AsyncSession, event: Event, conversation: Conversation, data: dict[str, Any]
    ) -> str | None:
        """The one-line account of a move in the topic, or None when it needs none."""
        kind = event.kind
        who = await self._who(session, event)
        if kind == "assigned":
            how = {"auto": "assigned", "take": "took it", "transfer": "got it by transfer"}.get(
                str(data.get("how")), "has it"
            )
            return f"🙋 {who} {how}: the conversation is theirs now"
        if kind == "agent_message" and data.get("via") != VIA:
            message = await session.get(Message, data.get("message_id") or 0)
            if message is None:
                return None
            return f"💬 {who} (console): {render.esc(message.text)}"[: render.TEXT_LIMIT]
        if kind == "note" and data.get("via") != VIA:
            return f"📝 note by {render.esc(data.get('author'))}: {render.esc(data.get('text'))}"[
                : render.TEXT_LIMIT
            ]
        if kind == "transferred":
            target = "the queue" if data.get("to") == "queue" else render.esc(data.get("to"))
            reason = f" ({render.esc(data['reason'])})" if data.get("reason") else ""
            return f"🔀 transferred to {target} by {render.esc(event.actor)}{reason}"
        if kind == "returned_to_queue" and data.get("reason") != "transferred_to_queue":
            return f"↩️ back in the queue ({render.esc(data.get('reason'))})"
        if kind == "resolved":
            reason = f": {render.esc(data['reason'])}" if data.get("reason") else ""
            return f"✅ resolved by {render.esc(event.actor)}{reason}. The topic reopens if the customer comes back."
        if kind == "left_queue":
            return "🚪 the customer went back to the bot"
        if kind == "template_sent":
            return f"📨 {who} sent the re-engagement template"
        if kind == "sla_breached" and data.get("state") == "with_agent":
            return f"⏰ no answer yet after {int(data.get('waited_seconds') or 0) // 60} min"
        return None

    async def _who(self, session: AsyncSession, event: Event) -> str:
        agent = await session.get(Agent, event.agent_id) if event.agent_id else None
        if agent is None:
            return render.esc(event.actor)
        return render.mention(agent.name, agent.telegram_user_id)

    async def _mirror_customer(
        self,
        session: AsyncSession,
        event: Event,
        conversation: Conversation,
        topic: DeskTopic,
        data: dict[str, Any],
    ) -> None:
        """The customer's message, into the topic: text, and files a Telegram customer sent as themselves."""
        message = await session.get(Message, data.get("message_id") or 0)
        if message is None:
            return
        attachments = [a for a in message.attachments or [] if isinstance(a, dict)]
        sendable = [
            a
            for a in attachments
            if conversation.channel == "telegram" and a.get("kind") in _MEDIA_METHODS and a.get("file_id")
        ]
        words = message.text
        rest = [a for a in attachments if a not in sendable]
        if rest:
            words = f"{words} {render.attachment_words(rest)}".strip()
        if words or not sendable:
            text = f"👤 {render.esc(words or '(empty)')}"[: render.TEXT_LIMIT]
            await add_post(session, f"event:{event.id}", "text", {"html": text}, topic.id, conversation.id)
        for number, attachment in enumerate(sendable):
            body = {
                "method": _MEDIA_METHODS[attachment["kind"]],
                "file_id": attachment["file_id"],
                "caption": "👤",
            }
            await add_post(session, f"event:{event.id}:{number}", "media", body, topic.id, conversation.id)

    async def _queue_line(
        self,
        session: AsyncSession,
        event: Event,
        conversation: Conversation,
        topic: DeskTopic,
        data: dict[str, Any],
    ) -> None:
        """A short line in the general topic: this one has waited past the SLA."""
        minutes = int(data.get("waited_seconds") or 0) // 60
        link = render.topic_link(self.chat_id, topic.thread_id)
        where = f' · <a href="{link}">topic</a>' if link else ""
        text = f"⏰ #{conversation.id} {render.esc(topic.name)} waits {minutes} min{where}"
        await add_post(
            session, f"queue:{event.id}", "text", {"html": text, "general": True}, None, conversation.id
        )

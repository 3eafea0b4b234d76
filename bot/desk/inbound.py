"""What agents do in the forum group: write to the customer, or give a command; all through the moves.

Only messages from active agents linked to their Telegram account count; anybody else in the group is
ignored and never reaches a customer. Every move goes through `Moves` (bot/handoff/moves.py), the same
calls the agent API makes, so the rules (capacity, who holds a conversation, supervisors) and the audit
trail are the API's. Refusals come back as a short notice in the topic, stored as a desk post.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.adapters.base import ensure_free_form_allowed
from bot.desk import card as render
from bot.desk.follower import VIA
from bot.desk.sender import topic_by_thread
from bot.desk.store import HEALTH, add_post, seen, state_row
from bot.errors import OutsideMessagingWindow, SupportBotError
from bot.handoff.agents import AgentRepository, actor
from bot.handoff.live import LiveHandoff
from bot.handoff.moves import TemplateFailed
from bot.messages import Attachment
from bot.states import State
from bot.storage.agent_view import queue_positions
from bot.storage.models import Agent, Conversation, DeskTopic

log = logging.getLogger(__name__)
STATUS_COMMANDS = {"/online": "online", "/away": "away", "/offline": "offline"}


@dataclass(frozen=True)
class DeskMessage:
    """One message in the group, as the desk reads it."""

    update_key: str
    agent: Agent
    thread_id: int | None
    text: str
    attachments: tuple[Attachment, ...]


class Inbound:
    """Handles the group's updates (the Telegram channel hands them over: `handle`)."""

    def __init__(self, handoff: LiveHandoff, chat_id: int, wake: Callable[[], None]) -> None:
        self.handoff = handoff
        self.moves = handoff.moves
        self.database = handoff.database
        self.chat_id = chat_id
        self.wake = wake

    async def handle(self, update: dict[str, Any]) -> bool:
        """Handle an update from a group; False when it is not the desk's (another group)."""
        kind = next((k for k in update if k != "update_id"), "")
        body = update.get(kind)
        if not isinstance(body, dict) or (body.get("chat") or {}).get("id") != self.chat_id:
            return False
        if kind == "my_chat_member":
            await self._membership(body)
        elif kind == "message":
            await self._message(body)
        return True  # edits, reactions, other updates from the desk: nothing to do

    async def _membership(self, body: dict[str, Any]) -> None:
        status = (body.get("new_chat_member") or {}).get("status")
        problem = None if status in ("administrator", "creator") else f"the bot is {status} in the desk group"
        if problem:
            log.error("telegram desk: %s; conversations stay in the console", problem)
        else:
            log.info("telegram desk: the bot is an administrator of the desk group again")
        async with self.database.session() as session:
            (await state_row(session, HEALTH)).status = problem

    async def _message(self, body: dict[str, Any]) -> None:
        sender = body.get("from") or {}
        if sender.get("is_bot") or not isinstance(sender.get("id"), int):
            return
        key = f"seen:{self.chat_id}:{body.get('message_id')}"
        async with self.database.session() as session:
            if await seen(session, key):
                return  # a redelivered update: handled before
            agent = await AgentRepository(session).by_telegram_user(sender["id"])
        if agent is None or not agent.active:
            log.info(
                "telegram desk: message from %s ignored (no active agent is linked to them)", sender["id"]
            )
            return
        thread = body.get("message_thread_id") if body.get("is_topic_message") else None
        message = DeskMessage(
            key, agent, thread, str(body.get("text") or body.get("caption") or ""), _files(body)
        )
        await self.act(message)
        async with self.database.session() as session:
            await add_post(session, key, "seen", {}, status="skipped")

    async def act(self, message: DeskMessage) -> None:
        topic = (
            await topic_by_thread(self.database, self.chat_id, message.thread_id)
            if message.thread_id
            else None
        )
        words = message.text.split(maxsplit=1)
        head, rest = (words[0] if words else ""), (words[1] if len(words) > 1 else "")
        command = head.split("@", 1)[0].lower() if head.startswith("/") else ""
        try:
            if command in STATUS_COMMANDS:
                change = await self.moves.set_status(
                    message.agent.id, STATUS_COMMANDS[command], actor(message.agent)
                )
                await self.notice(message, topic, f"{render.esc(message.agent.name)} is {change.status}")
            elif command == "/queue":
                await self.notice(message, topic, await self.queue_text())
            elif topic is None:
                if command:
                    await self.notice(message, None, "That works in a conversation's topic.")
            else:
                await self._in_topic(message, topic, command, rest.strip())
        except OutsideMessagingWindow as exc:
            await self.notice(
                message,
                topic,
                f"⚠️ {render.esc(exc)}\n/template sends the re-engagement template (/take the conversation first).",
            )
        except (SupportBotError, ValueError) as exc:
            await self.notice(message, topic, f"⚠️ {render.esc(exc)}")

    async def _in_topic(self, message: DeskMessage, topic: DeskTopic, command: str, rest: str) -> None:
        conversation = await self._conversation(topic)
        if conversation is None:
            await self.notice(message, topic, "No conversation here.")
            return
        agent_id, cid = message.agent.id, conversation.id
        moves: dict[str, Callable[[], Awaitable[object]]] = {
            "/take": lambda: self.moves.accept(cid, agent_id),
            "/note": lambda: self.moves.note(cid, agent_id, rest, via=VIA),
            "/resolve": lambda: self.moves.resolve(cid, agent_id, rest or None),
            "/template": lambda: self.moves.send_template(cid, agent_id),
            "/transfer": lambda: self._transfer(cid, agent_id, rest),
        }
        if command == "/card":
            await self._repost_card(message, topic, conversation)
        elif command == "/note" and not rest:
            await self.notice(message, topic, "Usage: /note TEXT")
        elif command in moves:
            try:
                await moves[command]()
            except TemplateFailed as exc:
                await self.notice(message, topic, f"⚠️ the template was refused: {render.esc(exc)}")
        elif command and command not in ("/start", "/help"):
            await self.notice(
                message, topic, "Commands: /take /note TEXT /transfer LOGIN|queue /resolve [reason] /card"
            )
        elif not command:
            await self._relay(message, topic, conversation)

    async def _transfer(self, conversation_id: int, agent_id: int, target: str) -> object:
        if not target:
            raise ValueError("Usage: /transfer LOGIN or /transfer queue")
        to_queue = target.lower() == "queue"
        return await self.moves.transfer(
            conversation_id, agent_id, None if to_queue else target.split()[0], to_queue=to_queue
        )

    async def _relay(self, message: DeskMessage, topic: DeskTopic, conversation: Conversation) -> None:
        """An agent's words or file for the customer: the first one in a waiting conversation takes it."""
        if not message.text.strip() and not message.attachments:
            await self.notice(
                message, topic, "Only text, photos and documents reach the customer; nothing was sent."
            )
            return
        if conversation.state in (State.BOT, State.RESOLVED):
            await self.notice(
                message, topic, "This conversation is closed; nothing was sent to the customer."
            )
            return
        if message.attachments and conversation.channel != "telegram":
            await self.notice(
                message,
                topic,
                f"Files reach Telegram customers only; this customer writes from {render.channel_name(conversation.channel)}. Nothing was sent.",
            )
            return
        channel = self.handoff.channels.get(conversation.channel)
        if channel is not None:  # refused before taking it: a message that cannot go takes nothing
            ensure_free_form_allowed(channel, conversation.last_customer_message_at, self.handoff.clock())
        if conversation.state == State.WAITING:
            await self.moves.accept(conversation.id, message.agent.id)
        words = "" if message.attachments else message.text  # a caption travels with its file
        await self.moves.reply(conversation.id, message.agent.id, words, message.attachments, via=VIA)

    async def _conversation(self, topic: DeskTopic) -> Conversation | None:
        """The customer's latest conversation: the one the topic is about now."""
        async with self.database.session() as session:
            query = (
                select(Conversation)
                .where(Conversation.customer_id == topic.customer_id)
                .order_by(Conversation.id.desc())
                .limit(1)
            )
            return (await session.execute(query)).scalar_one_or_none()

    async def _repost_card(self, message: DeskMessage, topic: DeskTopic, conversation: Conversation) -> None:
        from bot.handoff.context import context_card

        async with self.database.session() as session:
            fresh = await session.get(Conversation, conversation.id)
            assert fresh is not None
            body = {"html": render.render_card(await context_card(session, fresh), fresh.id, fresh.state)}
            await add_post(session, f"card:{message.update_key}", "card", body, topic.id, fresh.id)
        self.wake()

    async def queue_text(self) -> str:
        """The waiting conversations, in queue order, with links to their topics."""
        async with self.database.session() as session:
            places = await queue_positions(session)
            if not places:
                return "The queue is empty."
            rows = (
                await session.execute(
                    select(Conversation, DeskTopic)
                    .outerjoin(DeskTopic, DeskTopic.customer_id == Conversation.customer_id)
                    .where(Conversation.id.in_(list(places)))
                )
            ).all()
        lines = [f"<b>{len(places)} waiting</b>"]
        for conversation, topic in sorted(rows, key=lambda row: places[row[0].id]):
            link = render.topic_link(self.chat_id, topic.thread_id) if topic else None
            name = render.esc(topic.name if topic else render.channel_name(conversation.channel))
            lines.append(
                f"{places[conversation.id]}. #{conversation.id} "
                + (f'<a href="{link}">{name}</a>' if link else name)
            )
        return render.cut("\n".join(lines))

    async def notice(self, message: DeskMessage, topic: DeskTopic | None, html_text: str) -> None:
        """A short answer in the topic (or the general topic), sent through the desk's stored outbox."""
        async with self.database.session() as session:
            await add_post(
                session,
                f"notice:{message.update_key}",
                "text",
                {"html": html_text, "general": topic is None},
                topic.id if topic else None,
            )
        self.wake()


def _files(body: dict[str, Any]) -> tuple[Attachment, ...]:
    """A photo (its largest size) or a document the agent sent, by file id (the same bot sends it on)."""
    caption = body.get("caption")
    photos = [p for p in body.get("photo") or [] if isinstance(p, dict)]
    if photos:
        best = max(
            photos, key=lambda p: (p.get("file_size") or 0, (p.get("width") or 0) * (p.get("height") or 0))
        )
        return (Attachment("photo", str(best.get("file_id")), "image/jpeg", caption),)
    document = body.get("document")
    if isinstance(document, dict) and document.get("file_id"):
        return (Attachment("document", str(document["file_id"]), document.get("mime_type"), caption),)
    return ()

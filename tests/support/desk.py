"""Telegram agent desk test kit: the whole service with the desk, a Telegram and a WhatsApp customer."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from bot.adapters.telegram import TelegramChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.desk.service import TelegramDesk
from bot.desk.store import CURSOR
from bot.handoff.agents import AgentRepository
from bot.storage.models import (
    Agent,
    Conversation,
    Customer,
    DeskPost,
    DeskState,
    DeskTopic,
    Event,
    Message,
)
from tests.support.graph_api import GraphApiStub
from tests.support.handoff import PASSWORD
from tests.support.telegram import SECRET
from tests.support.telegram_api import TelegramApiStub
from tests.support.whatsapp import WEBHOOK, sign

DESK = -1001234567890  # the forum supergroup
_message_ids = itertools.count(70001)


def group_message(
    thread: int | None, user: int, text: str = "", *, photo: str | None = None, name: str = "Olga"
) -> dict[str, Any]:
    """An Update: `user` wrote in the desk group, in topic `thread` (None: the general topic)."""
    message: dict[str, Any] = {
        "message_id": next(_message_ids),
        "from": {"id": user, "is_bot": False, "first_name": name, "language_code": "en"},
        "chat": {"id": DESK, "title": "Support desk", "type": "supergroup", "is_forum": True},
        "date": int(time.time()),
    }
    if thread is not None:
        message.update(message_thread_id=thread, is_topic_message=True)
    if photo:
        message["photo"] = [
            {"file_id": photo + "-small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 900},
            {"file_id": photo, "file_unique_id": "b", "width": 800, "height": 800, "file_size": 80000},
        ]
        if text:
            message["caption"] = text
    else:
        message["text"] = text
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"message": message}


async def linked_agent(bot: SupportBot, login: str, telegram_user_id: int, **extra: Any) -> Agent:
    async with bot.database.session() as session:
        agent = await AgentRepository(session).create(
            login, PASSWORD, extra.pop("name", login.title()), telegram_user_id=telegram_user_id, **extra
        )
        await session.flush()
        return agent


@dataclass
class DeskRig:
    bot: SupportBot
    desk: TelegramDesk
    telegram: TelegramChannel
    whatsapp: WhatsAppChannel
    api: TelegramApiStub
    graph: GraphApiStub
    http: httpx.AsyncClient

    async def telegram_webhook(self, update: dict[str, Any]) -> None:
        """POST an update to /webhooks/telegram as Telegram does in webhook mode (it is handled before the 200)."""
        body = json.dumps({"update_id": next(_message_ids), **update}).encode()
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
        response = await self.http.post("/webhooks/telegram", content=body, headers=headers)
        assert response.status_code == 200, response.text

    async def whatsapp_says(self, text: str, wamid: str) -> None:
        from tests.support.whatsapp import text_webhook

        body = json.dumps(text_webhook(text, wamid)).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)}
        response = await self.http.post(WEBHOOK, content=body, headers=headers)
        assert response.status_code == 200, response.text
        await self.whatsapp.drain()

    async def conversation(self, channel: str, external_id: str) -> Conversation:
        async with self.bot.database.session() as session:
            query = (
                select(Conversation)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Customer.channel == channel, Customer.external_id == external_id)
                .order_by(Conversation.id.desc())
            )
            found = (await session.execute(query)).scalars().first()
            assert found is not None
            return found

    async def topic(self, channel: str, external_id: str, within: float = 10.0) -> DeskTopic:
        """The customer's topic once Telegram has it (createForumTopic answered)."""
        deadline = time.monotonic() + within
        while True:
            async with self.bot.database.session() as session:
                query = (
                    select(DeskTopic)
                    .join(Customer, Customer.id == DeskTopic.customer_id)
                    .where(Customer.channel == channel, Customer.external_id == external_id)
                )
                found = (await session.execute(query)).scalar_one_or_none()
            if found is not None and found.thread_id is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no topic for {channel}:{external_id} within {within}s")
            await asyncio.sleep(0.02)

    async def settle(self, within: float = 15.0) -> None:
        """Wait until every update is handled, every reply delivered and every desk post sent."""
        deadline = time.monotonic() + within
        while True:
            self.desk.wake()
            await self.bot.outbox.deliver()
            async with self.bot.database.session() as session:
                pending = (
                    await session.execute(select(DeskPost.key).where(DeskPost.status == "pending"))
                ).all()
                newest = (await session.execute(select(func.max(Event.id)))).scalar() or 0
                cursor = await session.get(DeskState, CURSOR)
                unsent = (
                    await session.execute(
                        select(Message.id).where(Message.direction == "out", Message.status == "pending")
                    )
                ).all()
            followed = cursor is not None and cursor.number >= newest
            if followed and not pending and not unsent and self.api.pending_updates == 0:
                await asyncio.sleep(0.05)  # a round in flight finishes
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"desk posts still pending: {pending}")
            await asyncio.sleep(0.03)

    async def events(self, conversation_id: int) -> list[Event]:
        async with self.bot.database.session() as session:
            query = select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
            return list((await session.execute(query)).scalars())

    def topic_texts(self, thread_id: int) -> list[str]:
        return [str(p.get("visible") or p.get("caption") or "") for p in self.api.in_topic(thread_id)]

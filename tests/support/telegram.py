"""Telegram test kit for the aiogram and PTB tests: updates shaped like the recorded ones, and a rig."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from bot.adapters.telegram import WEBHOOK_PATH, TelegramChannel
from bot.app import SupportBot
from bot.storage.models import Conversation, Customer, Message
from tests.support.paths import REPO
from tests.support.telegram_api import TelegramApiStub

FIXTURES = REPO / "tests" / "fixtures" / "telegram"
TOKEN = "7000000001:AAH-stand-in-token_for_tests"
SECRET = "test-webhook-secret_1"
CUSTOMER = 12345678  # the user in the illemius fixtures


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def text_update(
    text: str, *, user: int = CUSTOMER, language: str | None = "ru", message_id: int = 11223
) -> dict[str, Any]:
    """Return an Update like the illemius fixture message.json, carrying `text`."""
    update = copy.deepcopy(load("illemius_telegram_types/message.json"))
    message = update["message"]
    message.update(text=text, message_id=message_id)
    if text.startswith("/"):  # Telegram marks commands with an entity (PTB's CommandHandler needs it)
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    message["from"]["id"] = message["chat"]["id"] = user
    if language is None:
        message["from"].pop("language_code")
    else:
        message["from"]["language_code"] = language
    return update


def callback_update(
    data: str, *, pressed: int, query_id: str, user: int = CUSTOMER, language: str = "ru"
) -> dict[str, Any]:
    """Return a callback_query Update: the customer pressed a button under our message `pressed`."""
    person = text_update("", user=user, language=language)["message"]["from"]
    return {
        "callback_query": {
            "id": query_id,
            "from": person,
            "message": {
                "message_id": pressed,
                "from": {
                    "id": 7000000001,
                    "is_bot": True,
                    "first_name": "Shop Support",
                    "username": "shop_support_bot",
                },
                "chat": {"id": user, "first_name": person["first_name"], "type": "private"},
                "date": 1717054906,
                "text": "…",
            },
            "chat_instance": "-5163346071488414311",
            "data": data,
        }
    }


def for_customer(
    update: dict[str, Any], user: int = CUSTOMER, message_id: int | None = None
) -> dict[str, Any]:
    """Return a fixture update re-addressed to `user` (and given a fresh message id)."""
    update = copy.deepcopy(update)
    body = update.get("message") or update.get("edited_message") or update.get("my_chat_member") or {}
    for key in ("from", "chat"):
        if isinstance(body.get(key), dict):
            body[key]["id"] = user
    if message_id is not None and "message_id" in body:
        body["message_id"] = message_id
    return update


def buttons_of(sent: dict[str, Any]) -> list[tuple[str, str]]:
    rows = (sent.get("reply_markup") or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


def kb_answer(bot: SupportBot, entry_id: str, language: str) -> str:
    entry = bot.matcher().kb.get(entry_id)
    assert entry is not None
    return entry.answer[language]


def telegram_settings(api_base: str, **extra: Any) -> dict[str, Any]:
    return {"token": TOKEN, "api_base": api_base, "polling_timeout_seconds": 1, **extra}


@dataclass
class Rig:
    """Our service with the aiogram channel running (polling or webhook) and the stand-in Bot API."""

    bot: SupportBot
    channel: TelegramChannel
    api: TelegramApiStub
    http: httpx.AsyncClient | None = None

    async def customer(self, user: int = CUSTOMER) -> Customer:
        async with self.bot.database.session() as session:
            query = select(Customer).where(Customer.channel == "telegram", Customer.external_id == str(user))
            found = (await session.execute(query)).scalar_one_or_none()
            assert found is not None
            return found

    async def conversation(self, user: int = CUSTOMER) -> Conversation:
        async with self.bot.database.session() as session:
            query = (
                select(Conversation)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Customer.channel == "telegram", Customer.external_id == str(user))
                .order_by(Conversation.id.desc())
            )
            found = (await session.execute(query)).scalars().first()
            assert found is not None
            return found

    async def messages(self, direction: str | None = None) -> list[Message]:
        query = select(Message).order_by(Message.id)
        if direction:
            query = query.where(Message.direction == direction)
        async with self.bot.database.session() as session:
            return list((await session.execute(query)).scalars())

    async def pump_outbox(self) -> None:
        """Do what the outbox loop of `supportbot run` does until no reply is pending: retry what is due."""
        for _ in range(500):
            if all(m.status != "pending" for m in await self.messages("out")):
                return
            await self.bot.outbox.deliver()
            await asyncio.sleep(0.05)
        raise AssertionError("replies still pending")

    async def post(
        self, update: dict[str, Any] | bytes, secret: str | bytes | None = SECRET
    ) -> httpx.Response:
        assert self.http is not None
        body = update if isinstance(update, bytes) else json.dumps(update).encode()
        headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        return await self.http.post(WEBHOOK_PATH, content=body, headers=headers)


async def settled(api: TelegramApiStub) -> None:
    """Wait until the channel has confirmed every queued update (so its replies have gone out)."""
    for _ in range(750):
        if api.pending_updates == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{api.pending_updates} update(s) were never confirmed")

"""WhatsApp test kit for the channel and spool tests: signed webhooks like the recorded ones, and a rig."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import WhatsAppSettings
from bot.storage.models import Conversation, Customer, Message
from tests.support.graph_api import GraphApiStub
from tests.support.paths import REPO

FIXTURES = REPO / "tests" / "fixtures" / "whatsapp"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
PHONE_NUMBER_ID = "1122334455667"  # the business number in the pywa fixtures
CUSTOMER, CUSTOMER_NAME = "48600100200", "Anna Kowalska"
WEBHOOK = "/webhooks/whatsapp"


def fixture(file: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{file}.json").read_text(encoding="utf-8")))


def webhook(
    message: dict[str, Any], *, wa_id: str = CUSTOMER, name: str = CUSTOMER_NAME, at: datetime | None = None
) -> dict[str, Any]:
    """Return a webhook body in the fixtures' shape carrying one customer message."""
    payload = copy.deepcopy(fixture("message")["text"])
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0].update(wa_id=wa_id, profile={"name": name})
    stamp = str(int((at or datetime.now(UTC)).timestamp()))
    value["messages"] = [{**message, "from": wa_id, "timestamp": stamp}]
    return payload


def text_webhook(text: str, wamid: str, **kwargs: Any) -> dict[str, Any]:
    return webhook({"id": wamid, "type": "text", "text": {"body": text}}, **kwargs)


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def whatsapp_settings(base_url: str, **extra: Any) -> WhatsAppSettings:
    return WhatsAppSettings(
        access_token=ACCESS_TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        graph_api_base=base_url,
        **extra,
    )


@dataclass
class Rig:
    """Our service with the WhatsApp channel, served over HTTP, and the Graph API stand-in."""

    bot: SupportBot
    channel: WhatsAppChannel
    graph: GraphApiStub
    http: httpx.AsyncClient

    async def post(
        self, payload: dict[str, Any] | bytes, signature: str | bytes | None = "valid"
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = sign(body) if signature == "valid" else signature
        return await self.http.post(WEBHOOK, content=body, headers=headers)

    async def deliver(self, payload: dict[str, Any]) -> None:
        """Post a signed webhook and wait until the channel has processed it."""
        response = await self.post(payload)
        assert response.status_code == 200, response.text
        await self.channel.drain()

    async def conversation(self, wa_id: str = CUSTOMER) -> Conversation:
        async with self.bot.database.session() as session:
            row = await session.execute(
                select(Conversation)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Customer.channel == "whatsapp", Customer.external_id == wa_id)
                .order_by(Conversation.id.desc())
            )
            conversation = row.scalars().first()
            assert conversation is not None
            return conversation

    async def messages(self, direction: str | None = None) -> list[Message]:
        query = select(Message).order_by(Message.id)
        if direction:
            query = query.where(Message.direction == direction)
        async with self.bot.database.session() as session:
            return list((await session.execute(query)).scalars())

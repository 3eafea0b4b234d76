"""Deliver stored replies: claim, send, mark; retry with backoff; never drop silently."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select

from bot.adapters.base import Channel, DeliveryTarget
from bot.config import OutboxSettings
from bot.errors import SendError
from bot.messages import Attachment, Button, OutgoingReply
from bot.storage.database import Database
from bot.storage.models import Conversation, Customer, Message, utcnow
from bot.storage.repositories import MessageRepository

log = logging.getLogger(__name__)
_LEASE = timedelta(seconds=60)  # a claimed message is retried if its sender died mid-send


def _reply_of(message: Message) -> OutgoingReply:
    return OutgoingReply(
        text=message.text,
        buttons=tuple(Button(b["title"], b["payload"]) for b in message.buttons or []),
        attachments=tuple(Attachment.from_dict(a) for a in message.attachments or []),
    )


class Outbox:
    """Sends pending outbound messages through their channel."""

    def __init__(self, database: Database, channels: dict[str, Channel], settings: OutboxSettings) -> None:
        self.database = database
        self.channels = channels
        self.settings = settings
        self._wakeup = asyncio.Event()
        # Claims are serialised in-process: SQLite ignores FOR UPDATE SKIP LOCKED, and without this the
        # background loop and the delivery right after a turn could both claim and send one reply.
        self._claim_lock = asyncio.Lock()

    async def deliver(self, conversation_id: int | None = None) -> int:
        """Send what is due (for one conversation, or all); return how many were sent."""
        claimed = await self._claim(conversation_id)
        sent = 0
        for message_id, target, reply in claimed:
            sent += await self._send_one(message_id, target, reply)
        return sent

    async def _claim(self, conversation_id: int | None) -> list[tuple[int, DeliveryTarget, OutgoingReply]]:
        """Lease due messages to this sender (60 s) and return what to send."""
        async with self._claim_lock, self.database.session() as session:
            rows = await MessageRepository(session).due_outbound(utcnow(), conversation_id=conversation_id)
            if not rows:
                return []
            conversation_ids = {row.conversation_id for row in rows}
            targets = {
                conversation.id: (conversation, external_id, blocked)
                for conversation, external_id, blocked in await session.execute(
                    select(Conversation, Customer.external_id, Customer.blocked)
                    .join(Customer, Customer.id == Conversation.customer_id)
                    .where(Conversation.id.in_(conversation_ids))
                )
            }
            claimed: list[tuple[int, DeliveryTarget, OutgoingReply]] = []
            for row in rows:
                conversation, external_id, blocked = targets[row.conversation_id]
                if conversation.channel not in self.channels:
                    continue  # another process serves this channel
                if blocked:
                    row.status, row.last_error, row.next_attempt_at = (
                        "failed",
                        "customer blocked the bot",
                        None,
                    )
                    continue
                row.next_attempt_at = utcnow() + _LEASE
                target = DeliveryTarget(
                    conversation.channel,
                    conversation.chat_id,
                    external_id,
                    conversation.id,
                    conversation.language,
                    row.id,
                )
                claimed.append((row.id, target, _reply_of(row)))
        return claimed

    async def _send_one(self, message_id: int, target: DeliveryTarget, reply: OutgoingReply) -> int:
        channel = self.channels[target.channel]
        error: SendError | None = None
        platform_id: str | None = None
        try:
            platform_id = await channel.send(target, reply)
        except SendError as exc:
            error = exc
        except Exception as exc:  # a bug or network fault in an adapter must not lose the reply
            log.exception("sending message %s through %s failed", message_id, target.channel)
            error = SendError(f"{type(exc).__name__}: {exc}")
        async with self.database.session() as session:
            messages = MessageRepository(session)
            row = (await session.execute(select(Message).where(Message.id == message_id))).scalar_one()
            if error is None:
                await messages.mark_sent(row, platform_id)
                return 1
            give_up = error.permanent or row.attempts + 1 >= self.settings.max_attempts
            backoff = error.retry_after or self.settings.base_backoff_seconds * (2**row.attempts)
            await messages.mark_attempt_failed(row, str(error), backoff, give_up)
            log.warning(
                "message %s to %s:%s not sent (attempt %s%s): %s",
                message_id,
                target.channel,
                target.chat_id,
                row.attempts,
                ", giving up" if give_up else f", retry in {backoff:.1f}s",
                error,
            )
        return 0

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Retry due messages forever (a background task of `supportbot run`)."""
        while True:
            try:
                await self.deliver()
            except Exception:  # a database restart: log, wait, keep going
                log.exception("outbox delivery round failed; retrying")
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.settings.poll_interval_seconds)
            except TimeoutError:
                pass
            self._wakeup.clear()

"""Deliver stored replies: claim, send, mark; retry with backoff; never drop silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.adapters.base import Channel, DeliveryTarget
from bot.config import OutboxSettings
from bot.errors import RecipientUnavailable, SendError
from bot.insights import metrics
from bot.messages import Attachment, Button, OutgoingReply
from bot.storage.database import Database
from bot.storage.models import Conversation, Customer, Message, utcnow
from bot.storage.repositories import ConversationRepository, MessageRepository

log = logging.getLogger(__name__)
# A claimed reply is its sender's for this long; the sender's heartbeat renews the lease every
# LEASE / 3 while it works on it, so the replies of a process that died are sent by another within LEASE.
LEASE = timedelta(seconds=15)


def lease_end() -> datetime:
    """When a reply claimed now may be claimed again (its sender died before marking it)."""
    return utcnow() + LEASE


@dataclass(frozen=True)
class Claimed:
    """A stored reply leased to this process: no other sender sends it before the lease ends."""

    message_id: int
    target: DeliveryTarget
    reply: OutgoingReply

    @classmethod
    def of(
        cls, message_id: int, conversation: Conversation, external_id: str, reply: OutgoingReply
    ) -> Claimed:
        target = DeliveryTarget(
            conversation.channel,
            conversation.chat_id,
            external_id,
            conversation.id,
            conversation.language,
            message_id,
        )
        return cls(message_id, target, reply)


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
        # background loop and a delivery for one conversation (after an agent's message, a reply left
        # for another process) could both claim and send one reply. A turn's own replies need no claim:
        # they are stored leased to this process (see ConversationEngine._store_replies).
        self._claim_lock = asyncio.Lock()
        self._working: set[int] = set()  # replies this process is sending: its heartbeat renews their leases

    async def deliver(self, conversation_id: int | None = None) -> int:
        """Send what is due (for one conversation, or all); return how many were sent."""
        return await self.send_claimed(await self._claim(conversation_id))

    async def send_claimed(self, claimed: Sequence[Claimed]) -> int:
        """Send replies already leased to this process (e.g. by the turn that stored them)."""
        sent = 0
        unavailable: set[tuple[str, str]] = set()  # (channel, customer) refused a reply: marked blocked
        self._working.update(item.message_id for item in claimed)
        try:
            for item in claimed:
                recipient = (item.target.channel, item.target.customer_id)
                if recipient in unavailable:
                    continue  # marking them blocked failed this reply too
                error = await self._send_one(item.message_id, item.target, item.reply)
                self._working.discard(item.message_id)
                if error is None:
                    sent += 1
                elif isinstance(error, RecipientUnavailable):
                    unavailable.add(recipient)
        finally:
            self._working.difference_update(item.message_id for item in claimed)
        return sent

    async def heartbeat(self) -> None:
        """Every LEASE / 3, renew the leases of the replies this process is sending (a background task)."""
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            working = sorted(self._working)
            if not working:
                continue
            try:
                async with self.database.session() as session:
                    await MessageRepository(session).renew_leases(working, lease_end())
            except Exception:  # the database is away: a lease may run out, and a reply go out twice
                log.exception("outbox heartbeat failed; retrying")

    async def _claim(self, conversation_id: int | None) -> list[Claimed]:
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
            claimed: list[Claimed] = []
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
                row.next_attempt_at = lease_end()
                claimed.append(Claimed.of(row.id, conversation, external_id, _reply_of(row)))
        return claimed

    async def _send_one(
        self, message_id: int, target: DeliveryTarget, reply: OutgoingReply
    ) -> SendError | None:
        """Send one reply and record the outcome; return why it was not sent (None: sent)."""
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
        if error is None:
            await self._mark_sent(message_id, platform_id)
            metrics.message_out(target.channel)
            return None
        async with self.database.session() as session:
            messages = MessageRepository(session)
            row = (await session.execute(select(Message).where(Message.id == message_id))).scalar_one()
            give_up = error.permanent or row.attempts + 1 >= self.settings.max_attempts
            backoff = error.retry_after or self.settings.base_backoff_seconds * (2**row.attempts)
            await messages.mark_attempt_failed(row, str(error), backoff, give_up)
            metrics.send_failed(target.channel, give_up)
            if isinstance(error, RecipientUnavailable):  # their other pending replies would fail alike
                await ConversationRepository(session).mark_blocked(target.channel, target.customer_id)
            log.warning(
                "message %s to %s:%r not sent (attempt %s%s): %s",
                message_id,
                target.channel,
                target.chat_id,
                row.attempts,
                ", giving up" if give_up else f", retry in {backoff:.1f}s",
                error,
            )
        return error

    async def _mark_sent(self, message_id: int, platform_id: str | None) -> None:
        """Record one send as soon as it returned, with the platform's message id, in its own commit.

        Nothing waits for other sends' marks (a batch would leave a reply that was sent unmarked while
        another commit runs): a crash after a send and before this commit is the only window in which a
        reply can go out twice, once its lease ends (see docs/security.md, at-least-once delivery).
        """
        async with self.database.session() as session:
            await MessageRepository(session).mark_sent([(message_id, platform_id)])

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Retry due messages forever (a background task of `supportbot run`), renewing leases meanwhile."""
        heartbeat = asyncio.create_task(self.heartbeat(), name="outbox-heartbeat")
        try:
            await self._rounds()
        finally:
            heartbeat.cancel()

    async def _rounds(self) -> None:
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

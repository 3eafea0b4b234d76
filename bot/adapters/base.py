"""The Channel contract: a messenger adapter parses platform events and sends replies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fastapi import APIRouter

from bot.errors import OutsideMessagingWindow
from bot.messages import IncomingMessage, OutgoingReply
from bot.web.ratelimit import Limiter


class WebhookSpool(Protocol):
    """Durable storage for acknowledged webhook bodies (bot/spool.py), so a crash after the 200 loses nothing."""

    async def keep(self, channel: str, body: bytes) -> int:
        """Store `body` as received and return its id; raise StorageError when it cannot be stored."""
        ...

    async def processed(self, spool_id: int, error: str | None = None) -> None:
        """Mark the body done (error None: every item handled), or record why not: it is replayed later."""
        ...


@dataclass(frozen=True)
class Inbox:
    """What an adapter may call: everything it learns from the platform goes through here."""

    # A customer message (text, button press, attachment...). Returns the engine's TurnResult.
    receive: Callable[[IncomingMessage], Awaitable[Any]]
    # The customer blocked the bot (Telegram 'kicked', a 403): stop sending. Args: channel, customer id.
    customer_blocked: Callable[[str, str], Awaitable[None]]
    # A platform delivery receipt. Args: channel, platform message id, status (sent/delivered/read/failed), error.
    delivery_status: Callable[[str, str, str, str | None], Awaitable[None]]
    # Where a webhook channel stores a body before acknowledging it; rows left unprocessed (a crash, a
    # database outage) come back through Channel.replay.
    spool: WebhookSpool
    # For channels that serve the chat themselves (the web chat): what the customer sees of their chat.
    # Args: channel, customer id, messages after this id (None: none, just the state). See bot/chat_view.py.
    chat_view: Callable[[str, str, int | None], Awaitable[dict[str, Any]]] | None = None
    # Rate limits shared with the rest of the service (in-process, or across processes via Redis):
    # None: the adapter counts on its own.
    limiter: Limiter | None = None


@dataclass(frozen=True)
class DeliveryTarget:
    """Where a reply goes: the chat on the channel, plus what a channel may need to render it."""

    channel: str
    chat_id: str
    customer_id: str
    conversation_id: int
    language: str | None = None
    message_id: int | None = None  # our stored outbound message id


class Channel(ABC):
    """One messenger. Knows nothing of the KB or the queue: it only translates."""

    name: str

    @abstractmethod
    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        """Deliver one reply; return the platform's message id. Raise SendError on failure."""

    async def start(self, inbox: Inbox) -> None:  # noqa: B027 - optional hook
        """Start receiving (polling loops); webhook channels receive through `router`."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop receiving and release connections."""

    def router(self, inbox: Inbox) -> APIRouter | None:
        """Return the HTTP routes (webhooks) this channel serves, if any."""
        return None

    async def replay(self, inbox: Inbox, body: bytes) -> str | None:
        """Process a body this channel spooled but did not finish; return why it failed, None when done.

        Items already stored are recognised by their platform id, so replaying a body twice answers once.
        """
        return f"the {self.name} channel does not replay spooled webhooks"

    def free_form_window(self) -> timedelta | None:
        """Return how long after the customer's last message free text may be sent (None: always)."""
        return None


def ensure_free_form_allowed(
    channel: Channel, last_customer_message_at: datetime | None, now: datetime | None = None
) -> None:
    """Raise OutsideMessagingWindow unless `channel` accepts free text now (e.g. WhatsApp's 24 hours)."""
    window = channel.free_form_window()
    if window is None:
        return
    now = _as_utc(now or datetime.now(UTC))
    last = _as_utc(last_customer_message_at) if last_customer_message_at else None
    if last is not None and now - last <= window:
        return
    hours = window.total_seconds() / 3600
    since = (
        "the customer has not written yet"
        if last is None
        else f"their last message was at {last:%Y-%m-%d %H:%M} UTC"
    )
    raise OutsideMessagingWindow(
        f"{channel.name}: outside the {hours:g}-hour messaging window; free-form messages may be sent only "
        f"within {hours:g} hours of the customer's last message ({since}). Send the re-engagement template instead "
        f"(channels.{channel.name}.reengagement_template) or wait for the customer to write again."
    )


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

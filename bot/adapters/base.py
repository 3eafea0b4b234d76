"""The Channel contract: a messenger adapter parses platform events and sends replies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter

from bot.config import Settings
from bot.errors import OutsideMessagingWindow
from bot.messages import IncomingMessage, OutgoingReply
from bot.web.ratelimit import Limiter


class WebhookSpool(Protocol):
    """Durable storage for acknowledged webhook bodies (bot/delivery/spool.py): a crash after the 200 loses nothing."""

    async def keep(self, channel: str, body: bytes) -> int:
        """Store `body` as received and return its id; raise StorageError when it cannot be stored."""
        ...

    async def processed(self, spool_id: int, error: str | None = None) -> None:
        """Mark the body done (error None: every item handled), or record why not: it is replayed later."""
        ...


@dataclass(frozen=True)
class Received:
    """What became of one customer message, as far as its channel needs to know."""

    # Already stored under the same platform id (a redelivery): it was answered before, nothing is new.
    duplicate: bool = False
    # The replies this message led to (stored message id, reply), already handed to the outbox.
    replies: tuple[tuple[int, OutgoingReply], ...] = ()


@dataclass(frozen=True)
class Inbox:
    """What an adapter may call: everything it learns from the platform goes through here."""

    # A customer message (text, button press, attachment...): stored, deduplicated by platform id, answered.
    receive: Callable[[IncomingMessage], Awaitable[Received]]
    # The platform says the customer blocked the bot (Telegram's 'kicked'): stop sending. Args: channel,
    # customer id. (A refused send raises RecipientUnavailable instead; the outbox records that.)
    customer_blocked: Callable[[str, str], Awaitable[None]]
    # A platform delivery receipt. Args: channel, platform message id, status (sent/delivered/read/failed), error.
    delivery_status: Callable[[str, str, str, str | None], Awaitable[None]]
    # Where a webhook channel stores a body before acknowledging it; rows left unprocessed (a crash, a
    # database outage) come back through Channel.replay.
    spool: WebhookSpool
    # For channels that serve the chat themselves (the web chat): what the customer sees of their chat.
    # Args: channel, customer id, messages after this id (None: none, just the state). See bot/storage/chat_view.py.
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

    @classmethod
    def configured(cls, settings: Settings) -> Channel | None:
        """Return the channel built from `settings.channels.<name>`, or None when they do not enable it.

        `supportbot run` calls this for every channel registered by name (bot/adapters/registry.py).
        """
        return None

    @abstractmethod
    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        """Deliver one reply; return the platform's message id.

        Raise SendError on failure: RateLimited when the platform asked us to wait, RecipientUnavailable
        when the customer cannot be written to (blocked the bot); the outbox retries or gives up accordingly.
        """

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


@runtime_checkable
class WindowedChannel(Protocol):
    """A channel that takes free text only for a while after the customer's last message (WhatsApp: 24
    hours) and re-opens the conversation with an approved template."""

    name: str

    def free_form_window(self) -> timedelta:
        """Return how long after the customer's last message free text may be sent."""
        ...

    async def send_template(
        self, target: DeliveryTarget, name: str | None = None, language: str | None = None
    ) -> str | None:
        """Send an approved template (allowed outside the window); return its platform message id."""
        ...


def ensure_free_form_allowed(
    channel: Channel, last_customer_message_at: datetime | None, now: datetime | None = None
) -> None:
    """Raise OutsideMessagingWindow unless `channel` accepts free text now (e.g. WhatsApp's 24 hours)."""
    if not isinstance(channel, WindowedChannel):
        return
    window = channel.free_form_window()
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

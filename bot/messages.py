"""Channel-neutral messages: adapters translate to and from these, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# A messenger's "start" (Telegram's /start and /help) as a payload: the greeting and a menu of topics.
START_PAYLOAD = "start"


@dataclass(frozen=True)
class Attachment:
    """A file, location or contact the customer sent (or we send)."""

    kind: str  # photo, document, voice, audio, video, sticker, location, contact
    file_id: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # location lat/lon, contact phone...

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file_id": self.file_id,
            "mime_type": self.mime_type,
            "caption": self.caption,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Attachment:
        return cls(
            kind=raw["kind"],
            file_id=raw.get("file_id"),
            mime_type=raw.get("mime_type"),
            caption=raw.get("caption"),
            data=raw.get("data") or {},
        )


@dataclass(frozen=True)
class Button:
    """A quick-reply button; `payload` comes back as IncomingMessage.payload."""

    title: str
    payload: str


@dataclass(frozen=True)
class IncomingMessage:
    """One customer message, whatever messenger it came from."""

    channel: str
    chat_id: str
    customer_id: str
    text: str = ""
    display_name: str | None = None
    username: str | None = None
    phone: str | None = None
    language_hint: str | None = None
    attachments: tuple[Attachment, ...] = ()
    platform_message_id: str | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    payload: str | None = None  # button press (callback data), instead of typed text
    edited: bool = False  # the customer edited an earlier message (same platform id)


@dataclass(frozen=True)
class OutgoingReply:
    """One reply to a customer; adapters render buttons as their platform allows."""

    text: str
    buttons: tuple[Button, ...] = ()
    attachments: tuple[Attachment, ...] = ()

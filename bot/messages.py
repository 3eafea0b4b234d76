"""Channel-neutral messages: adapters translate to and from these, nothing else."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")

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


def sound_text(text: str) -> str:
    """Return `text` as valid Unicode: surrogate pairs joined, a lone surrogate (valid in JSON as "\\ud800",
    but not storable nor encodable) replaced with U+FFFD. Text without surrogates comes back as it is."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _sound(value: Any) -> Any:
    """`value` with every string in it made sound_text (dicts, lists and tuples walked)."""
    if isinstance(value, str):
        return sound_text(value)
    if isinstance(value, dict):
        return {_sound(key): _sound(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_sound(item) for item in value)
    return value


@dataclass(frozen=True)
class IncomingMessage:
    """One customer message, whatever messenger it came from.

    Every text in it is repaired here, at the one place every channel builds it (see `sound_text`): a
    message with a lone UTF-16 surrogate is stored and answered like any other, never a poison message.
    """

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

    def __post_init__(self) -> None:
        for each in fields(self):
            value = getattr(self, each.name)
            if isinstance(value, str) and value:
                object.__setattr__(self, each.name, sound_text(value))
        if self.attachments:
            sound = tuple(
                replace(a, caption=_sound(a.caption), data=_sound(a.data), file_id=_sound(a.file_id))
                for a in self.attachments
            )
            object.__setattr__(self, "attachments", sound)


@dataclass(frozen=True)
class OutgoingReply:
    """One reply to a customer; adapters render buttons as their platform allows."""

    text: str
    buttons: tuple[Button, ...] = ()
    attachments: tuple[Attachment, ...] = ()

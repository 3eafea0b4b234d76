"""The web chat's JSON: what the widget posts, and what POST and GET /api/v1/webchat/messages answer."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from bot.messages import OutgoingReply, sound_text

MAX_TEXT = 8000  # characters a visitor may send in one message (the bot reads policy.max_message_chars)


class WebchatIn(BaseModel):
    text: str = Field(default="", max_length=MAX_TEXT, description="What the visitor typed")
    payload: str | None = Field(
        default=None, max_length=256, description="A pressed button's payload (send its title as text)"
    )
    client_message_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Set it to resend safely after a network error: the same id is answered once",
    )
    name: str | None = Field(default=None, max_length=128, description="Shown to agents (visitor-provided)")
    language: str | None = Field(
        default=None, max_length=35, description="The browser's language, e.g. pl-PL"
    )

    @field_validator("text", "payload", "name", "language", mode="before")
    @classmethod
    def _sound(cls, value: object) -> object:
        """A lone UTF-16 surrogate (valid JSON) is repaired as IncomingMessage repairs it, not refused."""
        return sound_text(value) if isinstance(value, str) else value


class WebchatButton(BaseModel):
    title: str
    payload: str = Field(description="Send it back as the message's payload when the button is pressed")


class WebchatReply(BaseModel):
    """One message of the chat, as the widget shows it."""

    id: int = Field(description="The stored message's id (pass it as ?after= or ?since=)")
    direction: str = Field(description="in (the visitor's) or out (the bot's or an agent's)")
    sender: str = Field(description="customer, bot or agent")
    agent: str | None = Field(description="The agent's name, for an agent's message")
    text: str
    buttons: list[WebchatButton]
    attachments: list[str] = Field(description="The kinds of the attached files (photo, document...)")


class WebchatMessage(WebchatReply):
    at: str | None = Field(description="When it was stored (ISO 8601, UTC)")


class WebchatStatus(BaseModel):
    """Where the visitor's conversation stands."""

    state: str = Field(description="bot, waiting (for a person), with_agent or resolved")
    queue_position: int | None = Field(description="The place in the queue while waiting for a person")
    agent: str | None = Field(description="The agent's name while with_agent")


class WebchatPosted(WebchatStatus):
    """What POST /messages answers: the bot's immediate replies, and where the chat stands now."""

    duplicate: bool = Field(description="The same client_message_id was answered before: no new replies")
    replies: list[WebchatReply]
    last_id: int = Field(description="The chat's newest message id")


class WebchatChat(WebchatStatus):
    """What GET /messages answers: the stored chat after ?after=, both directions, oldest first."""

    last_id: int = Field(description="The chat's newest message id")
    messages: list[WebchatMessage]


def reply_body(message_id: int, reply: OutgoingReply) -> WebchatReply:
    """Return a reply the bot just stored as the widget shows it (it has no `at` yet)."""
    buttons = [WebchatButton(title=b.title, payload=b.payload) for b in reply.buttons]
    attachments = [a.kind for a in reply.attachments]
    return WebchatReply(
        id=message_id,
        direction="out",
        sender="bot",
        agent=None,
        text=reply.text,
        buttons=buttons,
        attachments=attachments,
    )

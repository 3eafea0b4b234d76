"""SQLAlchemy models: customers, conversations with their messages, the audit events, agents, the spool."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Row ids are INTEGER columns, 32-bit on PostgreSQL: a larger number (from a URL or a header) names no
# row, and handed to the database driver it fails instead of finding nothing.
MAX_ID = 2**31 - 1


def row_id(text: str | None) -> int | None:
    """Return `text` as a row id when it is one (ASCII digits, at most MAX_ID), else None."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


class NulFree(TypeDecorator[str]):
    """A string column that never receives U+0000.

    Messengers and browsers can send NUL characters (in a message, a name, a caption); PostgreSQL's text
    types cannot hold them, so the whole statement would fail and the message be lost. They carry no
    meaning, so they are removed on the way in, on every database alike (comparisons too).
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return value.replace("\x00", "") if value and "\x00" in value else value


class NulFreeText(NulFree):
    impl = Text
    cache_ok = True


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: Any) -> Any:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_customers_channel_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(NulFree(32))
    external_id: Mapped[str] = mapped_column(NulFree(128))
    display_name: Mapped[str | None] = mapped_column(NulFree(256))
    username: Mapped[str | None] = mapped_column(NulFree(128))
    phone: Mapped[str | None] = mapped_column(NulFree(64))
    language: Mapped[str | None] = mapped_column(NulFree(16))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)  # the customer blocked the bot
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    conversations: Mapped[list[Conversation]] = relationship(back_populates="customer")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_customer_state", "customer_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(NulFree(32))
    chat_id: Mapped[str] = mapped_column(NulFree(128))
    state: Mapped[str] = mapped_column(NulFree(16), default="bot", index=True)
    language: Mapped[str | None] = mapped_column(NulFree(16))
    bot_misses: Mapped[int] = mapped_column(Integer, default=0)  # fallbacks and unchosen offers in a row
    assigned_agent_id: Mapped[int | None] = mapped_column(Integer, index=True)
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    handoff_context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    last_customer_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # live-agent side (migration 0002)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher is served first (VIP, complaint)
    handoff_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)  # first queued
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # agent's 1st reply
    sla_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    estimate_told_seconds: Mapped[float | None] = mapped_column(Float)  # the wait we last promised
    estimate_told_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_notice_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # told "we're closed"
    # what custom actions set (rasa-sdk SlotSet), sent back in the next action's tracker (migration 0006)
    slots: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Code Red: when a signal first flagged the customer as likely unhappy (migration 0010, bot/insights/flags.py)
    code_red_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    customer: Mapped[Customer] = relationship(back_populates="conversations")
    messages: Mapped[list[Message]] = relationship(back_populates="conversation", order_by="Message.id")


class Message(Base):
    """Every inbound and outbound message; outbound rows double as the outbox."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_outbox", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(NulFree(3))  # in / out
    sender: Mapped[str] = mapped_column(NulFree(16))  # customer / bot / agent / system
    text: Mapped[str] = mapped_column(NulFreeText, default="")
    payload: Mapped[str | None] = mapped_column(NulFree(256))
    attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    buttons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # channel:chat:platform id of an inbound message; unique, so a redelivery is never handled twice
    dedupe_key: Mapped[str | None] = mapped_column(NulFree(300), unique=True)
    platform_message_id: Mapped[str | None] = mapped_column(NulFree(128))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    agent_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(NulFree(16), default="received")  # received / pending / sent / failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(NulFreeText)
    # the platform's receipt for an outbound message: delivered / read / failed
    delivery_status: Mapped[str | None] = mapped_column(NulFree(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Event(Base):
    """The audit trail: who did what to which conversation, when and why."""

    __tablename__ = "events"
    # the numbers (bot/insights/stats.py) count one kind of event over a window of time
    __table_args__ = (Index("ix_events_kind_created_at", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(NulFree(48))
    actor: Mapped[str] = mapped_column(NulFree(64))  # bot / customer / agent:<login> / system
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    agent_id: Mapped[int | None] = mapped_column(Integer, index=True)  # the agent the event concerns


class ConversationFlag(Base):
    """A Code Red (likely unhappy customer) or kudos (praise) on a conversation: which signal, and why."""

    __tablename__ = "conversation_flags"
    __table_args__ = (
        UniqueConstraint("conversation_id", "kind", "signal", name="uq_conversation_flags_signal"),
        Index("ix_conversation_flags_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(NulFree(16))  # code_red / kudos
    signal: Mapped[str] = mapped_column(NulFree(32))  # complaint, repeat_contact, low_csat, compliment...
    reason: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # why, in words and figures
    text: Mapped[str | None] = mapped_column(NulFreeText)  # the customer's words, where there are some
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Agent(Base):
    """A person who answers customers; `capacity` is how many conversations they hold at once."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(NulFree(64), unique=True)
    name: Mapped[str] = mapped_column(NulFree(128))
    password_hash: Mapped[str] = mapped_column(NulFree(256))
    role: Mapped[str] = mapped_column(NulFree(16), default="agent")  # agent / supervisor / admin
    languages: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: any language
    capacity: Mapped[int] = mapped_column(Integer, default=3)
    status: Mapped[str] = mapped_column(NulFree(16), default="offline", index=True)  # online/away/offline
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # false: cannot log in or be assigned
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # their Telegram account: what they write in the agent desk's topics reaches customers (migration 0007)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class AgentToken(Base):
    """A bearer token, or a single-use event ticket; only its SHA-256 is stored."""

    __tablename__ = "agent_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(NulFree(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # an event ticket: the token (the log-in session) it was issued under; its stream ends with that session
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agent_tokens.id", ondelete="CASCADE"), index=True
    )


class Assignment(Base):
    """One agent holding one conversation, from assignment to its end: "who had this and when"."""

    __tablename__ = "assignments"
    __table_args__ = (
        # at most one open assignment per conversation: a double assignment cannot be stored
        Index(
            "uq_assignments_open",
            "conversation_id",
            unique=True,
            sqlite_where=sql_text("ended_at IS NULL"),
            postgresql_where=sql_text("ended_at IS NULL"),
        ),
        Index("ix_assignments_agent_open", "agent_id", "ended_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    assigned_by: Mapped[str] = mapped_column(NulFree(64))  # system / agent:<login>
    how: Mapped[str] = mapped_column(NulFree(24))  # auto / take / transfer
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(NulFree(48))  # resolved / transferred / timeout...


class HandoffLock(Base):
    """A row every assignment transaction writes first on SQLite, so assigners run one at a time."""

    __tablename__ = "handoff_locks"

    name: Mapped[str] = mapped_column(NulFree(32), primary_key=True)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SpooledWebhook(Base):
    """A webhook body stored before the platform got its 200; replayed until processed (bot/delivery/spool.py)."""

    __tablename__ = "inbound_spool"
    __table_args__ = (
        # what the replay looks for: unprocessed bodies whose claim has run out
        Index(
            "ix_inbound_spool_unprocessed",
            "claimed_until",
            sqlite_where=sql_text("processed_at IS NULL"),
            postgresql_where=sql_text("processed_at IS NULL"),
        ),
        Index("ix_inbound_spool_processed_at", "processed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(NulFree(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # exactly as received (its signature still checks)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=1)  # processing runs started, the first on arrival
    # the process running the latest attempt owns the body until then; afterwards any process may replay it
    claimed_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(NulFreeText)


class DeskTopic(Base):
    """A customer's forum topic in the Telegram agent desk (bot/desk/): one per customer, reopened on return.

    The row is created before the topic: whoever claims it (`claimed_until`) calls createForumTopic, so two
    processes never create two topics for one customer.
    """

    __tablename__ = "desk_topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger, index=True)  # message_thread_id once created
    name: Mapped[str] = mapped_column(NulFree(128))
    status: Mapped[str] = mapped_column(NulFree(16), default="new")  # new / open / closed / gone
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)  # the pinned card
    card_conversation_id: Mapped[int | None] = mapped_column(Integer)  # the conversation the card shows
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(NulFreeText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeskPost(Base):
    """The desk's stored outbox: what goes into the group, in order, exactly once (`key` is unique)."""

    __tablename__ = "desk_posts"
    __table_args__ = (Index("ix_desk_posts_status", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(NulFree(96), unique=True)  # e.g. event:123, notice:<update>
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("desk_topics.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(NulFree(16))  # text / card / media / close / reopen / seen
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(NulFree(16), default="pending")  # pending / sent / failed / skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(NulFreeText)
    platform_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeskState(Base):
    """The desk's shared marks: the event cursor, the sender's lease, the group's health."""

    __tablename__ = "desk_state"

    name: Mapped[str] = mapped_column(NulFree(32), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, default=0)  # cursor: the last event turned into posts
    holder: Mapped[str | None] = mapped_column(NulFree(64))
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str | None] = mapped_column(NulFreeText)

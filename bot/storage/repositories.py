"""Repositories: the only code that knows how conversations, messages and events are stored."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import IncomingMessage, OutgoingReply
from bot.states import State, check_transition
from bot.storage.models import Conversation, Customer, Event, Message, utcnow


def dedupe_key(message: IncomingMessage) -> str | None:
    if not message.platform_message_id:
        return None
    return f"{message.channel}:{message.chat_id}:{message.platform_message_id}"[:300]


# A customer and their newest open conversation (locked); built once, run for nearly every message.
_OPEN_CONVERSATION = (
    select(Customer, Conversation)
    .join(Conversation, Conversation.customer_id == Customer.id)
    .where(
        Customer.channel == bindparam("channel"),
        Customer.external_id == bindparam("external_id"),
        Conversation.state != State.RESOLVED,
    )
    .order_by(Conversation.id.desc())
    .limit(1)
    .with_for_update(of=Conversation)
)


def _refresh_profile(customer: Customer, message: IncomingMessage) -> None:
    for field in ("display_name", "username", "phone"):
        value = getattr(message, field)
        if value and getattr(customer, field) != value:
            setattr(customer, field, value)
    if customer.blocked:
        customer.blocked = False  # they wrote to us again, so they unblocked the bot


@dataclass
class ConversationRepository:
    """Customers, their conversations and the audit events of state changes."""

    session: AsyncSession

    async def upsert_customer(self, message: IncomingMessage) -> Customer:
        """Return the customer for this channel id, creating or refreshing the profile."""
        query = select(Customer).where(
            Customer.channel == message.channel, Customer.external_id == message.customer_id
        )
        customer = (await self.session.execute(query)).scalar_one_or_none()
        if customer is None:
            try:
                async with self.session.begin_nested():
                    customer = Customer(channel=message.channel, external_id=message.customer_id, profile={})
                    self.session.add(customer)
            except IntegrityError:  # created concurrently by another worker
                customer = (await self.session.execute(query)).scalar_one()
        _refresh_profile(customer, message)
        return customer

    async def customer_and_conversation(self, message: IncomingMessage) -> tuple[Customer, Conversation]:
        """`upsert_customer` and `active_conversation` together: one query for a returning customer.

        A customer writing in an open conversation (nearly every message) costs one SELECT, the
        conversation row locked as `active_conversation` locks it; anyone else takes the two-step way.
        """
        found = (
            await self.session.execute(
                _OPEN_CONVERSATION, {"channel": message.channel, "external_id": message.customer_id}
            )
        ).first()
        if found is None:
            customer = await self.upsert_customer(message)
            return customer, await self.active_conversation(customer, message.chat_id)
        customer, conversation = found
        _refresh_profile(customer, message)
        if conversation.chat_id != message.chat_id:
            conversation.chat_id = message.chat_id
        return customer, conversation

    async def active_conversation(self, customer: Customer, chat_id: str, lock: bool = True) -> Conversation:
        """Return the customer's open conversation on this channel, or start one with the bot."""
        query = (
            select(Conversation)
            .where(Conversation.customer_id == customer.id, Conversation.state != State.RESOLVED)
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        if lock:
            query = query.with_for_update()
        conversation = (await self.session.execute(query)).scalar_one_or_none()
        if conversation is None:
            conversation = Conversation(
                customer_id=customer.id,
                channel=customer.channel,
                chat_id=chat_id,
                state=State.BOT,
                language=customer.language,
                handoff_context={},
                bot_misses=0,
            )
            self.session.add(conversation)
            await self.session.flush()
            await self.add_event(conversation.id, "conversation_started", "customer", {})
        elif conversation.chat_id != chat_id:
            conversation.chat_id = chat_id
        return conversation

    async def get(self, conversation_id: int, lock: bool = False) -> Conversation | None:
        query = select(Conversation).where(Conversation.id == conversation_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def customer(self, customer_id: int) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def transition(
        self,
        conversation: Conversation,
        target: State,
        actor: str,
        reason: str,
        now: datetime | None = None,
        **data: Any,
    ) -> None:
        """Move the conversation to `target`, checking the state machine, and audit the move.

        `now` (default: the current time) stamps it, e.g. `resolved_at`; the handoff desk passes its clock.
        """
        source = conversation.state
        conversation.state = check_transition(source, target)
        now = now or utcnow()
        if target == State.WAITING:
            conversation.waiting_since = conversation.waiting_since or now
        elif target == State.WITH_AGENT:
            conversation.waiting_since = None
        elif target == State.RESOLVED:
            conversation.resolved_at = now
            conversation.waiting_since = None
        elif target == State.BOT:
            conversation.waiting_since = None
            conversation.assigned_agent_id = None
            conversation.bot_misses = 0
        await self.add_event(
            conversation.id,
            "state_changed",
            actor,
            {"from": source, "to": str(target), "reason": reason, **data},
        )

    async def add_event(
        self, conversation_id: int | None, kind: str, actor: str, data: dict[str, Any]
    ) -> Event:
        event = Event(conversation_id=conversation_id, kind=kind, actor=actor, data=data)
        self.session.add(event)
        await self.session.flush()
        return event

    async def events(self, conversation_id: int) -> Sequence[Event]:
        query = select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
        return (await self.session.execute(query)).scalars().all()

    async def mark_blocked(self, channel: str, external_id: str) -> None:
        """Mark the customer as having blocked the bot; fail their pending replies."""
        query = select(Customer).where(Customer.channel == channel, Customer.external_id == external_id)
        customer = (await self.session.execute(query)).scalar_one_or_none()
        if customer is None:
            return
        customer.blocked = True
        ids = (
            (
                await self.session.execute(
                    select(Conversation.id).where(Conversation.customer_id == customer.id)
                )
            )
            .scalars()
            .all()
        )
        await MessageRepository(self.session).stop_sending_to(ids, "customer blocked the bot")
        await self.add_event(ids[-1] if ids else None, "customer_blocked", "customer", {"channel": channel})

    async def count_in_state(self, state: State) -> int:
        query = select(func.count()).select_from(Conversation).where(Conversation.state == state)
        return int((await self.session.execute(query)).scalar_one())


_RECEIPT_RANK = {"sent": 1, "delivered": 2, "read": 3}  # platform receipts, in the order they happen


@functools.cache
def _outbound_insert(columns: tuple[str, ...]) -> Any:
    """INSERT INTO messages (columns) ... RETURNING *, built once (the values come with each execution)."""
    return insert(Message).values({name: bindparam(name) for name in columns}).returning(Message)


_MESSAGES = cast(Table, Message.__table__)
# Marks replies sent by id without loading them (executemany), built once.
_MARK_SENT = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("message_id"))
    .values(
        status="sent",
        sent_at=bindparam("sent_at"),
        platform_message_id=bindparam("platform_id"),
        attempts=_MESSAGES.c.attempts + 1,
        last_error=None,
    )
)


# A reply stored by a turn: INSERT ... RETURNING id, built once (the values come with each execution).
_REPLY_INSERT = insert(_MESSAGES).returning(_MESSAGES.c.id)


@functools.cache
def _inbound_id_insert(dialect: str) -> Any:
    """INSERT INTO messages ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, built once per back end."""
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(_MESSAGES).on_conflict_do_nothing(index_elements=[_MESSAGES.c.dedupe_key])
    return statement.returning(_MESSAGES.c.id)


def _inbound_values(
    conversation: Conversation, message: IncomingMessage, decision: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "conversation_id": conversation.id,
        "direction": "in",
        "sender": "customer",
        "text": message.text,
        "payload": message.payload,
        "attachments": [a.to_dict() for a in message.attachments],
        "buttons": [],
        "dedupe_key": dedupe_key(message),
        "platform_message_id": message.platform_message_id,
        "decision": decision,
        "status": "received",
        "created_at": message.timestamp,
    }


def _outbound_values(
    conversation: Conversation,
    reply: OutgoingReply,
    sender: str,
    decision: dict[str, Any] | None,
    agent_id: int | None,
    next_attempt_at: datetime | None,
) -> dict[str, Any]:
    return {
        "conversation_id": conversation.id,
        "direction": "out",
        "sender": sender,
        "text": reply.text,
        "buttons": [{"title": b.title, "payload": b.payload} for b in reply.buttons],
        "attachments": [a.to_dict() for a in reply.attachments],
        "decision": decision,
        "agent_id": agent_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": next_attempt_at or utcnow(),
    }


@dataclass
class MessageRepository:
    """Inbound messages (deduplicated) and outbound ones (the outbox)."""

    session: AsyncSession

    async def add_inbound(
        self, conversation: Conversation, message: IncomingMessage, decision: dict[str, Any] | None = None
    ) -> int | None:
        """Store an inbound message and return its id; None when this platform message was already stored.

        One INSERT ... ON CONFLICT DO NOTHING on the dedupe key: a redelivery, even one racing in through
        another worker at the same moment, stores nothing (no read first, no savepoint), and the row is
        not loaded back as an ORM object.
        """
        values = _inbound_values(conversation, message, decision)
        statement = _inbound_id_insert(self.session.get_bind().dialect.name)
        row_id = (await self.session.execute(statement, values)).scalar_one_or_none()
        if row_id is not None:
            conversation.last_customer_message_at = message.timestamp
        return None if row_id is None else int(row_id)

    async def set_decision_by_id(self, message_id: int, decision: dict[str, Any]) -> None:
        await self.session.execute(
            update(_MESSAGES).where(_MESSAGES.c.id == message_id).values(decision=decision)
        )

    async def apply_edit(self, message: IncomingMessage) -> Message | None:
        """Update the stored text of an edited message; return it, or None if we never saw it."""
        key = dedupe_key(message)
        if key is None:
            return None
        row = (
            await self.session.execute(select(Message).where(Message.dedupe_key == key))
        ).scalar_one_or_none()
        if row is not None:
            row.text = message.text
            row.edited_at = utcnow()
        return row

    async def set_decision(self, message: Message, decision: dict[str, Any]) -> None:
        message.decision = decision

    async def add_outbound(
        self,
        conversation: Conversation,
        reply: OutgoingReply,
        sender: str = "bot",
        decision: dict[str, Any] | None = None,
        agent_id: int | None = None,
        next_attempt_at: datetime | None = None,
    ) -> Message:
        """Store a reply in the outbox (status pending) before anything tries to send it.

        `next_attempt_at` is when a sender may claim it: now by default; a lease's end when the caller
        claims it itself in this transaction (it sends it right after the commit).
        """
        values = _outbound_values(conversation, reply, sender, decision, agent_id, next_attempt_at)
        return (await self.session.scalars(_outbound_insert(tuple(values)), values)).one()

    async def add_reply(
        self,
        conversation: Conversation,
        reply: OutgoingReply,
        decision: dict[str, Any] | None = None,
        next_attempt_at: datetime | None = None,
    ) -> int:
        """`add_outbound` for the bot's own reply in a turn, returning only the new row's id.

        The same row in the same transaction, without loading it back as an ORM object: the turn needs
        only its id (to send it), and loading costs more than the INSERT (~0.3 ms a reply).
        """
        values = _outbound_values(conversation, reply, "bot", decision, None, next_attempt_at)
        return int((await self.session.execute(_REPLY_INSERT, values)).scalar_one())

    async def transcript(self, conversation_id: int, limit: int = 200) -> Sequence[Message]:
        query = (
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(limit)
        )
        rows = (await self.session.execute(query)).scalars().all()
        return list(reversed(rows))

    async def due_outbound(
        self, now: datetime, limit: int = 50, conversation_id: int | None = None
    ) -> Sequence[Message]:
        """Return pending outbound messages whose next attempt is due, oldest first."""
        query = select(Message).where(Message.status == "pending", Message.next_attempt_at <= now)
        if conversation_id is not None:
            query = query.where(Message.conversation_id == conversation_id)
        query = query.order_by(Message.id).limit(limit).with_for_update(skip_locked=True)
        return (await self.session.execute(query)).scalars().all()

    async def mark_sent(self, sent: Sequence[tuple[int, str | None]]) -> None:
        """Mark replies sent, given (message id, platform message id) pairs, in one statement.

        The rows are not loaded: an ORM copy of one already in this session is not updated by it.
        """
        if not sent:
            return
        await self.session.execute(
            _MARK_SENT,
            [{"message_id": m, "platform_id": p, "sent_at": utcnow()} for m, p in sent],
        )

    async def renew_leases(self, message_ids: Sequence[int], until: datetime) -> None:
        """Push on the leases of replies still being sent (status pending), not loading them."""
        await self.session.execute(
            update(Message)
            .where(Message.id.in_(list(message_ids)), Message.status == "pending")
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )

    async def mark_attempt_failed(
        self, message: Message, error: str, retry_in: float | None, give_up: bool
    ) -> None:
        message.attempts += 1
        message.last_error = error[:2000]
        if give_up:
            message.status = "failed"
            message.next_attempt_at = None
        else:
            message.next_attempt_at = utcnow() + timedelta(seconds=retry_in or 1.0)

    async def record_delivery_status(
        self, channel: str, platform_message_id: str, status: str, error: str | None
    ) -> Message | None:
        """Attach a platform receipt to the outgoing message it is about."""
        query = (
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.channel == channel,
                Message.direction == "out",
                Message.platform_message_id == platform_message_id,
            )
        )
        row = (await self.session.execute(query)).scalars().first()
        if row is not None:
            # Receipts can arrive out of order (a late "delivered" after "read"): never step back,
            # except to "failed", which always wins.
            if status == "failed" or _RECEIPT_RANK.get(status, 0) >= _RECEIPT_RANK.get(
                row.delivery_status or "", 0
            ):
                row.delivery_status = status
            if error:
                row.last_error = error[:2000]
        return row

    async def count(self, conversation_id: int | None = None) -> int:
        query = select(func.count()).select_from(Message)
        if conversation_id is not None:
            query = query.where(Message.conversation_id == conversation_id)
        return int((await self.session.execute(query)).scalar_one())

    async def stop_sending_to(self, conversation_ids: Sequence[int], reason: str) -> None:
        """Fail every pending reply of these conversations (e.g. the customer blocked the bot)."""
        if conversation_ids:
            await self.session.execute(
                update(Message)
                .where(Message.conversation_id.in_(conversation_ids), Message.status == "pending")
                .values(status="failed", last_error=reason, next_attempt_at=None)
            )

"""The bodies the agent API answers with, field for field, and how each is made from what is stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.handoff.agents import iso, public_agent
from bot.handoff.identity import shown_customer_id
from bot.storage.agent_view import ConversationRow
from bot.storage.models import Agent, Assignment, Conversation, Customer, Event, Message, as_utc
from bot.web.body import Body

# --- agents ----------------------------------------------------------------------------------------


class AgentOut(Body):
    """An agent as other agents see them (never the password hash)."""

    id: int
    login: str
    name: str
    role: str
    languages: list[str]
    capacity: int
    status: str
    active: bool
    last_assigned_at: str | None
    telegram_user_id: int | None = None

    @classmethod
    def of(cls, agent: Agent) -> AgentOut:
        return cls.model_validate(public_agent(agent))


class AgentLoadOut(AgentOut):
    """An agent with the number of conversations they hold now."""

    load: int

    @classmethod
    def loaded(cls, agent: Agent, load: int) -> AgentLoadOut:
        return cls.model_validate(public_agent(agent, load))


class AgentRefOut(Body):
    id: int
    login: str
    name: str

    @classmethod
    def of(cls, agent: Agent) -> AgentRefOut:
        return cls(id=agent.id, login=agent.login, name=agent.name)


class LoginOut(Body):
    token: str
    token_type: str
    expires_at: str
    agent: AgentOut


class TicketOut(Body):
    ticket: str
    expires_at: str
    expires_in: float


class StatusOut(Body):
    """An agent's new status, the conversations it gave them and those it put back in the queue."""

    status: str
    assigned: list[int]
    requeued: list[int]


class QueueOut(Body):
    waiting: int
    online_agents: int
    capacity: int
    free_slots: int
    open: bool
    next_open: str | None
    handling_time_seconds: int
    handling_time_sample: int
    estimated_wait_for_next_seconds: int


# --- conversations ---------------------------------------------------------------------------------


class CustomerOut(Body):
    id: int
    channel: str
    external_id: str
    name: str | None
    username: str | None
    phone: str | None
    language: str | None

    @classmethod
    def of(cls, customer: Customer) -> CustomerOut:
        return cls(
            id=customer.id,
            channel=customer.channel,
            external_id=shown_customer_id(customer.channel, customer.external_id),
            name=customer.display_name,
            username=customer.username,
            phone=customer.phone,
            language=customer.language,
        )


class ConversationOut(Body):
    """A conversation as the queue and the lists show it."""

    id: int
    state: str
    channel: str
    language: str | None
    customer: CustomerOut | None
    assigned_agent: AgentRefOut | None
    waiting_since: str | None
    queue_position: int | None
    priority: int
    reason: str | None
    handoff_at: str | None
    first_response_at: str | None
    resolved_at: str | None
    last_customer_message_at: str | None
    sla_breached: bool
    sla_breached_at: str | None
    code_red_at: str | None  # Code Red: when a signal first flagged the customer as likely unhappy
    updated_at: str | None

    @classmethod
    def of(cls, row: ConversationRow) -> ConversationOut:
        conversation = row.conversation
        return cls(
            id=conversation.id,
            state=conversation.state,
            channel=conversation.channel,
            language=conversation.language,
            customer=CustomerOut.of(row.customer) if row.customer else None,
            assigned_agent=AgentRefOut.of(row.agent) if row.agent else None,
            waiting_since=iso(conversation.waiting_since),
            queue_position=row.queue_position,
            priority=conversation.priority or 0,
            reason=(conversation.handoff_context or {}).get("reason"),
            handoff_at=iso(conversation.handoff_at),
            first_response_at=iso(conversation.first_response_at),
            resolved_at=iso(conversation.resolved_at),
            last_customer_message_at=iso(conversation.last_customer_message_at),
            sla_breached=conversation.sla_breached_at is not None,
            sla_breached_at=iso(conversation.sla_breached_at),
            code_red_at=iso(conversation.code_red_at),
            updated_at=iso(conversation.updated_at),
        )


class MessageOut(Body):
    id: int
    direction: str
    sender: str
    agent: str | None
    text: str
    attachments: list[dict[str, Any]]
    buttons: list[dict[str, Any]]
    status: str
    delivery_status: str | None
    last_error: str | None
    at: str | None
    sent_at: str | None

    @classmethod
    def of(cls, message: Message, logins: dict[int, str]) -> MessageOut:
        return cls(
            id=message.id,
            direction=message.direction,
            sender=message.sender,
            agent=logins.get(message.agent_id) if message.agent_id else None,
            text=message.text,
            attachments=message.attachments or [],
            buttons=message.buttons or [],
            status=message.status,
            delivery_status=message.delivery_status,
            last_error=message.last_error,
            at=iso(message.created_at),
            sent_at=iso(message.sent_at),
        )


class NewNoteOut(Body):
    id: int
    author: str | None
    text: str | None


class NoteOut(NewNoteOut):
    at: str | None

    @classmethod
    def of(cls, note: Event) -> NoteOut:
        data = note.data or {}
        return cls(id=note.id, author=data.get("author"), text=data.get("text"), at=iso(note.created_at))


class AssignmentOut(Body):
    """One agent's hold on the conversation: from when, given how and by whom, until when and why."""

    agent: AgentRefOut
    assigned_at: str | None
    assigned_by: str
    how: str
    first_response_at: str | None
    ended_at: str | None
    end_reason: str | None

    @classmethod
    def of(cls, assignment: Assignment, agent: Agent) -> AssignmentOut:
        return cls(
            agent=AgentRefOut.of(agent),
            assigned_at=iso(assignment.assigned_at),
            assigned_by=assignment.assigned_by,
            how=assignment.how,
            first_response_at=iso(assignment.first_response_at),
            ended_at=iso(assignment.ended_at),
            end_reason=assignment.end_reason,
        )


class SlaOut(Body):
    """Seconds from handoff to the first agent reply and to resolution (None until they happen)."""

    first_response_seconds: float | None
    resolution_seconds: float | None
    breached: bool

    @classmethod
    def of(cls, conversation: Conversation) -> SlaOut:
        start = conversation.handoff_at
        return cls(
            first_response_seconds=_seconds(start, conversation.first_response_at),
            resolution_seconds=_seconds(start, conversation.resolved_at),
            breached=conversation.sla_breached_at is not None,
        )


class EventOut(Body):
    """One audit event: what happened (kind), to which conversation, by whom (actor), when."""

    id: int
    kind: str
    conversation_id: int | None
    agent_id: int | None
    actor: str
    data: dict[str, Any]
    at: str | None

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            kind=event.kind,
            conversation_id=event.conversation_id,
            agent_id=event.agent_id,
            actor=event.actor,
            data=event.data or {},
            at=iso(event.created_at),
        )


class HistoryOut(Body):
    assignments: list[AssignmentOut]
    events: list[EventOut]


# --- one conversation in full -----------------------------------------------------------------------


class CardCustomerOut(Body):
    channel: str
    external_id: str
    name: str | None
    username: str | None
    phone: str | None
    language: str | None


class TranscriptLineOut(Body):
    id: int
    direction: str
    sender: str
    text: str
    attachments: list[dict[str, Any]]
    at: str | None


class MatchedOut(Body):
    """A customer message the bot read: what it decided, on which label, how sure, and the runners-up."""

    message_id: int
    text: str
    decision: str | None
    label: str | None
    score: float | None
    candidates: list[dict[str, Any]]


class PreviousConversationOut(Body):
    id: int
    channel: str
    state: str
    started_at: str | None
    resolved_at: str | None
    outcome: str
    resolution: str | None
    agents: list[str]
    answered_entries: list[str]


class ContextCardOut(Body):
    """What the agent knows on taking the conversation (bot/handoff/context.py), as it is now."""

    reason: str
    language: str | None
    customer: CardCustomerOut
    transcript: list[TranscriptLineOut]
    matched: list[MatchedOut]
    answered_entries: list[str]
    providers: dict[str, dict[str, Any]]
    vip: bool
    priority: int
    previous_conversations: list[PreviousConversationOut]


class ConversationDetailOut(ConversationOut):
    """A conversation with its messages, notes, context card, who had it, and its SLA times."""

    messages: list[MessageOut]
    notes: list[NoteOut]
    context: ContextCardOut
    assignments: list[AssignmentOut]
    sla: SlaOut

    @classmethod
    def full(
        cls,
        row: ConversationRow,
        messages: Sequence[Message],
        logins: dict[int, str],
        notes: Sequence[Event],
        card: dict[str, Any],
        held: Sequence[tuple[Assignment, Agent]],
    ) -> ConversationDetailOut:
        return cls(
            **dict(ConversationOut.of(row)),
            messages=[MessageOut.of(message, logins) for message in messages],
            notes=[NoteOut.of(note) for note in notes],
            context=ContextCardOut.model_validate(card),
            assignments=[AssignmentOut.of(assignment, agent) for assignment, agent in held],
            sla=SlaOut.of(row.conversation),
        )


def _seconds(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return round((as_utc(end) - as_utc(start)).total_seconds(), 1)

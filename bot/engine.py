"""The conversation engine: store, deduplicate, run the state machine, decide, queue replies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.actions.outcome import failure_reply
from bot.actions.runner import ActionRunner
from bot.actions.turn import PendingAction, prepare_action, run_actions
from bot.config import Settings
from bot.delivery.outbox import Claimed, lease_end
from bot.handoff.base import Handoff
from bot.handoff.context import build_context
from bot.insights import csat
from bot.messages import IncomingMessage, OutgoingReply
from bot.nlu.batching import UnderstandingBatcher
from bot.nlu.language import choose_language
from bot.nlu.matcher import Matcher
from bot.nlu.policy import Decision
from bot.phrases import phrase
from bot.states import HUMAN_STATES, State
from bot.storage.database import Database
from bot.storage.models import Conversation, Customer, Message, as_utc
from bot.storage.repositories import ConversationRepository, MessageRepository
from bot.turn_plan import BOT_PAYLOAD, Plan, TurnPlanner, handoff_reply, typed_action_button

log = logging.getLogger(__name__)

UNDERSTANDING_FAILED = "bot_error"  # the handoff reason when the intent layer raised on a message
UNDERSTANDING_TIMED_OUT = "bot_timeout"  # ... or had no decision within policy.understanding_timeout_seconds
# the handoff reasons when a custom action failed (actions.on_failure: handoff), or asked for a person
ACTION_FAILED = "action_failed"
ACTION_HANDOFF = "action_handoff"


@dataclass
class TurnResult:
    """What one inbound message led to: the replies queued, the decision and the new state."""

    conversation_id: int | None
    state: str
    decision: Decision | None = None
    replies: list[tuple[int, OutgoingReply]] = field(default_factory=list)
    duplicate: bool = False
    edited: bool = False
    claimed: list[Claimed] = field(default_factory=list)  # replies leased to this process to send now
    pending: PendingAction | None = None  # a custom action to run once the message is committed


class ConversationEngine:
    """Turns one IncomingMessage into stored replies; knows no messenger and no agent UI."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        matcher: Callable[[], Matcher],
        handoff: Handoff,
        executor: Executor | None = None,
        sends_on: Callable[[str], bool] | None = None,
        actions: ActionRunner | None = None,
    ) -> None:
        self.settings = settings
        self.actions = actions  # where custom actions run (actions.url / actions.package), if anywhere
        self.database = database
        self._matcher = matcher
        self.handoff = handoff
        self._batcher = UnderstandingBatcher(
            executor, settings.embedding.workers, settings.embedding.max_batch
        )
        # Does this process send on that channel? Then a turn leases its replies to it at once.
        self._sends_on = sends_on
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._planner = TurnPlanner(settings, matcher, actions)

    def _lock_for(self, message: IncomingMessage) -> asyncio.Lock:
        key = (message.channel, message.customer_id)
        if len(self._locks) > 10_000:  # forget idle customers
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(key, asyncio.Lock())

    async def handle(self, message: IncomingMessage) -> TurnResult:
        """Understand the message, then store it, the decision and the replies in one transaction.

        The text alone says what the message means, so the model reads it at once, even while the
        customer's previous message is still being handled; the stored state then decides what to do.
        Nothing is written while the model works, so a transaction never waits for it. The replies
        are stored (in the outbox) in the same transaction as the message, before anything sends them.
        """
        deadline = asyncio.get_running_loop().time() + self.settings.policy.understanding_timeout_seconds
        message = typed_action_button(message)
        understanding = None if message.edited else self._start_understanding(message)
        try:
            async with self._lock_for(message):
                if message.edited:
                    edited = await self._apply_edit(message)
                    if edited is not None:
                        return edited
                    understanding = self._start_understanding(message)
                decision = await self._decision(understanding, deadline)
                result = await self._turn(message, decision)
                if result.pending is not None:  # the message is stored: now the action, outside a transaction
                    result = await self._finish_action(result.pending)
                return result
        finally:
            if understanding is not None and not understanding.done():
                understanding.cancel()

    async def _decision(
        self, understanding: asyncio.Task[Decision] | None, deadline: float
    ) -> Decision | None:
        """The intent layer's decision; a person's turn when it fails or takes too long (the message is kept).

        The deadline (event-loop time) counts from the message's arrival, the wait for a free model and for
        the customer's previous message included: a customer is never left without a reply because the
        model hung or fell hopelessly behind.
        """
        if understanding is None:
            return None
        try:
            left = deadline - asyncio.get_running_loop().time()
            return await asyncio.wait_for(understanding, max(left, 0.0))
        except TimeoutError:
            log.error(
                "the intent layer had no decision on a message within %.0f s; handing it to a person",
                self.settings.policy.understanding_timeout_seconds,
            )
            return Decision("handoff", None, 0.0, UNDERSTANDING_TIMED_OUT)
        except Exception:
            log.exception("the intent layer failed on a message; handing the conversation to a person")
            return Decision("handoff", None, 0.0, UNDERSTANDING_FAILED)

    async def hand_off_from_outside(
        self, message: IncomingMessage, reason: str, history: Sequence[tuple[str, str, datetime]] = ()
    ) -> TurnResult:
        """Store `message` and hand its conversation to a person, as another bot asked (a Rasa assistant).

        `history` is that bot's transcript, (customer | bot, text, when): the turns newer than what is
        stored are stored first, so the agent's card shows them. A conversation already with people gets
        the message like any other.
        """
        async with self._lock_for(message), self.database.session() as session:
            conversations = ConversationRepository(session)
            customer, conversation = await conversations.customer_and_conversation(message)
            await self._store_history(session, conversation, message, history)
            inbound = await MessageRepository(session).add_inbound(conversation, message, None)
            if inbound is None:
                return TurnResult(conversation.id, conversation.state, duplicate=True)
            settings = self.settings.kb
            language = choose_language(
                message.text,
                message.language_hint,
                conversation.language,
                settings.languages,
                settings.default_language,
            )
            conversation.language = customer.language = language
            if conversation.state in HUMAN_STATES:
                stored = await session.get(Message, inbound)
                assert stored is not None
                await self.handoff.customer_message(session, conversation, stored)
                return TurnResult(conversation.id, conversation.state)
            plan = Plan(handoff_reason=reason)
            return await self._carry_out(
                session, customer, conversation, inbound, message, None, language, None, plan
            )

    async def _store_history(
        self,
        session: AsyncSession,
        conversation: Conversation,
        message: IncomingMessage,
        history: Sequence[tuple[str, str, datetime]],
    ) -> None:
        """Store another bot's turns that are newer than this conversation's last stored message."""
        messages = MessageRepository(session)
        stored = await messages.transcript(conversation.id, limit=1)
        since = as_utc(stored[-1].created_at) if stored else None
        for n, (sender, text, at) in enumerate(history):
            if since is not None and at <= since:
                continue
            if sender == "customer":
                turn = replace(
                    message, text=text, timestamp=at, platform_message_id=f"{message.platform_message_id}-{n}"
                )
                await messages.add_inbound(conversation, turn, None)
            else:  # said before supportbot took over: stored as sent, never sent again
                row = await messages.add_outbound(conversation, OutgoingReply(text), sender="bot")
                row.status, row.sent_at, row.created_at = "sent", at, at

    def longest_model_call_seconds(self) -> float:
        """How long the oldest model call still running has run (0 when none), for /healthz."""
        return self._batcher.longest_call_seconds()

    def _start_understanding(self, message: IncomingMessage) -> asyncio.Task[Decision] | None:
        if message.payload or (message.attachments and not message.text.strip()):
            return None  # buttons and files are handled without the intent layer
        return asyncio.create_task(self._batcher.understand(self._matcher(), message.text))

    async def _apply_edit(self, message: IncomingMessage) -> TurnResult | None:
        """Update the text of an edited message we stored; None when we never saw it (a new message)."""
        async with self.database.session() as session:
            row = await MessageRepository(session).apply_edit(message)
            if row is None:
                return None
            conversation = await ConversationRepository(session).get(row.conversation_id)
            return TurnResult(row.conversation_id, conversation.state if conversation else "", edited=True)

    async def _turn(self, message: IncomingMessage, decision: Decision | None) -> TurnResult:
        async with self.database.session() as session:
            if message.payload and message.payload.startswith(csat.CSAT_PAYLOAD):
                rated = await self._rate(session, message)
                if rated is not None:
                    return rated
            conversations = ConversationRepository(session)
            customer, conversation = await conversations.customer_and_conversation(message)
            if conversation.state in HUMAN_STATES and not self._may_leave_queue(message):
                decision = None  # for the agent, not the bot
            summary = decision.summary() if decision is not None else None
            inbound = await MessageRepository(session).add_inbound(conversation, message, summary)
            if inbound is None:
                return TurnResult(conversation.id, conversation.state, duplicate=True)
            language = choose_language(
                message.text,
                message.language_hint,
                conversation.language,
                self.settings.kb.languages,
                self.settings.kb.default_language,
            )
            conversation.language = language
            customer.language = customer.language or language
            return await self._act(
                session, customer, conversation, inbound, message, decision, language, summary
            )

    async def _rate(self, session: AsyncSession, message: IncomingMessage) -> TurnResult | None:
        """A CSAT button: stored on the resolved conversation it rates (no new conversation starts)."""
        found = await csat.rated_conversation(session, message)
        if found is None:
            return None  # not a rating of this customer's resolved conversation: an unknown button
        customer, conversation, score = found
        inbound = await MessageRepository(session).add_inbound(conversation, message)
        if inbound is None:
            return TurnResult(conversation.id, conversation.state, duplicate=True)
        # the desk's clock, which stamped the resolution (and which tests and business hours set)
        now = self.handoff.clock()
        reply = await csat.record(session, conversation, score, now, self.settings.handoff.csat_window)
        result = TurnResult(conversation.id, conversation.state)
        await self._store_replies(session, customer, conversation, [reply], None, result)
        return result

    def _may_leave_queue(self, message: IncomingMessage) -> bool:
        return message.payload == BOT_PAYLOAD or bool(message.text.strip())

    async def _act(
        self,
        session: AsyncSession,
        customer: Customer,
        conversation: Conversation,
        inbound: int,
        message: IncomingMessage,
        decision: Decision | None,
        language: str,
        summary: dict[str, Any] | None,
    ) -> TurnResult:
        """Plan and store the bot's answer to the stored message `inbound` (its id; `summary` its decision)."""
        conversations = ConversationRepository(session)
        if conversation.state in HUMAN_STATES:
            plan = self._planner.human_state(conversation, message, decision, language)
            if not plan.back_to_bot:
                stored = await session.get(Message, inbound)
                assert stored is not None
                await self.handoff.customer_message(session, conversation, stored)
                if plan.handoff_reason is None:
                    return TurnResult(conversation.id, conversation.state, decision)
        else:
            plan = self._planner.bot_state(conversation, message, decision, language)
        for kind, data in plan.events:
            await conversations.add_event(conversation.id, kind, "customer", data)
        if plan.action is not None:  # the turn ends here: the action runs once the message is committed
            pending = await prepare_action(
                session,
                plan.action,
                customer,
                conversation,
                inbound,
                message,
                decision,
                language,
                summary,
                self._matcher(),
                self.settings,
            )
            return TurnResult(conversation.id, conversation.state, decision, pending=pending)
        return await self._carry_out(
            session, customer, conversation, inbound, message, decision, language, summary, plan
        )

    async def _carry_out(
        self,
        session: AsyncSession,
        customer: Customer,
        conversation: Conversation,
        inbound: int,
        message: IncomingMessage,
        decision: Decision | None,
        language: str,
        summary: dict[str, Any] | None,
        plan: Plan,
    ) -> TurnResult:
        """Store the planned replies (and hand off, leave the queue, count misses) for the message `inbound`."""
        conversations = ConversationRepository(session)
        early = TurnResult(conversation.id, conversation.state)
        if plan.back_to_bot:
            await conversations.transition(conversation, State.BOT, "customer", "back_to_bot")
            await self.handoff.cancelled(session, conversation)
        if plan.reset_misses:
            conversation.bot_misses = 0
        if plan.miss:
            conversation.bot_misses += 1
            if conversation.bot_misses >= self.settings.policy.max_misses:
                plan.replies = []
                plan.handoff_reason = "repeated_misses"
        if plan.handoff_reason and conversation.state == State.BOT:
            if plan.early_replies:  # stored first, so the transcript on the agent's card has them
                await self._store_replies(session, customer, conversation, plan.early_replies, summary, early)
                await session.flush()
            plan.replies.append(
                await self._hand_off(session, conversation, plan.handoff_reason, language, plan.card)
            )
            if summary is not None:
                summary = {**summary, "decision": "handoff", "reason": plan.handoff_reason}
            else:
                summary = {
                    "decision": "handoff",
                    "kind": "handoff",
                    "label": None,
                    "score": 0.0,
                    "reason": plan.handoff_reason,
                }
            await MessageRepository(session).set_decision_by_id(inbound, summary)
        else:
            plan.replies[:0] = plan.early_replies
        if len(message.text) > self.settings.policy.max_message_chars and plan.replies:
            first = plan.replies[0]
            note = phrase("long_message", language)
            plan.replies[0] = OutgoingReply(f"{first.text}\n\n{note}", first.buttons, first.attachments)
        result = TurnResult(conversation.id, conversation.state, replies=early.replies, claimed=early.claimed)
        await self._store_replies(session, customer, conversation, plan.replies, summary, result)
        result.decision = decision
        if plan.handoff_reason and (decision is None or decision.kind != "handoff"):
            result.decision = Decision(
                "handoff",
                decision.label if decision else None,
                decision.score if decision else 0.0,
                plan.handoff_reason,
                candidates=decision.candidates if decision else (),
            )
        return result

    async def _finish_action(self, pending: PendingAction) -> TurnResult:
        """Run the action (never raises), then store what it said and set, or apply its failure policy."""
        outcome = await run_actions(
            self.actions, pending, self.settings.actions, self.settings.kb.default_language
        )
        async with self.database.session() as session:
            conversations = ConversationRepository(session)
            conversation = await conversations.get(pending.conversation_id, lock=True)
            customer = await conversations.customer(conversation.customer_id) if conversation else None
            if conversation is None or customer is None:  # deleted meanwhile (an operator's clean-up)
                return TurnResult(pending.conversation_id, "", pending.decision)
            if outcome.ran:
                conversation.slots = outcome.slots or None
            card = outcome.card()
            plan = Plan(card={"action": card}, early_replies=outcome.replies)
            if outcome.failure is not None:
                if self.settings.actions.failure_policy(outcome.failed_action or pending.action) == "reply":
                    plan.replies.append(failure_reply(pending.fallback_answer, pending.language))
                else:
                    plan.handoff_reason = ACTION_FAILED
            else:
                plan.reset_misses = True
                plan.handoff_reason = ACTION_HANDOFF if outcome.handoff else None
            await conversations.add_event(conversation.id, "custom_action", "bot", card)
            return await self._carry_out(
                session,
                customer,
                conversation,
                pending.inbound_id,
                pending.message,
                pending.decision,
                pending.language,
                pending.summary,
                plan,
            )

    async def _store_replies(
        self,
        session: AsyncSession,
        customer: Customer,
        conversation: Conversation,
        replies: list[OutgoingReply],
        summary: dict[str, Any] | None,
        result: TurnResult,
    ) -> None:
        """Store the replies in the outbox; leased to this process when it sends on their channel.

        A leased reply is sent right after the commit and no other sender touches it until the lease
        ends (then the outbox retries it, should this process have died before sending).
        """
        messages = MessageRepository(session)
        lease = self._sends_on is not None and self._sends_on(conversation.channel) and not customer.blocked
        for reply in replies:
            row_id = await messages.add_reply(
                conversation, reply, decision=summary, next_attempt_at=lease_end() if lease else None
            )
            result.replies.append((row_id, reply))
            if lease:
                result.claimed.append(Claimed.of(row_id, conversation, customer.external_id, reply))

    async def _hand_off(
        self,
        session: Any,
        conversation: Conversation,
        reason: str,
        language: str,
        card: dict[str, Any] | None = None,
    ) -> OutgoingReply:
        conversations = ConversationRepository(session)
        await conversations.transition(conversation, State.WAITING, "bot", reason)
        await session.flush()
        customer = await conversations.customer(conversation.customer_id)
        assert customer is not None
        transcript = await MessageRepository(session).transcript(conversation.id)
        context = build_context(conversation, customer, transcript, reason)
        if card:
            context.update(card)
        ticket = await self.handoff.enqueue(session, conversation, context, reason)
        return handoff_reply(ticket, reason, language)

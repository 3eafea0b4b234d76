"""One turn's actions: run the first, then any FollowupAction chain; a failure is logged, never raised."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.actions.check import named_actions
from bot.actions.outcome import ACTIVE_LOOP, ActionOutcome, read_events, replies_from
from bot.actions.runner import ActionFailed, ActionRunner
from bot.actions.tracker import (
    CHANNEL_SLOTS,
    action_call,
    conversation_events,
    domain,
    followup_call,
    latest_message,
    sender_id,
    tracker_slots,
)
from bot.config import ActionsSettings, Settings
from bot.insights import metrics
from bot.messages import IncomingMessage
from bot.nlu.policy import Decision
from bot.storage.models import Conversation, Customer
from bot.storage.repositories import MessageRepository

if TYPE_CHECKING:
    from bot.nlu.matcher import Matcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionRequest:
    """The engine's plan to answer with a custom action."""

    action: str
    label: str  # the KB entry or intent (or button) that chose it: the tracker's intent
    fallback_answer: str | None = None  # the KB entry's own answer, for a failure with policy reply


@dataclass(frozen=True)
class PendingAction:
    """A stored message whose answer is an action: run after the message is committed, then stored."""

    call: dict[str, Any]  # the webhook request (bot/actions/tracker.py)
    conversation_id: int
    inbound_id: int
    message: IncomingMessage
    decision: Decision | None
    language: str
    summary: dict[str, Any] | None
    fallback_answer: str | None  # the KB entry's own answer, said when the action fails and policy is reply
    stored_slots: dict[str, Any]  # what earlier actions set in this conversation

    @property
    def action(self) -> str:
        return str(self.call["next_action"])


async def prepare_action(
    session: AsyncSession,
    request: ActionRequest,
    customer: Customer,
    conversation: Conversation,
    inbound: int,
    message: IncomingMessage,
    decision: Decision | None,
    language: str,
    summary: dict[str, Any] | None,
    matcher: Matcher,
    settings: Settings,
) -> PendingAction:
    """Build the action's call from the stored conversation and note the action on the stored message."""
    transcript = await MessageRepository(session).transcript(
        conversation.id, limit=settings.actions.history + 1
    )
    slots = tracker_slots(customer, conversation, language)
    latest = latest_message(message.text, request.label, decision, conversation.channel, language)
    labels = [e.id for e in matcher.kb.entries] + [i.name for i in matcher.intents.intents]
    stored_slots = dict(conversation.slots or {})
    call = action_call(
        request.action,
        sender_id(conversation.channel, customer.external_id),
        slots,
        latest,
        conversation_events(transcript, conversation.channel, settings.actions.history + 1),
        domain({*named_actions(settings, matcher.kb), request.action}, labels, slots),
        stored_slots.get(ACTIVE_LOOP),
    )
    pressed = {
        "decision": "answer",
        "kind": "action",
        "label": request.label,
        "score": 1.0,
        "reason": "button",
    }
    summary = {**(summary or pressed), "action": request.action, "entities": latest["entities"]}
    await MessageRepository(session).set_decision_by_id(inbound, summary)
    return PendingAction(
        call,
        conversation.id,
        inbound,
        message,
        decision,
        language,
        summary,
        request.fallback_answer,
        stored_slots,
    )


async def run_actions(
    runner: ActionRunner | None, pending: PendingAction, settings: ActionsSettings, default_language: str
) -> ActionOutcome:
    """Run the pending action and its follow-ups; return what they said and set, or why one failed."""
    call = pending.call
    outcome = ActionOutcome(pending.action, dict(pending.stored_slots))
    for _ in range(settings.max_followups + 1):
        name = str(call["next_action"])
        try:
            if runner is None:
                raise ActionFailed(
                    "no action server or package is configured (actions.url or actions.package)"
                )
            with metrics.action_call(name):
                result = await runner.run(call)
        except ActionFailed as exc:
            where = runner.where if runner is not None else "nowhere"
            log.error(
                "custom action %s failed (%s, conversation %s): %s", name, where, pending.conversation_id, exc
            )
            outcome.failure, outcome.failed_action = str(exc), name
            return outcome
        outcome.ran.append(name)
        replies = replies_from(result.responses, pending.language, default_language)
        outcome.replies.extend(replies)
        outcome.utterances.extend(reply.text for reply in replies if reply.text)
        stored = read_events(result.events, outcome.slots)  # what the conversation keeps
        seen = read_events(result.events, call["tracker"]["slots"])  # what the next action's tracker shows
        outcome.slots = {k: v for k, v in stored.slots.items() if k not in CHANNEL_SLOTS}
        outcome.restarted = outcome.restarted or stored.restarted
        if stored.handoff or stored.followup in (None, "action_listen"):
            outcome.handoff = stored.handoff
            return _said_something(outcome)
        utterances = [reply.text for reply in replies]
        call = followup_call(call, str(stored.followup), seen.slots, result.events, utterances)
    log.warning(
        "custom action %s: stopped after %d follow-up actions (actions.max_followups)",
        pending.action,
        settings.max_followups,
    )
    return _said_something(outcome)


def _said_something(outcome: ActionOutcome) -> ActionOutcome:
    """An action that neither replied nor handed off counts as failed: a customer is never left unanswered."""
    if not outcome.replies and not outcome.handoff:
        outcome.failure, outcome.failed_action = "the action said nothing", outcome.ran[-1]
        log.error("custom action %s said nothing; treated as failed", outcome.failed_action)
    return outcome

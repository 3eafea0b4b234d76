"""One turn's actions: run the first, then any FollowupAction chain; a failure is logged, never raised."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.actions.outcome import ActionOutcome, read_events, replies_from
from bot.actions.runner import ActionFailed, ActionRunner
from bot.actions.tracker import CHANNEL_SLOTS, followup_call
from bot.config import ActionsSettings
from bot.messages import IncomingMessage
from bot.nlu.policy import Decision

log = logging.getLogger(__name__)


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
            return outcome
        utterances = [reply.text for reply in replies]
        call = followup_call(call, str(stored.followup), seen.slots, result.events, utterances)
    log.warning(
        "custom action %s: stopped after %d follow-up actions (actions.max_followups)",
        pending.action,
        settings.max_followups,
    )
    return outcome

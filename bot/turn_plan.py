"""What the bot answers to one message in its state, as a plan: replies, a handoff, or a custom action.

The plan is made without touching storage; the engine (bot/engine.py) stores and carries it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bot.actions.outcome import ACTION_PAYLOAD, ACTIVE_LOOP
from bot.actions.runner import ActionRunner
from bot.actions.turn import ActionRequest
from bot.config import Settings
from bot.content.knowledge import KBEntry
from bot.handoff.base import QueueTicket
from bot.insights.feedback import FEEDBACK_EVENT
from bot.messages import START_PAYLOAD, Button, IncomingMessage, OutgoingReply
from bot.nlu.matcher import Matcher
from bot.nlu.policy import Decision
from bot.phrases import PHRASES, phrase
from bot.states import State
from bot.storage.models import Conversation

HUMAN_PAYLOAD = "human"
BOT_PAYLOAD = "bot"
ENTRY_PAYLOAD = "entry:"
FEEDBACK_PAYLOAD = "fb:"
READABLE_ATTACHMENTS = frozenset({"photo", "document", "voice", "audio", "video", "location", "contact"})


@dataclass
class Plan:
    """What the bot means to do with one message: replies, a handoff, a custom action, counters."""

    replies: list[OutgoingReply] = field(default_factory=list)
    handoff_reason: str | None = None
    back_to_bot: bool = False
    miss: bool = False
    reset_misses: bool = False
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    action: ActionRequest | None = None  # a custom action answers (bot/actions)
    early_replies: list[OutgoingReply] = field(default_factory=list)  # stored before a handoff (on the card)
    card: dict[str, Any] | None = None  # extra for the agent's context card


class TurnPlanner:
    """Plans the bot's answer from the message, its decision and the conversation's state."""

    def __init__(
        self, settings: Settings, matcher: Callable[[], Matcher], actions: ActionRunner | None = None
    ) -> None:
        self.settings = settings
        self.matcher = matcher
        self.actions = actions  # custom actions run (an entry's action beats its text only then)

    def human_state(
        self, conversation: Conversation, message: IncomingMessage, decision: Decision | None, language: str
    ) -> Plan:
        plan = Plan()
        wants_bot = message.payload == BOT_PAYLOAD or (
            decision is not None and decision.kind == "respond" and decision.label == "back_to_bot"
        )
        if wants_bot and conversation.state == State.WAITING:
            plan.back_to_bot = True
            plan.replies.append(OutgoingReply(phrase("back_to_bot", language)))
        return plan

    def bot_state(
        self, conversation: Conversation, message: IncomingMessage, decision: Decision | None, language: str
    ) -> Plan:
        plan = Plan()
        matcher = self.matcher()
        default = self.settings.kb.default_language
        payload = message.payload or ""
        if payload == START_PAYLOAD:
            buttons = [
                Button(entry.title_in(language, default)[:64], f"{ENTRY_PAYLOAD}{entry.id}")
                for entry in matcher.kb.top_topics()
            ]
            buttons.append(Button(phrase("offer_human", language), HUMAN_PAYLOAD))
            plan.replies.append(OutgoingReply(phrase("greet", language), tuple(buttons)))
        elif payload == HUMAN_PAYLOAD:
            plan.handoff_reason = "human_button"
        elif payload.startswith(ENTRY_PAYLOAD) and matcher.kb.get(payload[len(ENTRY_PAYLOAD) :]):
            entry = matcher.kb.get(payload[len(ENTRY_PAYLOAD) :])
            assert entry is not None
            self._answer_entry(plan, entry, language)
            plan.reset_misses = True
            plan.events.append(("clarification_chosen", {"entry": entry.id}))
        elif payload.startswith(ACTION_PAYLOAD):  # an action's button: "/name" runs that action
            plan.action = self._action_named(payload[len(ACTION_PAYLOAD) :].lstrip("/"))
        elif payload.startswith(FEEDBACK_PAYLOAD):
            _, vote, entry_id = [*payload.split(":", 2), "", ""][:3]
            plan.events.append((FEEDBACK_EVENT, {"vote": vote, "entry": entry_id}))
            plan.replies.append(OutgoingReply(phrase("feedback_thanks", language)))
            if vote == "down":
                plan.replies[-1] = OutgoingReply(
                    phrase("answer_then_human", language),
                    (Button(phrase("offer_human", language), HUMAN_PAYLOAD),),
                )
        elif decision is None:
            plan.replies.append(self._no_text_reply(message, language))
        elif decision.kind == "handoff":
            plan.handoff_reason = decision.label or decision.reason
        elif decision.kind in ("fallback", "clarify") and (conversation.slots or {}).get(ACTIVE_LOOP):
            loop = str((conversation.slots or {})[ACTIVE_LOOP])  # the action asked for what this may be
            plan.action = ActionRequest(loop, loop)
        elif decision.kind == "answer" and decision.label and matcher.kb.get(decision.label):
            entry = matcher.kb.get(decision.label)
            assert entry is not None
            self._answer_entry(plan, entry, language)
            plan.reset_misses = True
        elif decision.kind == "clarify":
            buttons = [
                Button(entry.title_in(language, default)[:64], f"{ENTRY_PAYLOAD}{entry.id}")
                for entry in (matcher.kb.get(option) for option in decision.options)
                if entry is not None
            ]
            buttons.append(Button(phrase("offer_human", language), HUMAN_PAYLOAD))
            plan.replies.append(OutgoingReply(phrase("clarify", language), tuple(buttons)))
            # an offer resolves nothing until an option is chosen: offers and fallbacks in a row hand off
            # (policy.max_misses), so a customer who keeps getting offers is never stuck with the bot
            plan.miss = True
        elif decision.kind == "respond" and decision.label in self._intent_actions():
            plan.action = ActionRequest(self._intent_actions()[decision.label], decision.label)
        elif decision.kind == "respond" and decision.label in PHRASES:
            plan.replies.append(OutgoingReply(phrase(decision.label, language)))
            plan.reset_misses = True
        else:
            key = decision.reason if decision.reason in ("empty", "no_text") else "fallback"
            offer: tuple[Button, ...] = ()
            if key == "fallback":
                offer = (Button(phrase("offer_human", language), HUMAN_PAYLOAD),)
            plan.replies.append(OutgoingReply(phrase(key, language), offer))
            plan.miss = key == "fallback"
        return plan

    def _answer_entry(self, plan: Plan, entry: KBEntry, language: str) -> None:
        """Answer with the entry's custom action when it names one and actions run, else with its text."""
        default = self.settings.kb.default_language
        if entry.action and (self.actions is not None or not entry.answer):
            fallback = entry.answer_in(language, default) if entry.answer else None
            plan.action = ActionRequest(entry.action, entry.id, fallback)
        else:
            plan.replies.append(self._answer(entry, language))

    def _intent_actions(self) -> dict[str, str]:
        """Return the intents answered by a custom action (intents.actions other than respond/handoff)."""
        return {k: v for k, v in self.settings.intents.actions.items() if v not in ("respond", "handoff")}

    def _action_named(self, name: str) -> ActionRequest:
        """Return what an action button's "/name" runs: the action of that intent or entry, or that action."""
        name = name.split("{", 1)[0].strip()
        entry = self.matcher().kb.get(name)
        if entry is not None and entry.action:
            return ActionRequest(entry.action, entry.id)
        return ActionRequest(self._intent_actions().get(name, name), name)

    def _no_text_reply(self, message: IncomingMessage, language: str) -> OutgoingReply:
        kinds = [a.kind for a in message.attachments]
        if kinds and all(kind in READABLE_ATTACHMENTS for kind in kinds):
            return OutgoingReply(phrase("attachment_received", language, kind=", ".join(kinds)))
        if kinds:
            return OutgoingReply(phrase("unsupported", language))
        if message.payload:  # a button we no longer know (old message): read as a miss, not an error
            return OutgoingReply(
                phrase("fallback", language), (Button(phrase("offer_human", language), HUMAN_PAYLOAD),)
            )
        return OutgoingReply(phrase("empty", language))

    def _answer(self, entry: KBEntry, language: str) -> OutgoingReply:
        text = entry.answer_in(language, self.settings.kb.default_language)
        if entry.handoff:
            return OutgoingReply(
                f"{text}\n\n{phrase('answer_then_human', language)}",
                (Button(phrase("offer_human", language), HUMAN_PAYLOAD),),
            )
        return OutgoingReply(
            text,
            (
                Button("👍", f"{FEEDBACK_PAYLOAD}up:{entry.id}"),
                Button("👎", f"{FEEDBACK_PAYLOAD}down:{entry.id}"),
            ),
        )


def typed_action_button(message: IncomingMessage) -> IncomingMessage:
    """An action's button whose payload is text (not "/action") reads as if the customer typed it."""
    payload = message.payload or ""
    if payload.startswith(ACTION_PAYLOAD) and not payload[len(ACTION_PAYLOAD) :].startswith("/"):
        return replace(message, text=payload[len(ACTION_PAYLOAD) :], payload=None)
    return message


def handoff_reply(ticket: QueueTicket, reason: str, language: str) -> OutgoingReply:
    """Tell the customer they are queued for a person: their place, the wait, and a button to cancel."""
    key = "handoff_after_misses" if reason == "repeated_misses" else "handoff"
    text = phrase(key, language, position=ticket.position)
    if key == "handoff_after_misses":
        text = f"{text} {phrase('handoff', language, position=ticket.position)}"
    if ticket.notice:  # the estimated wait, or when agents are back
        text = f"{text} {ticket.notice}"
    return OutgoingReply(text, (Button(_cancel_title(language), BOT_PAYLOAD),))


def _cancel_title(language: str) -> str:
    return {"ru": "Отмена", "uk": "Скасувати", "pl": "Anuluj"}.get(language, "Cancel")

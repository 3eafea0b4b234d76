"""What an action's answer means for the conversation: replies, slots, a handoff, the next action."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.messages import Attachment, Button, OutgoingReply
from bot.phrases import PHRASES, phrase

log = logging.getLogger(__name__)

# A FollowupAction to one of these hands the conversation to a person, like ConversationPaused.
HANDOFF_ACTIONS = frozenset({"action_handoff", "action_human_handoff", "action_supportbot_handoff"})
ACTION_PAYLOAD = "act:"  # an action's button: the payload comes back after this prefix
OWN_PAYLOADS = frozenset({"human", "bot"})  # payloads the engine knows (and entry:<id>) pass through
_IGNORED_EVENTS = frozenset({"action", "user", "bot", "session_started", "resume", "export"})
# ActiveLoop(name) is kept among the stored slots under this key: the loop's action gets the next message
# the intent layer cannot place (a bare "12345" after "what is your order number?"); ActiveLoop(None) ends it
ACTIVE_LOOP = "_active_loop"


@dataclass
class EventEffects:
    """What the events of one action run ask for."""

    slots: dict[str, Any]  # the slots actions set, after this run
    handoff: bool = False
    followup: str | None = None
    restarted: bool = False


@dataclass
class ActionOutcome:
    """Everything the actions of one turn did, or why the last one failed."""

    action: str
    slots: dict[str, Any]
    replies: list[OutgoingReply] = field(default_factory=list)
    utterances: list[str] = field(default_factory=list)  # their texts, for the agent's card
    handoff: bool = False
    restarted: bool = False
    ran: list[str] = field(default_factory=list)
    failure: str | None = None  # why the action named `failed_action` gave no usable answer
    failed_action: str | None = None

    def card(self) -> dict[str, Any]:
        """Return what the agent's context card shows about the actions of this turn."""
        return {
            "name": self.action,
            "ran": self.ran,
            "utterances": self.utterances,
            "failure": self.failure,
            "slots": {k: v for k, v in self.slots.items() if v is not None},
        }


def read_events(events: Sequence[Mapping[str, Any]], slots: Mapping[str, Any]) -> EventEffects:
    """Apply SlotSet, Restarted, AllSlotsReset, ConversationPaused and FollowupAction to `slots`."""
    effects = EventEffects(dict(slots))
    for event in events:
        kind = event.get("event")
        if kind == "slot" and isinstance(event.get("name"), str):
            effects.slots[event["name"]] = event.get("value")
        elif kind in ("restart", "reset_slots"):
            effects.slots = {}
            effects.restarted = effects.restarted or kind == "restart"
        elif kind == "active_loop":
            effects.slots[ACTIVE_LOOP] = event.get("name") or None
        elif kind == "pause":
            effects.handoff = True
        elif kind == "followup" and isinstance(event.get("name"), str):
            if event["name"] in HANDOFF_ACTIONS:
                effects.handoff = True
            else:
                effects.followup = event["name"]
        elif kind not in _IGNORED_EVENTS:
            log.info("custom actions: event %r is not supported and was ignored", kind)
    return effects


def replies_from(responses: Sequence[Mapping[str, Any]], language: str, default: str) -> list[OutgoingReply]:
    """Turn dispatcher.utter_message() calls into replies, in the customer's language when several are given.

    A response may name its language (`utter_message(text=..., language="ru")`) or carry a text per
    language (`text={"en": ..., "ru": ...}`); untagged responses are always kept.
    """
    tags = {str(r.get("language")) for r in responses if r.get("language")}
    wanted = language if language in tags else default if default in tags else None
    replies = []
    for response in responses:
        tag = response.get("language")
        if tag and wanted is not None and tag != wanted:
            continue
        reply = _reply(response, language, default)
        if reply is not None:
            replies.append(reply)
    return replies


def _reply(response: Mapping[str, Any], language: str, default: str) -> OutgoingReply | None:
    text = _text(response.get("text"), language, default)
    named = response.get("response") or response.get("template")
    if not text and isinstance(named, str):  # a Rasa response name: utter_greet -> our "greet" phrase
        key = named.removeprefix("utter_")
        text = phrase(key, language) if key in PHRASES else ""
        if not text:
            log.warning("custom actions: response %r is not one supportbot knows; not sent", named)
    buttons = tuple(
        Button(
            str(b.get("title") or b.get("payload")), _button_payload(str(b.get("payload") or b.get("title")))
        )
        for b in response.get("buttons") or []
        if isinstance(b, Mapping) and (b.get("title") or b.get("payload"))
    )
    attachments: list[Attachment] = []
    if isinstance(response.get("image"), str) and response["image"]:
        attachments.append(Attachment("photo", data={"url": response["image"]}))
    if isinstance(response.get("attachment"), str) and response["attachment"]:
        attachments.append(Attachment("document", data={"url": response["attachment"]}))
    if not text and not buttons and not attachments:
        return None
    return OutgoingReply(text or "", buttons, tuple(attachments))


def _text(value: Any, language: str, default: str) -> str:
    if isinstance(value, Mapping):  # a text per language
        chosen = value.get(language) or value.get(default) or next(iter(value.values()), "")
        return str(chosen or "")
    return str(value) if value else ""


def _button_payload(payload: str) -> str:
    """Keep the engine's own payloads; mark an action's so its press comes back to the actions."""
    if payload in OWN_PAYLOADS or payload.startswith("entry:"):
        return payload
    return f"{ACTION_PAYLOAD}{payload}"


def failure_reply(answer: str | None, language: str) -> OutgoingReply:
    """Return what the customer reads when an action failed and its policy is `reply`."""
    text = answer or phrase("action_failed", language)
    return OutgoingReply(text, (Button(phrase("offer_human", language), "human"),))

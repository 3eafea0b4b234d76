"""The rasa-sdk action call supportbot sends: tracker (sender, latest message, slots, events) and domain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rasa_sdk.events import ActionExecuted, BotUttered, UserUttered
from rasa_sdk.interfaces import ACTION_LISTEN_NAME as ACTION_LISTEN
from rasa_sdk.version import __version__ as RASA_SDK_VERSION

from bot.nlu.normalize import find_entities
from bot.nlu.policy import Decision
from bot.storage.models import Conversation, Customer, Message

ENTITY_TYPES = ("order_number", "phone", "email")  # what find_entities extracts
CHANNEL_SLOTS = ("language", "channel")  # always the current message's, whatever an action set


def sender_id(channel: str, external_id: str) -> str:
    """Return the tracker's sender_id: stable per customer and channel."""
    return f"{channel}:{external_id}"


def tracker_slots(customer: Customer, conversation: Conversation, language: str) -> dict[str, Any]:
    """Return the slots an action sees: the customer's profile, then what earlier actions set."""
    builtin: dict[str, Any] = {
        "customer_name": customer.display_name,
        "phone": customer.phone,
        "username": customer.username,
    }
    stored = {k: v for k, v in (conversation.slots or {}).items() if not k.startswith("_")}
    return {**builtin, **stored, "language": language, "channel": conversation.channel}


def latest_message(
    text: str, label: str, decision: Decision | None, channel: str, language: str
) -> dict[str, Any]:
    """Return Rasa's parse data for the message that triggered the action (`label`: entry or intent)."""
    confidence = round(decision.score, 4) if decision is not None and decision.label == label else 1.0
    ranking = [
        {"name": c.label, "confidence": round(c.score, 4), "kind": c.kind}
        for c in (decision.candidates if decision is not None else ())[:10]
    ]
    return {
        "text": text,
        "intent": {"name": label, "confidence": confidence},
        "intent_ranking": ranking or [{"name": label, "confidence": confidence}],
        "entities": find_entities(text),
        "metadata": {"channel": channel, "language": language},
    }


def conversation_events(transcript: Sequence[Message], channel: str, limit: int) -> list[dict[str, Any]]:
    """Return the last `limit` user and bot (or agent) turns as Rasa events, oldest first."""
    events: list[dict[str, Any]] = []
    for message in list(transcript)[-limit:] if limit else []:
        at = message.created_at.timestamp() if message.created_at else None
        if message.direction == "in":
            decision = message.decision or {}
            parse_data = {
                "text": message.text,
                "intent": {"name": decision.get("label"), "confidence": decision.get("score")},
                "entities": find_entities(message.text),
            }
            events.append(ActionExecuted(ACTION_LISTEN, timestamp=at))
            events.append(
                {**UserUttered(message.text, parse_data, at, channel), "message_id": str(message.id)}
            )
        else:
            data = {"buttons": message.buttons or []}
            events.append(BotUttered(message.text, data, {"sender": message.sender}, at))
    return events


def domain(actions: Iterable[str], intents: Iterable[str], slots: Iterable[str]) -> dict[str, Any]:
    """Return a Rasa domain describing what supportbot knows: labels as intents, entities, slots."""
    return {
        "version": "3.1",
        "intents": sorted(set(intents)),
        "entities": list(ENTITY_TYPES),
        "slots": {
            name: {"type": "any", "influence_conversation": False, "mappings": [{"type": "custom"}]}
            for name in sorted(set(slots))
        },
        "responses": {},
        "actions": sorted(set(actions)),
        "forms": {},
        "session_config": {"session_expiration_time": 0, "carry_over_slots_to_new_session": True},
    }


def action_call(
    name: str,
    sender: str,
    slots: Mapping[str, Any],
    latest: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    domain_dict: Mapping[str, Any],
    active_loop: str | None = None,
) -> dict[str, Any]:
    """Return the webhook request rasa-sdk's ActionExecutor.run reads (the same dict in-process)."""
    return {
        "next_action": name,
        "sender_id": sender,
        "tracker": {
            "sender_id": sender,
            "slots": dict(slots),
            "latest_message": dict(latest),
            "latest_event_time": events[-1].get("timestamp") if events else None,
            "latest_input_channel": (latest.get("metadata") or {}).get("channel"),
            "events": [dict(e) for e in events],
            "paused": False,
            "followup_action": None,
            "active_loop": {"name": active_loop} if active_loop else {},
            "latest_action_name": ACTION_LISTEN,
        },
        "domain": dict(domain_dict),
        "version": RASA_SDK_VERSION,  # rasa-sdk warns when the caller's major.minor differs from its own
    }


def followup_call(
    call: Mapping[str, Any],
    name: str,
    slots: Mapping[str, Any],
    result_events: Sequence[Mapping[str, Any]],
    utterances: Sequence[str],
) -> dict[str, Any]:
    """Return the call for the next action in a FollowupAction chain: slots and what was said added."""
    previous = call["next_action"]
    events = [*call["tracker"]["events"], ActionExecuted(previous)]
    events.extend(dict(e) for e in result_events if e.get("event") == "slot")
    events.extend(BotUttered(text, {}, {}) for text in utterances)
    tracker = {**call["tracker"], "slots": dict(slots), "events": events, "latest_action_name": previous}
    return {**call, "next_action": name, "tracker": tracker}

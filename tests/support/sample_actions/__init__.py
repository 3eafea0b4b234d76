"""Custom actions for the tests, run in-process and by a real `python -m rasa_sdk` server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, FollowupAction, Restarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.order_status import ActionOrderStatus  # noqa: F401 - the demo KB's order_status names it

Events = list[dict[str, Any]]


class ShowTracker(Action):
    """Say what the tracker holds, as JSON, so a test can read it from the reply."""

    def name(self) -> str:
        return "action_show_tracker"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        seen = {
            "sender_id": tracker.sender_id,
            "slots": tracker.slots,
            "text": tracker.latest_message.get("text"),
            "intent": tracker.latest_message.get("intent"),
            "ranking": [i["name"] for i in tracker.latest_message.get("intent_ranking", [])],
            "entities": {e["entity"]: e["value"] for e in tracker.latest_message.get("entities", [])},
            "events": [(e["event"], e.get("text")) for e in tracker.events if e["event"] in ("user", "bot")],
            "channel": tracker.get_latest_input_channel(),
            "active_loop": tracker.active_loop_name,
            "domain_actions": domain.get("actions"),
        }
        dispatcher.utter_message(text=json.dumps(seen, ensure_ascii=False))
        return []


class Remember(Action):
    def name(self) -> str:
        return "action_remember"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        number = next(tracker.get_latest_entity_values("order_number"), "none")
        dispatcher.utter_message(text=f"Noted: {number}")
        return [SlotSet("favourite_order", number)]


class Pause(Action):
    def name(self) -> str:
        return "action_pause"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        dispatcher.utter_message(text="This needs a colleague: refund 7731 is under review.")
        return [ConversationPaused()]


class FollowupHandoff(Action):
    def name(self) -> str:
        return "action_followup_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        dispatcher.utter_message(text="Passing you on.")
        return [FollowupAction("action_handoff")]


class Chain(Action):
    def name(self) -> str:
        return "action_chain"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        dispatcher.utter_message(text="first")
        return [SlotSet("step", "one"), FollowupAction("action_show_tracker")]


class Explode(Action):
    def name(self) -> str:
        return "action_explode"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        raise RuntimeError("the shop's database is on fire")


class Sleep(Action):
    def name(self) -> str:
        return "action_sleep"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        await asyncio.sleep(30)
        return []


class Languages(Action):
    """Say the same thing in two languages, with buttons and an image: the customer gets one."""

    def name(self) -> str:
        return "action_languages"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        dispatcher.utter_message(text="Your refund is on its way.", language="en")
        dispatcher.utter_message(text="Возврат уже в пути.", language="ru")
        buttons = [
            {"title": "Show tracker", "payload": "/action_show_tracker"},
            {"title": "where is my order 12345", "payload": "where is my order 12345"},
            {"title": "Person", "payload": "human"},
        ]
        dispatcher.utter_message(
            text={"en": "Anything else?", "ru": "Что-нибудь ещё?"},  # type: ignore[arg-type]
            buttons=buttons,
            image="https://shop.example/refund.png",
        )
        return []


class Restart(Action):
    def name(self) -> str:
        return "action_restart"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        dispatcher.utter_message(text="Starting over.")
        return [Restarted()]


class Silent(Action):
    def name(self) -> str:
        return "action_silent"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        return []

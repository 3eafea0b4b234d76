"""supportbot for a Rasa assistant: two rasa-sdk actions its action server imports.

    # actions/actions.py of the Rasa project (the action server finds the classes when they are imported)
    from bot.integrations.rasa import ActionSupportbotFaq, ActionSupportbotHandoff  # noqa: F401

`action_supportbot_faq` answers the latest message from supportbot's knowledge base, in the tracker's
language; `action_supportbot_handoff` puts the conversation in supportbot's live-agent queue with the
tracker's transcript. Both call supportbot's /api/v1/rasa at SUPPORTBOT_URL with SUPPORTBOT_RASA_TOKEN
(this module runs in the Rasa action server's process, whose configuration is its environment).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx
from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.phrases import phrase

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8080"
FALLBACK_ACTION = "action_default_fallback"  # Rasa's own, in every assistant
_TIMEOUT_SECONDS = 10.0


class SupportbotClient:
    """What both actions share: where supportbot is, and one authorised POST.

    Not an Action itself: rasa-sdk registers every Action subclass it sees, and this one has no name.
    """

    url: str | None = None  # None: SUPPORTBOT_URL, else http://127.0.0.1:8080
    token: str | None = None  # None: SUPPORTBOT_RASA_TOKEN (supportbot's rasa.api_token)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to supportbot's /api/v1/rasa/`path`; raise httpx.HTTPError (or ValueError) on failure."""
        base = (self.url or os.environ.get("SUPPORTBOT_URL") or DEFAULT_URL).rstrip("/")
        token = self.token or os.environ.get("SUPPORTBOT_RASA_TOKEN", "")
        async with httpx.AsyncClient(timeout=_TIMEOUT_SECONDS) as client:
            response = await client.post(
                f"{base}/api/v1/rasa/{path}", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            response.raise_for_status()
            answer = response.json()
        if not isinstance(answer, dict):
            raise ValueError(f"supportbot answered {type(answer).__name__}, not an object")
        return answer


def _language(tracker: Tracker) -> str | None:
    return tracker.get_slot("language") if "language" in tracker.slots else None


class ActionSupportbotFaq(SupportbotClient, Action):
    """Answer the latest message from supportbot's KB; Rasa's fallback when it has no confident answer."""

    def name(self) -> str:
        return "action_supportbot_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        text = tracker.latest_message.get("text") or ""
        try:
            answer = await self.post(
                "answer", {"text": text, "language": _language(tracker), "sender_id": tracker.sender_id}
            )
        except (httpx.HTTPError, ValueError) as exc:
            log.error("action_supportbot_faq: supportbot did not answer (%s); Rasa's fallback instead", exc)
            return [FollowupAction(FALLBACK_ACTION)]
        if not answer.get("answered"):
            return [FollowupAction(FALLBACK_ACTION)]
        dispatcher.utter_message(text=answer["text"])
        return (
            [SlotSet("supportbot_entry", answer.get("entry"))] if "supportbot_entry" in tracker.slots else []
        )


class ActionSupportbotHandoff(SupportbotClient, Action):
    """Queue the conversation for supportbot's agents, with the transcript; pause the assistant."""

    def name(self) -> str:
        return "action_supportbot_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        language = _language(tracker)
        name = tracker.get_slot("customer_name") if "customer_name" in tracker.slots else None
        body = {
            "sender_id": tracker.sender_id,
            "text": tracker.latest_message.get("text") or "",
            "language": language,
            "name": name,
            "transcript": transcript(tracker),
        }
        try:
            answer = await self.post("handoff", body)
        except (httpx.HTTPError, ValueError) as exc:
            log.error("action_supportbot_handoff: supportbot did not take the handoff (%s)", exc)
            dispatcher.utter_message(text=phrase("action_failed", language or "en"))
            return []
        if answer.get("text"):
            dispatcher.utter_message(text=answer["text"])
        return [ConversationPaused()]  # the agents answer now, not the assistant


def transcript(tracker: Tracker, limit: int = 50) -> list[dict[str, Any]]:
    """Return the tracker's user and bot turns (after the last restart) as supportbot's transcript."""
    turns = [
        {
            "sender": "customer" if event["event"] == "user" else "bot",
            "text": event.get("text") or "",
            "at": event.get("timestamp"),
        }
        for event in tracker.events_after_latest_restart()
        if event.get("event") in ("user", "bot") and event.get("text")
    ]
    return turns[-limit:]

"""The context card an agent sees on handoff, derived from the stored conversation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.storage.models import Conversation, Customer, Message


def build_context(
    conversation: Conversation, customer: Customer, transcript: Sequence[Message], reason: str
) -> dict[str, Any]:
    """Return the transcript, what the bot matched and answered, and the customer's profile."""
    matched = []
    answered = []
    for message in transcript:
        decision = message.decision or {}
        if message.direction == "in" and decision:
            matched.append(
                {
                    "message_id": message.id,
                    "text": message.text[:500],
                    "decision": decision.get("decision"),
                    "label": decision.get("label"),
                    "score": decision.get("score"),
                    "candidates": decision.get("candidates", [])[:3],
                }
            )
            if decision.get("decision") == "answer" and decision.get("kind") == "answer":
                answered.append(decision.get("label"))
    return {
        "reason": reason,
        "language": conversation.language,
        "customer": {
            "channel": customer.channel,
            "external_id": customer.external_id,
            "name": customer.display_name,
            "username": customer.username,
            "phone": customer.phone,
            "language": customer.language,
        },
        "transcript": [
            {
                "id": m.id,
                "direction": m.direction,
                "sender": m.sender,
                "text": m.text[:2000],
                "attachments": m.attachments,
                "at": m.created_at.isoformat() if m.created_at else None,
            }
            for m in transcript
        ],
        "matched": matched,
        "answered_entries": answered,
    }

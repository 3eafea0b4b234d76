"""How agents see a customer's id: the platform's id, unless that id is the customer's credential.

A web chat visitor id is the visitor's only key to their chat (whoever has it reads the chat and writes as
the visitor), so it never leaves the service towards agents: the agent API, the console and the event
stream show a stable reference instead, `visitor-` and 12 hex digits of a SHA-256 over the id. The id is a
random string of at least 16 characters, so the reference cannot be turned back into it; it stays the same
for the visitor's every conversation, so agents can still tell returning visitors apart. Telegram and
WhatsApp ids only address a chat (sending needs the bot's token), and are shown as they are.
"""

from __future__ import annotations

import hashlib

CREDENTIAL_CHANNELS = frozenset({"webchat"})  # channels whose customer id is the customer's credential
_DOMAIN = b"supportbot customer reference\x00"


def shown_customer_id(channel: str, external_id: str) -> str:
    """The customer's id as agents see it: a reference for credential channels, else the id itself."""
    if channel not in CREDENTIAL_CHANNELS:
        return external_id
    return "visitor-" + hashlib.sha256(_DOMAIN + external_id.encode("utf-8")).hexdigest()[:12]

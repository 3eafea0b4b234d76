"""A stand-in for Meta's Graph API `/{phone_number_id}/messages`, served on 127.0.0.1 in tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class Failure:
    """One canned error answer: HTTP status, Graph error code and extra headers."""

    status: int
    code: int = 131000
    message: str = "Something went wrong"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    """One request the stub received."""

    phone_number_id: str
    authorization: str | None
    body: dict[str, Any]
    answered: int


class GraphApiStub:
    """Records every call, answers like the Cloud API, validates WhatsApp's limits, fails on demand."""

    def __init__(self, access_token: str) -> None:
        self.access_token = access_token
        self.requests: list[Recorded] = []
        # Consumed one per request: a Failure answers with an error, None lets the request through.
        self.script: list[Failure | None] = []
        self._ids = itertools.count(1)
        self.app = FastAPI()
        self.app.add_api_route("/{version}/{phone_number_id}/messages", self._messages, methods=["POST"])
        self.app.add_api_route("/{version}/{phone_number_id}", self._phone_number, methods=["GET"])

    def reset(self) -> None:
        """Forget every request and canned failure; number wamids from 1 again."""
        self.requests.clear()
        self.script.clear()
        self._ids = itertools.count(1)

    def fail_next(self, *failures: Failure | None) -> None:
        self.script.extend(failures)

    @property
    def sends(self) -> list[dict[str, Any]]:
        """Return the message bodies that were accepted (not read receipts, not failures)."""
        return [r.body for r in self.requests if r.answered == 200 and "status" not in r.body]

    @property
    def reads(self) -> list[str]:
        """Return the wamids we were asked to mark as read."""
        return [r.body["message_id"] for r in self.requests if r.body.get("status") == "read"]

    async def _phone_number(self, version: str, phone_number_id: str, request: Request) -> JSONResponse:
        """GET /{phone_number_id}: the business number (what `supportbot doctor` reads)."""
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            error = {"message": "Invalid OAuth access token - Cannot parse access token", "code": 190}
            return JSONResponse({"error": error}, status_code=401)
        return JSONResponse({"display_phone_number": "+48 500 000 000", "id": phone_number_id})

    async def _messages(self, version: str, phone_number_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        authorization = request.headers.get("authorization")
        failure = self.script.pop(0) if self.script else None
        if authorization != f"Bearer {self.access_token}":
            failure = Failure(401, 190, "Invalid OAuth access token - Cannot parse access token")
        elif failure is None:
            problem = _violation(body)
            if problem:
                failure = Failure(400, 131009, f"(#131009) Parameter value is not valid: {problem}")
        if failure is not None:
            self.requests.append(Recorded(phone_number_id, authorization, body, failure.status))
            error = {
                "message": failure.message,
                "type": "OAuthException",
                "code": failure.code,
                "error_data": {"messaging_product": "whatsapp", "details": failure.message},
                "fbtrace_id": "AbCdEfGh",
            }
            return JSONResponse({"error": error}, status_code=failure.status, headers=failure.headers)
        self.requests.append(Recorded(phone_number_id, authorization, body, 200))
        if body.get("status") == "read":
            return JSONResponse({"success": True})
        wamid = f"wamid.HBgLNDg2MDAxMDAyMDAVAgARGBI{next(self._ids):06d}"
        to = body.get("to")
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid}],
            }
        )


def _violation(body: dict[str, Any]) -> str | None:
    """Return what the real Cloud API would reject in this body (the limits we must respect)."""
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if body.get("status") == "read":
        return None if body.get("message_id") else "message_id is required"
    if not body.get("to"):
        return "to is required"
    kind = body.get("type")
    if kind == "text":
        text = body["text"]["body"]
        return None if 0 < len(text) <= 4096 else f"text body length {len(text)}"
    if kind == "interactive":
        interactive = body["interactive"]
        text = interactive["body"]["text"]
        if not 0 < len(text) <= 1024:
            return f"interactive body length {len(text)}"
        action = interactive["action"]
        if interactive["type"] == "button":
            titles = [b["reply"]["title"] for b in action["buttons"]]
            if not 1 <= len(titles) <= 3 or any(not 0 < len(t) <= 20 for t in titles):
                return f"buttons {titles}"
            if len(set(titles)) != len(titles):
                return "button titles must be unique"
            return None
        if interactive["type"] == "list":
            rows = [row for section in action["sections"] for row in section["rows"]]
            if not 1 <= len(rows) <= 10 or not 0 < len(action["button"]) <= 20:
                return f"{len(rows)} rows"
            for row in rows:
                if not 0 < len(row["title"]) <= 24 or len(row.get("description", "")) > 72:
                    return f"row {row}"
            return None
        return f"interactive type {interactive['type']}"
    if kind == "template":
        template = body["template"]
        return None if template.get("name") and template.get("language", {}).get("code") else "template"
    if kind in ("image", "document", "audio", "video", "sticker", "location", "contacts"):
        return None
    return f"unknown type {kind}"

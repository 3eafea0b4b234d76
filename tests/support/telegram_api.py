"""A stand-in for the Telegram Bot API (`/bot<token>/<method>`), served on 127.0.0.1 in tests.

Both real clients talk to it: aiogram (multipart form bodies) and python-telegram-bot (url-encoded
forms). It answers like api.telegram.org, checks the limits we must respect (4,096 characters after
HTML parsing, valid HTML, callback data of at most 64 bytes), fails on demand and records every call.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Shop Support", "username": "shop_support_bot"}
_ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
    "blockquote", "tg-emoji",
}  # fmt: skip
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)([^<>]*)>")
_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")
_SENDS = {"sendphoto", "senddocument", "sendvideo", "sendvoice", "sendaudio", "sendanimation", "sendsticker"}
_SENDS |= {"sendlocation", "sendcontact"}
_FORUM_CALLS = {
    "createforumtopic",
    "pinchatmessage",
    "editmessagetext",
    "closeforumtopic",
    "reopenforumtopic",
}
# Form-encoded requests carry objects as JSON strings (both clients do this).
_JSON_FIELDS = {"reply_markup", "allowed_updates", "entities", "caption_entities", "link_preview_options"}


@dataclass
class Failure:
    """One canned error answer, in the Bot API's error shape."""

    status: int
    description: str
    retry_after: int | None = None

    @classmethod
    def too_many_requests(cls, retry_after: int = 1) -> Failure:
        return cls(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    @classmethod
    def server_error(cls) -> Failure:
        return cls(500, "Internal Server Error")

    @classmethod
    def blocked(cls) -> Failure:
        return cls(403, "Forbidden: bot was blocked by the user")


@dataclass
class Call:
    """One request the stub received (parameters decoded: JSON fields parsed, numbers left as sent)."""

    method: str
    params: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)


class TelegramApiStub:
    """Serves getMe, getUpdates (fed by `push`), sendMessage and the other calls the bot makes."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.webhook: dict[str, Any] | None = None
        self._failures: dict[str, list[Failure | None]] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(500_000_001)
        self._message_ids = itertools.count(9001)
        # forum topics (the agent desk): thread id -> name; deleted ones answer "message thread not found"
        self.topics: dict[int, str] = {}
        self.deleted_topics: set[int] = set()
        self._thread_ids = itertools.count(101)
        self.topic_delay = 0.0  # seconds createForumTopic takes (to make two creators overlap)
        self._news = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self.url = ""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self.app = app

    # --- test controls ---------------------------------------------------------------------------

    async def start(self, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        self._closing = True
        self._news.set()  # wake long polls so the server can stop at once
        if self._runner is not None:
            await self._runner.cleanup()

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates; it gets a fresh update_id, which is returned."""
        update = {**update, "update_id": next(self._update_ids)}
        self._updates.append(update)
        self._news.set()
        return int(update["update_id"])

    def fail_next(self, method: str, *failures: Failure | None) -> None:
        """Answer the next calls of `method` with these errors, one each (None: answer normally)."""
        self._failures.setdefault(method.lower(), []).extend(failures)

    def ok_calls(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method.lower() and c.status == 200]

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Return accepted sendMessage calls (with `visible`, the text as the customer sees it)."""
        return [
            p for p in self.ok_calls("sendMessage") if chat_id is None or str(p["chat_id"]) == str(chat_id)
        ]

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    async def wait_for(self, method: str, count: int = 1, within: float = 15.0) -> list[dict[str, Any]]:
        """Wait until `count` accepted calls of `method` were made; return them."""
        deadline = time.monotonic() + within
        while len(calls := self.ok_calls(method)) < count:
            if time.monotonic() > deadline:
                seen = [(c.method, c.status) for c in self.calls]
                raise AssertionError(f"expected {count} {method} call(s) within {within}s; saw {seen}")
            await asyncio.sleep(0.02)
        return calls

    # --- the API ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        params = await _params(request)
        if request.match_info["token"] != self.token:
            return self._answer(
                method, params, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            )
        failure = self._failures[method].pop(0) if self._failures.get(method) else None
        if failure is not None:
            error: dict[str, Any] = {
                "ok": False,
                "error_code": failure.status,
                "description": failure.description,
            }
            if failure.retry_after is not None:
                error["parameters"] = {"retry_after": failure.retry_after}
            return self._answer(method, params, failure.status, error)
        if method == "getupdates":
            if self.webhook is not None:
                description = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
                return self._answer(
                    method, params, 409, {"ok": False, "error_code": 409, "description": description}
                )
            return self._answer(method, params, 200, {"ok": True, "result": await self._get_updates(params)})
        if method == "createforumtopic" and self.topic_delay:
            await asyncio.sleep(self.topic_delay)
        try:
            result = self._result(method, params)
        except _BadRequest as exc:
            return self._answer(
                method, params, 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}
            )
        if result is None:
            return self._answer(
                method, params, 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            )
        return self._answer(method, params, 200, {"ok": True, "result": result})

    def _answer(self, method: str, params: dict[str, Any], status: int, body: dict[str, Any]) -> web.Response:
        self.calls.append(Call(method, params, status))
        return web.json_response(body, status=status)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        if offset:  # everything before the offset is confirmed: Telegram forgets it
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while not self._updates and not self._closing and time.monotonic() < deadline:
            self._news.clear()
            try:
                await asyncio.wait_for(self._news.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        limit = int(params.get("limit") or 100)
        return self._updates[:limit]

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getme":
            return {
                **BOT_USER,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if method == "setwebhook":
            if not str(params.get("url", "")).startswith("https://"):
                raise _BadRequest("bad webhook: An HTTPS URL must be provided for webhook")
            self.webhook = params
            return True
        if method == "deletewebhook":
            self.webhook = None
            return True
        if method == "getwebhookinfo":
            return {
                "url": (self.webhook or {}).get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": 0,
            }
        if method in ("sendchataction", "answercallbackquery", "close", "logout"):
            _require(params, "callback_query_id" if method == "answercallbackquery" else "chat_id", method)
            return True
        if method in _FORUM_CALLS:
            return self._forum(method, params)
        if method == "sendmessage":
            _require(params, "chat_id", method)
            params["visible"] = _visible(str(params.get("text", "")), params.get("parse_mode"))
            if not params["visible"].strip():
                raise _BadRequest("message text is empty")
            if _utf16(params["visible"]) > 4096:
                raise _BadRequest("message is too long")
            _check_markup(params.get("reply_markup"))
            self._check_thread(params)
            return self._message(params, text=params["visible"])
        if method == "editmessagereplymarkup":
            _require(params, "chat_id", method)
            _check_markup(params.get("reply_markup"))
            return self._message(params, message_id=int(params["message_id"]), text="(edited)")
        if method in _SENDS:
            _require(params, "chat_id", method)
            self._check_thread(params)
            if "caption" in params:
                params["visible"] = _visible(str(params["caption"]), params.get("parse_mode"))
            return self._message(params)
        return None

    def _forum(self, method: str, params: dict[str, Any]) -> Any:
        """createForumTopic, pinChatMessage, editMessageText, closeForumTopic, reopenForumTopic."""
        _require(params, "chat_id", method)
        if method == "createforumtopic":
            name = str(params.get("name") or "")
            if not 1 <= len(name) <= 128:
                raise _BadRequest("TOPIC_NAME_INVALID")
            thread_id = next(self._thread_ids)
            self.topics[thread_id] = name
            return {"message_thread_id": thread_id, "name": name, "icon_color": 7322096}
        if method == "editmessagetext":
            params["visible"] = _visible(str(params.get("text", "")), params.get("parse_mode"))
            return self._message(params, message_id=int(params["message_id"]), text=params["visible"])
        if method in ("closeforumtopic", "reopenforumtopic"):
            self._check_thread(params)
        return True

    def _check_thread(self, params: dict[str, Any]) -> None:
        thread = params.get("message_thread_id")
        if thread not in (None, "") and int(thread) in self.deleted_topics:
            raise _BadRequest("message thread not found")

    def in_topic(self, thread_id: int) -> list[dict[str, Any]]:
        """Accepted sendMessage / sendPhoto / sendDocument calls into one forum topic, in order."""
        return [
            c.params
            for c in self.calls
            if c.status == 200
            and c.method in ("sendmessage", "sendphoto", "senddocument")
            and str(c.params.get("message_thread_id")) == str(thread_id)
        ]

    def _message(
        self, params: dict[str, Any], message_id: int | None = None, text: str | None = None
    ) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": "Customer"}
        if chat_id < 0:
            chat = {"id": chat_id, "type": "supergroup", "title": "Support desk", "is_forum": True}
        message: dict[str, Any] = {
            "message_id": message_id or next(self._message_ids),
            "from": BOT_USER,
            "chat": chat,
            "date": int(time.time()),
        }
        if params.get("message_thread_id") not in (None, ""):
            message.update(message_thread_id=int(params["message_thread_id"]), is_topic_message=True)
        if text is not None:
            message["text"] = text
        params["message_id"] = message["message_id"]
        return message


class _BadRequest(Exception):
    pass


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        params.update(await request.json())
    elif request.can_read_body:
        for key, value in (await request.post()).items():
            params[key] = value if isinstance(value, str) else "<file>"
    for key, value in params.items():
        if key in _JSON_FIELDS and isinstance(value, str):
            try:
                params[key] = json.loads(value)
            except ValueError:
                pass
    return params


def _require(params: dict[str, Any], key: str, method: str) -> None:
    if params.get(key) in (None, ""):
        raise _BadRequest(f"{key} is required for {method}")


def _visible(text: str, parse_mode: Any) -> str:
    """Return the text the customer sees; raise like Telegram on HTML it cannot parse."""
    if str(parse_mode or "").upper() != "HTML":
        return text
    for match in _TAG.finditer(text):
        if match.group(2).lower() not in _ALLOWED_TAGS:
            raise _BadRequest(
                f'can\'t parse entities: Unsupported start tag "{match.group(2)}" at byte offset {match.start()}'
            )
    rest = _TAG.sub("", text)
    if "<" in rest or ">" in rest:
        raise _BadRequest("can't parse entities: unescaped < or > in the text")
    bad = _ENTITY.search(rest)
    if bad:
        raise _BadRequest(f"can't parse entities: unsupported entity at byte offset {bad.start()}")
    return html.unescape(rest)


def _check_markup(markup: Any) -> None:
    if markup in (None, ""):
        return
    if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
        raise _BadRequest("reply markup must be an InlineKeyboardMarkup object")
    for row in markup["inline_keyboard"]:
        for button in row:
            if not str(button.get("text", "")).strip():
                raise _BadRequest("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise _BadRequest("BUTTON_DATA_INVALID")


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2

"""The published OpenAPI document tells the truth: every success answer of every route has a schema, and
real requests over HTTP (successes, and no token, wrong role, unknown id, conflict, bad visitor id, rate
limit, refused webhooks...) get answers whose status is documented for their operation, in a documented
content type, with a body of the documented schema."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from bot.adapters import telegram, webchat_payloads, webhook
from bot.adapters.telegram import TelegramChannel
from bot.adapters.webchat import WebchatChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.states import State
from bot.storage.database import Database
from bot.storage.repositories import ConversationRepository
from bot.web.app import create_app
from bot.web.errors import ApiError, InvalidRequest
from tests.support.channel import incoming
from tests.support.handoff import PASSWORD, Api, desk_of, http_client, make_agent
from tests.support.paths import REPO
from tests.support.server import LiveServer

# Described success answers test_success_answers_fit_their_schemas cannot get without the model or a
# channel with templates; tests/insights/ and tests/handoff/test_api.py get them (the service validates
# every answer against its model there too).
NOT_ANSWERED_HERE = {
    # the web chat's: its answers are validated against these models in test_error_answers_... (GET) and
    # tests/adapters/test_webchat.py (POST, which needs the model)
    ("GET", "/api/v1/webchat/messages"),
    ("POST", "/api/v1/webchat/messages"),
    ("GET", "/api/v1/webchat/{visitor_id}/messages"),
    ("POST", "/api/v1/webchat/{visitor_id}/messages"),
    ("POST", "/api/v1/conversations/{conversation_id}/template"),
    ("GET", "/api/v1/answers"),
    # the suggestions need the model: tests/learning/test_suggestions.py gets their answers
    ("GET", "/api/v1/suggestions"),
    ("POST", "/api/v1/suggestions/{suggestion_id}/accept"),
    ("POST", "/api/v1/suggestions/{suggestion_id}/dismiss"),
    ("POST", "/api/v1/kb/try"),  # tests/content/test_workspace_api.py
}
SECRET = "openapi-test-secret"
APP_SECRET = "openapi-app-secret"
# The component schemas a documented answer may name, and the models that read them (FastAPI's own
# HTTPValidationError has the shape of our InvalidRequest); models_of adds the routes' own.
MODELS: dict[str, type[BaseModel]] = {
    "HTTPValidationError": InvalidRequest,
} | {
    model.__name__: model
    for model in (
        ApiError,
        InvalidRequest,
        telegram.WebhookAnswer,
        webhook.WebhookTaken,
        webhook.WebhookRefused,
        webchat_payloads.WebchatPosted,
        webchat_payloads.WebchatChat,
    )
}


@pytest.fixture
async def service(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[SupportBot]:
    """Every channel with a web route (web chat, Telegram webhook, WhatsApp), a migrated SQLite database,
    and no model: nothing here needs one (the routes that do answer 503, as documented)."""
    shutil.copytree(REPO / "kb", tmp_path / "kb")
    shutil.copytree(REPO / "intents", tmp_path / "intents")
    settings = make_settings(
        kb={"path": str(tmp_path / "kb")},
        intents={"path": str(tmp_path / "intents")},
        handoff={"login_max_failures": 2},
        channels={
            "webchat": {"rate_limit_per_minute": 1},
            "telegram": {
                "token": "7000000001:AAH-stand-in-token_for_tests",
                "api_base": "http://127.0.0.1:9",
                "mode": "webhook",
                "webhook_url": "https://support.example/webhooks/telegram",
                "webhook_secret": SECRET,
            },
            "whatsapp": {
                "access_token": "token",
                "phone_number_id": "100",
                "app_secret": APP_SECRET,
                "verify_token": "verify",
                "graph_api_base": "http://127.0.0.1:9",
            },
        },
    )
    database = Database(settings.database_url)
    await database.migrate()
    channels = settings.channels
    tg, wa = TelegramChannel(channels.telegram), WhatsAppChannel(channels.whatsapp)
    bot = SupportBot(settings, channels=[WebchatChannel(channels.webchat), tg, wa], database=database)
    yield bot
    await desk_of(bot).close()
    await tg.stop()
    await wa.stop()
    await bot.limiter.close()
    await database.close()
    bot.executor.shutdown(wait=False)


@dataclass
class Answer:
    method: str
    path: str
    response: httpx.Response


def operation_of(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The documented operation a request lands on (literal segments win over parameters)."""
    matches = []
    for template, operations in document["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            matches.append((template.count("{"), operations[method.lower()]))
    assert matches, f"{method} {path} is not in the OpenAPI document"
    return min(matches, key=lambda match: match[0])[1]


def models_of(document: dict[str, Any]) -> dict[str, type[BaseModel]]:
    """The models behind the document's component schemas: ours by class name, with MODELS' names."""
    ours: dict[str, list[type[BaseModel]]] = {}
    classes: list[type[BaseModel]] = [BaseModel]
    while classes:
        for model in classes.pop().__subclasses__():
            classes.append(model)
            if model.__module__.startswith("bot."):
                ours.setdefault(model.__name__, []).append(model)
    named = document["components"]["schemas"]
    twice = {name: models for name, models in ours.items() if name in named and len(models) > 1}
    assert not twice, f"two models publish one schema name: {twice}"
    return {name: models[0] for name, models in ours.items() if name in named} | MODELS


def operation_path(document: dict[str, Any], method: str, path: str) -> str:
    """The documented path template a request lands on."""
    operation = operation_of(document, method, path)
    return next(
        template for template, operations in document["paths"].items() if operation in operations.values()
    )


def check_documented(document: dict[str, Any], answer: Answer, models: dict[str, type[BaseModel]]) -> None:
    """Assert the answer's status, content type, headers and body are what its operation documents."""
    method, path, response = answer.method, answer.path, answer.response
    where = f"{method} {path} -> {response.status_code} {response.text[:200]}"
    documented = operation_of(document, method, path)["responses"].get(str(response.status_code))
    assert documented is not None, f"status not documented: {where}"
    for header in documented.get("headers", {}):
        assert header in response.headers, f"{header} documented but not sent: {where}"
    if not response.content:
        return
    content_type = response.headers["content-type"].split(";")[0]
    assert content_type in documented.get("content", {}), f"{content_type} not documented: {where}"
    schema = documented["content"][content_type]["schema"]
    if content_type != "application/json":  # a webhook's challenge, a CSV file
        assert schema == {"type": "string"}, where
        return
    body = response.json()
    if schema.get("type") == "array":  # a list of one model: each item is checked against it
        schema, bodies = schema["items"], body
    else:
        bodies = [body]
    names = [option["$ref"].rsplit("/", 1)[1] for option in schema.get("anyOf", [schema]) if "$ref" in option]
    assert names, f"an answer without a documented schema: {where}"
    problems = []
    for name in names:
        try:
            for item in bodies:
                models[name].model_validate(item, strict=True)
            return
        except ValidationError as exc:
            problems.append(f"{name}: {exc}")
    raise AssertionError(f"the body fits no documented schema ({', '.join(names)}): {where}\n{problems}")


def described(content_type: str, schema: dict[str, Any]) -> bool:
    """A JSON body is a named schema (or a list of one); any other body is a string."""
    if content_type != "application/json":
        return schema == {"type": "string"}
    if schema.get("type") == "array":
        schema = schema.get("items", {})
    return all("$ref" in option for option in schema.get("anyOf", [schema]))


async def queued_conversation(service: SupportBot) -> int:
    """A customer asked for a person (what the engine does): the conversation waits in the queue."""
    desk = desk_of(service)
    async with desk.transaction() as session:
        repo = ConversationRepository(session)
        _, conversation = await repo.customer_and_conversation(incoming("a person, please", customer="c1"))
        await repo.transition(conversation, State.WAITING, "bot", "human_request")
        await desk.enqueue(session, conversation, {}, "human_request")
        return conversation.id


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


async def test_error_answers_are_documented_with_their_bodies(service: SupportBot) -> None:
    database = service.database
    await make_agent(database, "anna", status="online")
    await make_agent(database, "bob")
    await make_agent(database, "sup", role="supervisor")
    await make_agent(database, "root", role="admin")
    await make_agent(database, "ed", role="editor")
    conversation_id = await queued_conversation(service)

    app = create_app(service, start=False)
    document = app.openapi()
    answers: list[Answer] = []
    async with LiveServer(app) as server, http_client(server.url) as client:

        async def call(method: str, path: str, api: Api | None = None, **kwargs: Any) -> httpx.Response:
            headers = {**(api.headers if api else {}), **kwargs.pop("headers", {})}
            response = await client.request(method, path, headers=headers, **kwargs)
            answers.append(Answer(method, path, response))
            return response

        async def expect(status: int, method: str, path: str, api: Api | None = None, **kwargs: Any) -> None:
            response = await call(method, path, api, **kwargs)
            assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"

        anna, bob = await Api.login(client, "anna"), await Api.login(client, "bob")
        sup, root = await Api.login(client, "sup"), await Api.login(client, "root")
        ed = await Api.login(client, "ed")
        stranger = Api(client, "not-a-token")
        mine, unknown = f"/api/v1/conversations/{conversation_id}", "/api/v1/conversations/999999"

        # the agent API
        await expect(401, "GET", "/api/v1/queue")
        await expect(401, "GET", "/api/v1/queue", stranger)
        await expect(401, "GET", "/api/v1/events", params={"token": "x"})
        await expect(401, "POST", "/api/v1/auth/login", json={"login": "carl", "password": "nope"})
        await expect(401, "POST", "/api/v1/auth/login", json={"login": "carl", "password": "nope"})
        await expect(429, "POST", "/api/v1/auth/login", json={"login": "carl", "password": PASSWORD})
        await expect(422, "POST", "/api/v1/auth/login", json={"login": ""})
        await expect(403, "GET", "/api/v1/agents", bob)
        await expect(403, "GET", "/api/v1/stats", bob)
        await expect(403, "POST", "/api/v1/agents", sup, json={"login": "eve", "password": PASSWORD})
        await expect(409, "POST", "/api/v1/agents", root, json={"login": "bob", "password": PASSWORD})
        bad_language = {"login": "eve", "password": PASSWORD, "languages": ["not a language"]}
        await expect(422, "POST", "/api/v1/agents", root, json=bad_language)
        await expect(422, "POST", "/api/v1/agents", root, json={"login": "eve"})
        await expect(404, "PATCH", "/api/v1/agents/nobody", root, json={"name": "No One"})
        await expect(404, "PUT", "/api/v1/agents/nobody/status", sup, json={"status": "online"})
        await expect(404, "GET", unknown, anna)
        await expect(404, "POST", f"{unknown}/accept", anna)
        await expect(200, "POST", f"{mine}/accept", anna)
        await expect(409, "POST", f"{mine}/accept", bob)
        await expect(403, "GET", mine, bob)
        await expect(403, "GET", f"{mine}/history", bob)
        await expect(409, "POST", f"{mine}/messages", bob, json={"text": "hello"})  # not 403
        await expect(422, "POST", f"{mine}/messages", anna, json={"text": "   "})
        await expect(422, "POST", f"{mine}/notes", anna, json={"text": "  "})
        await expect(422, "POST", f"{mine}/transfer", anna, json={})
        await expect(404, "POST", f"{mine}/transfer", anna, json={"agent_login": "nobody"})
        await expect(409, "POST", f"{mine}/transfer", anna, json={"agent_login": "anna"})
        await expect(200, "POST", f"{mine}/resolve", anna, json={})
        await expect(409, "POST", f"{mine}/resolve", anna, json={})

        # the console's API
        await expect(401, "GET", "/api/v1/console/settings")
        await expect(404, "GET", "/api/v1/console/conversations/999999/suggestions", anna)
        await expect(403, "GET", f"/api/v1/console/conversations/{conversation_id}/suggestions", bob)

        # insights
        await expect(401, "GET", "/api/v1/misses")
        await expect(403, "GET", "/api/v1/misses", bob)
        await expect(401, "GET", "/api/v1/misses.csv")
        await expect(200, "GET", "/api/v1/misses.csv", sup)  # a CSV file, documented as such
        await expect(422, "GET", "/api/v1/misses.csv", sup, params={"days": 0})
        for path in ("/api/v1/answers", "/api/v1/answers.csv"):
            await expect(401, "GET", path)
            await expect(403, "GET", path, bob)
            await expect(422, "GET", path, sup, params={"days": 367})
            await expect(503, "GET", path, sup)  # the KB's entries come with the model
        # the knowledge workspace
        kb, entry = "/api/v1/kb", "/api/v1/kb/entries/delivery_time"
        await expect(403, "GET", f"{kb}/entries", anna)
        await expect(403, "GET", mine, ed)
        await expect(403, "GET", "/api/v1/queue", ed)
        await expect(403, "POST", "/api/v1/events/ticket", ed)
        await expect(503, "GET", f"{kb}/entries", ed, params={"meaning": "parcel"})  # no model here
        await expect(503, "POST", f"{kb}/try", ed, json={"text": "parcel"})
        await expect(404, "GET", f"{kb}/entries/no_such_entry", ed)
        current = (await client.get(entry, headers=ed.headers)).json()
        body = {k: current[k] for k in ("tags", "questions", "answer", "handoff", "action")}
        await expect(428, "PUT", entry, ed, json=body)
        await expect(412, "PUT", entry, ed, json=body, headers={"If-Match": '"0123"'})
        await expect(412, "DELETE", entry, ed, headers={"If-Match": '"0123"'})
        broken = {**body, "answer": {"en": "Only English now"}}
        await expect(422, "PUT", entry, ed, json=broken, headers={"If-Match": current["etag"]})
        await expect(409, "POST", f"{kb}/entries", ed, json={**body, "id": "delivery_time"})
        await expect(404, "POST", f"{entry}/revert", ed, json={"event_id": 999999})
        examples = {"examples": ["hello"]}
        await expect(428, "PUT", f"{kb}/intents/greet", ed, json=examples)
        await expect(412, "PUT", f"{kb}/intents/greet", ed, json=examples, headers={"If-Match": '"0123"'})
        await expect(404, "PUT", f"{kb}/intents/no_such_intent", ed, json=examples, headers={"If-Match": "*"})
        question = {"text": "How long does delivery take?", "language": "en"}
        await expect(404, "POST", "/api/v1/kb/entries/no_such_entry/questions", sup, json=question)
        await expect(409, "POST", "/api/v1/kb/entries/delivery_time/questions", sup, json=question)
        await expect(422, "POST", "/api/v1/kb/entries/delivery_time/questions", sup, json={"text": ""})

        # the web chat
        for method in ("GET", "POST"):
            await expect(422, method, "/api/v1/webchat/messages", json={"text": "hi"})
        await expect(422, "GET", "/api/v1/webchat/events")
        await expect(422, "POST", "/api/v1/webchat/abc/messages", json={"text": "hi"})
        visitor = {"X-Visitor-Id": "v-openapi-0123456789"}
        await expect(422, "POST", "/api/v1/webchat/messages", headers=visitor, json={"text": "x" * 8001})
        await expect(422, "POST", "/api/v1/webchat/messages", headers=visitor, json={"text": "  "})
        await expect(429, "POST", "/api/v1/webchat/messages", headers=visitor, json={"text": "  "})
        await expect(200, "GET", "/api/v1/webchat/messages", headers=visitor)
        await expect(200, "GET", "/api/v1/webchat/v-openapi-0123456789/messages", params={"after": 0})

        # the webhooks
        tg = "/webhooks/telegram"
        await expect(401, "POST", tg, json={"update_id": 1})
        secret = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        await expect(400, "POST", tg, headers=secret, content=b"{not json")
        await expect(400, "POST", tg, headers=secret, json=[1])
        await expect(200, "POST", tg, headers=secret, json={"update_id": 1})
        wa = "/webhooks/whatsapp"
        await expect(403, "GET", wa, params={"hub.mode": "subscribe", "hub.verify_token": "guess"})
        challenge = {"hub.mode": "subscribe", "hub.verify_token": "verify", "hub.challenge": "42"}
        await expect(200, "GET", wa, params=challenge)
        await expect(401, "POST", wa, json={})
        await expect(403, "POST", wa, json={}, headers={"X-Hub-Signature-256": "sha256=00"})
        for body in (b"{not json", b"[]"):
            await expect(400, "POST", wa, content=body, headers={"X-Hub-Signature-256": sign(body)})
        await expect(200, "POST", wa, content=b"{}", headers={"X-Hub-Signature-256": sign(b"{}")})
        served = (await client.get("/openapi.json")).json()

    # every answer the service gave is in the document: status, content type, headers, body
    models = models_of(document)
    for answer in answers:
        check_documented(document, answer, models)
    seen = {(a.response.status_code, a.response.json()["detail"]["code"]) for a in answers if _ours(a)}
    assert {401, 403, 404, 409, 422, 429, 503} <= {status for status, _ in seen}
    assert served == json.loads(json.dumps(document))  # what /openapi.json serves is that document


def _ours(answer: Answer) -> bool:
    try:
        ApiError.model_validate(answer.response.json())
    except (ValueError, ValidationError):
        return False
    return True


async def test_every_success_answer_has_a_schema(service: SupportBot) -> None:
    document = create_app(service, start=False).openapi()
    undescribed = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2") or status == "204":
                    continue
                content = response.get("content", {})
                assert content, f"{method.upper()} {path} -> {status}: no body documented"
                for content_type, media in content.items():
                    if content_type != "text/event-stream" and not described(
                        content_type, media.get("schema", {})
                    ):
                        undescribed.add((method.upper(), path))
    assert undescribed == set()


async def test_success_answers_fit_their_schemas(service: SupportBot) -> None:
    database = service.database
    await make_agent(database, "anna", status="online")
    await make_agent(database, "bob")
    await make_agent(database, "sup", role="supervisor")
    await make_agent(database, "root", role="admin")
    conversation_id = await queued_conversation(service)
    await desk_of(service).drain()  # assigned to anna, the one online
    app = create_app(service, start=False)
    document = app.openapi()
    answers: list[Answer] = []
    async with LiveServer(app) as server, http_client(server.url) as client:

        async def call(method: str, path: str, api: Api | None = None, **kwargs: Any) -> None:
            headers = {**(api.headers if api else {}), **kwargs.pop("headers", {})}
            response = await client.request(method, f"/api/v1{path}", headers=headers, **kwargs)
            assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
            answers.append(Answer(method, f"/api/v1{path}", response))

        await call("POST", "/auth/login", json={"login": "anna", "password": PASSWORD})
        anna, bob = await Api.login(client, "anna"), await Api.login(client, "bob")
        sup, root = await Api.login(client, "sup"), await Api.login(client, "root")
        mine = f"/conversations/{conversation_id}"
        await call("GET", "/agents/me", anna)
        await call("PUT", "/agents/me/status", bob, json={"status": "online"})
        await call("GET", "/agents", sup)
        await call("POST", "/agents", root, json={"login": "eve", "password": PASSWORD, "languages": ["pl"]})
        await call("PATCH", "/agents/eve", root, json={"name": "Eve", "capacity": 2})
        await call("PUT", "/agents/eve/status", sup, json={"status": "away"})
        await call("GET", "/queue", anna)
        await call("GET", "/conversations", sup)
        await call("GET", mine, anna)
        await call("GET", f"{mine}/history", anna)
        await call("POST", f"{mine}/accept", anna)
        await call("POST", f"{mine}/messages", anna, json={"text": "Hello, Anna here."})
        await call("POST", f"{mine}/notes", anna, json={"text": "Asked for a person at once."})
        await call("POST", f"{mine}/transfer", anna, json={"agent_login": "bob", "reason": "Polish"})
        await call("POST", f"{mine}/resolve", sup, json={"reason": "answered"})
        await call("POST", "/events/ticket", anna)
        await call("GET", "/console/settings", anna)
        await call("GET", f"/console/conversations/{conversation_id}/suggestions", anna)  # nothing asked yet
        await call("GET", "/console/unread", bob)
        await call("GET", "/console/agents", anna)
        await call("GET", "/stats", sup)
        await call("GET", "/misses", sup)
        await call("GET", "/flags", sup)
        await call("GET", "/kudos", sup)
        await call("POST", "/kb/entries/delivery_time/questions", sup, json={"text": "Do you ship to Mars?"})
        await call("POST", "/intents/oos/examples", sup, json={"text": "Will it rain in Paris tomorrow?"})
        listed = (await client.get("/api/v1/kb/entries", headers=sup.headers)).json()["entries"][0]
        await call("GET", "/kb/entries", sup, params={"q": "delivery", "tag": "delivery"})
        await call("GET", f"/kb/entries/{listed['id']}", sup)
        body = {k: listed[k] for k in ("tags", "questions", "answer", "handoff", "action")}
        edited = {**body, "title": "Edited in the workspace"}
        await call(
            "PUT", f"/kb/entries/{listed['id']}", sup, json=edited, headers={"If-Match": listed["etag"]}
        )
        await call(
            "POST",
            "/kb/entries",
            sup,
            json={**body, "id": "copy_of_first", "questions": {"en": ["Is this a copy?"]}},
        )
        await call("GET", f"/kb/entries/{listed['id']}/history", sup)
        [saved] = answers[-1].response.json()["events"]
        await call("POST", f"/kb/entries/{listed['id']}/revert", sup, json={"event_id": saved["id"]})
        await call("DELETE", "/kb/entries/copy_of_first", sup, headers={"If-Match": "*"})
        await call("GET", "/kb/intents", sup)
        [greet] = [i for i in answers[-1].response.json()["intents"] if i["name"] == "greet"]
        hiya = {"examples": [*greet["examples"], "hiya"]}
        await call("PUT", "/kb/intents/greet", sup, json=hiya, headers={"If-Match": greet["etag"]})
        health = await client.get("/healthz")  # 503 here: no model loaded
        answers.append(Answer("GET", "/healthz", health))

    models = models_of(document)
    for answer in answers:
        check_documented(document, answer, models)
    answered = {(a.method, operation_path(document, a.method, a.path)) for a in answers}
    expected = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/") or path == "/healthz"
        for method, operation in operations.items()
        if any(
            "application/json" in response.get("content", {})
            for status, response in operation["responses"].items()
            if status.startswith("2")
        )
    }
    assert expected - answered == NOT_ANSWERED_HERE


async def test_unknown_api_paths_and_methods_answer_in_the_api_shape(service: SupportBot) -> None:
    async with LiveServer(create_app(service, start=False)) as server, http_client(server.url) as client:
        missing = await client.get("/api/v1/no-such-thing")
        wrong_method = await client.delete("/api/v1/auth/login")
        elsewhere = await client.get("/no-such-page")
        described = await client.get("/docs")
    assert missing.status_code == 404
    assert ApiError.model_validate(missing.json()).detail.code == "not_found"
    assert "GET /api/v1/no-such-thing" in missing.json()["detail"]["message"]
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["allow"]
    assert ApiError.model_validate(wrong_method.json()).detail.code == "method_not_allowed"
    assert elsewhere.status_code == 404 and elsewhere.json() == {"detail": "Not Found"}  # not the API's
    assert described.status_code == 200  # where the 404 message points

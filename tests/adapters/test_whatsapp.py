"""The WhatsApp channel: signed webhooks over real HTTP, sends to a stand-in Graph API on 127.0.0.1."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from bot.adapters.base import DeliveryTarget, ensure_free_form_allowed
from bot.adapters.registry import enabled_channels
from bot.adapters.text_split import split_text
from bot.adapters.whatsapp import WhatsAppChannel
from bot.adapters.whatsapp_payloads import Ignored, StatusUpdate, parse_webhook
from bot.app import SupportBot
from bot.config import Settings, WhatsAppSettings
from bot.errors import ConfigError, OutsideMessagingWindow, SendError
from bot.messages import Button, IncomingMessage, OutgoingReply
from bot.nlu.encoders import E5Encoder
from bot.phrases import phrase
from bot.states import State
from bot.storage.database import Database
from bot.storage.models import Customer, Message
from bot.web.app import create_app
from tests.support.channel import RecordingChannel
from tests.support.graph_api import Failure, GraphApiStub
from tests.support.server import LiveServer, free_port
from tests.support.whatsapp import (
    ACCESS_TOKEN,
    CUSTOMER,
    CUSTOMER_NAME,
    FIXTURES,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WEBHOOK,
    Rig,
    fixture,
    sign,
    text_webhook,
    webhook,
    whatsapp_settings,
)

SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # the database plays no part


def every_fixture() -> list[Any]:
    return [
        pytest.param(path.stem, name, payload, id=f"{path.stem}-{name}")
        for path in sorted(FIXTURES.glob("*.json"))
        for name, payload in fixture(path.stem).items()
    ]


def status_webhook(wamid: str, status: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    example = "failed" if errors is not None else "delivered"
    payload = copy.deepcopy(fixture("message_status")[example])
    entry = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    entry.update(id=wamid, status=status, recipient_id=CUSTOMER)
    if errors is not None:
        entry["errors"] = errors
    return payload


def text_of(body: dict[str, Any]) -> str:
    """Return the text a customer sees in one Graph API message body."""
    if body["type"] == "text":
        return str(body["text"]["body"])
    return str(body["interactive"]["body"]["text"])


@pytest.fixture
async def rig(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    graph_api: tuple[GraphApiStub, str],
    delivery_kb: Path,
) -> AsyncIterator[Rig]:
    stub, base_url = graph_api
    settings = make_settings(
        kb={"path": str(delivery_kb)},
        channels={"whatsapp": whatsapp_settings(base_url).model_dump()},
    )
    channel = WhatsAppChannel(settings.channels.whatsapp, retry_delays=(0.0, 0.0))
    bot = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    await bot.start(progress=False)
    try:
        async with LiveServer(create_app(bot, start=False)) as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                yield Rig(bot, channel, stub, http)
    finally:
        await channel.stop()
        bot.executor.shutdown(wait=False)


# --- webhook verification and authentication ------------------------------------------------------


@SQLITE_ONLY
async def test_verification_echoes_the_challenge_only_for_the_right_token(rig: Rig) -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = await rig.http.get(WEBHOOK, params=ok)
    assert response.status_code == 200
    assert response.text == "1158201444" and response.headers["content-type"].startswith("text/plain")
    for wrong in (
        {**ok, "hub.verify_token": "guess"},
        {**ok, "hub.mode": "unsubscribe"},
        {"hub.challenge": "1158201444"},
    ):
        assert (await rig.http.get(WEBHOOK, params=wrong)).status_code == 403


async def test_unsigned_or_wrongly_signed_webhooks_are_refused_and_nothing_is_stored(rig: Rig) -> None:
    payload = text_webhook("Jak długo trwa dostawa?", "wamid.forged")
    body = json.dumps(payload).encode()
    assert (await rig.post(payload, signature=None)).status_code == 401
    assert (await rig.post(payload, signature="sha256=" + "0" * 64)).status_code == 403
    assert (await rig.post(payload, signature=sign(body, "another-app-secret"))).status_code == 403
    assert (
        await rig.post(payload, signature="sha256=zażółć".encode())
    ).status_code == 403  # non-ASCII header
    tampered = body.replace(b"dostawa", b"zwrot!!")
    assert (await rig.post(tampered, signature=sign(body))).status_code == 403
    await rig.channel.drain()
    async with rig.bot.database.session() as session:
        assert (await session.execute(select(func.count()).select_from(Message))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(Customer))).scalar_one() == 0
    assert rig.graph.requests == []


@SQLITE_ONLY
async def test_malformed_json_is_400_and_unknown_shapes_are_acknowledged(rig: Rig) -> None:
    assert (await rig.post(b'{"object": "whatsapp_business_account", "entry": [')).status_code == 400
    assert (await rig.post(b"[1, 2, 3]")).status_code == 400
    assert (await rig.post(b"[" * 100_000 + b"]" * 100_000)).status_code == 400  # too deep to parse: was 500
    for odd in (
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account", "entry": "nonsense"},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": 7}]}]},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [{}]}}]}]},
    ):
        assert (await rig.post(odd)).status_code == 200
    await rig.channel.drain()
    assert await rig.messages() == []


# --- the acceptance path ----------------------------------------------------------------------------


async def test_polish_question_gets_one_answer_even_when_meta_redelivers(rig: Rig) -> None:
    payload = text_webhook("Jak długo trwa dostawa?", "wamid.pl-delivery-1")
    first, second = await rig.post(payload), await rig.post(payload)  # the redelivery races the first
    assert first.status_code == second.status_code == 200
    await rig.channel.drain()
    await rig.deliver(payload)  # and a late redelivery, after the answer went out
    entry = rig.bot.matcher().kb.get("delivery_time")
    assert entry is not None
    assert [text_of(body) for body in rig.graph.sends] == [entry.answer["pl"]]
    sent = rig.graph.sends[0]
    assert sent["to"] == CUSTOMER and sent["type"] == "interactive"  # the answer carries 👍/👎
    ids = [b["reply"]["id"] for b in sent["interactive"]["action"]["buttons"]]
    assert ids == ["fb:up:delivery_time", "fb:down:delivery_time"]
    assert rig.graph.reads == ["wamid.pl-delivery-1"]
    assert all(r.authorization == f"Bearer {ACCESS_TOKEN}" for r in rig.graph.requests)
    inbound, outbound = await rig.messages("in"), await rig.messages("out")
    assert [m.platform_message_id for m in inbound] == ["wamid.pl-delivery-1"]
    assert [(m.status, m.platform_message_id) for m in outbound] == [
        ("sent", "wamid.HBgLNDg2MDAxMDAyMDAVAgARGBI000001")
    ]


async def test_human_request_hands_off_with_the_whatsapp_name_and_phone(rig: Rig) -> None:
    await rig.deliver(text_webhook("I want to talk to a human", "wamid.human-1"))
    conversation = await rig.conversation()
    assert conversation.state == State.WAITING
    customer = conversation.handoff_context["customer"]
    assert customer["name"] == CUSTOMER_NAME and customer["phone"] == CUSTOMER
    assert customer["channel"] == "whatsapp" and customer["external_id"] == CUSTOMER
    [sent] = rig.graph.sends
    # The handoff layer may append a notice (the estimated wait, or when agents are back).
    assert text_of(sent).startswith(phrase("handoff", conversation.language or "en", position=1))
    assert [b["reply"]["id"] for b in sent["interactive"]["action"]["buttons"]] == ["bot"]


async def test_agent_reply_after_25_hours_is_refused_by_the_24_hour_window(rig: Rig) -> None:
    written = datetime.now(UTC) - timedelta(minutes=5)
    await rig.deliver(text_webhook("Jak długo trwa dostawa?", "wamid.window-1", at=written))
    last = (await rig.conversation()).last_customer_message_at
    assert last is not None
    assert abs((last if last.tzinfo else last.replace(tzinfo=UTC)) - written) < timedelta(seconds=1)
    ensure_free_form_allowed(rig.channel, last, last + timedelta(hours=23, minutes=59))
    with pytest.raises(OutsideMessagingWindow, match="24-hour") as refused:
        ensure_free_form_allowed(rig.channel, last, last + timedelta(hours=25))
    assert "channels.whatsapp.reengagement_template" in str(refused.value)
    with pytest.raises(OutsideMessagingWindow, match="has not written"):
        ensure_free_form_allowed(rig.channel, None)
    ensure_free_form_allowed(RecordingChannel(), last, last + timedelta(days=30))  # no window there


# --- inbound message types -------------------------------------------------------------------------


@SQLITE_ONLY
async def test_button_and_list_replies_come_back_as_our_payloads(rig: Rig) -> None:
    button = copy.deepcopy(
        fixture("callback_button")["button"]["entry"][0]["changes"][0]["value"]["messages"][0]
    )
    button.update(id="wamid.button-1")
    button["interactive"]["button_reply"] = {"id": "entry:delivery_time", "title": "Delivery time"}
    await rig.deliver(webhook(button))
    listed = copy.deepcopy(
        fixture("callback_selection")["description"]["entry"][0]["changes"][0]["value"]["messages"][0]
    )
    listed.update(id="wamid.list-1")
    listed["interactive"]["list_reply"] = {"id": "human", "title": "Talk to a person", "description": "…"}
    await rig.deliver(webhook(listed))
    conversation = await rig.conversation()
    entry = rig.bot.matcher().kb.get("delivery_time")
    assert entry is not None
    answer, handoff = rig.graph.sends
    assert text_of(answer) == entry.answer_in(conversation.language or "en", "en")
    assert text_of(handoff).startswith(phrase("handoff", conversation.language or "en", position=1))
    assert conversation.state == State.WAITING
    assert [m.payload for m in await rig.messages("in")] == ["entry:delivery_time", "human"]


async def test_media_are_acknowledged_and_stickers_get_the_polite_reply(rig: Rig) -> None:
    examples = fixture("message")
    for name in ("image", "voice", "current_location", "static_sticker"):
        raw = examples[name]["entry"][0]["changes"][0]["value"]["messages"][0]
        await rig.deliver(webhook({**raw, "id": f"wamid.{name}"}))
    language = (await rig.conversation()).language or "en"
    assert [text_of(body) for body in rig.graph.sends] == [
        phrase("attachment_received", language, kind="photo"),
        phrase("attachment_received", language, kind="voice"),
        phrase("attachment_received", language, kind="location"),
        phrase("unsupported", language),
    ]
    stored = [m.attachments[0] for m in await rig.messages("in")]
    assert [(a["kind"], a["file_id"]) for a in stored] == [
        ("photo", "65463453"),
        ("voice", "1234567890987654321"),
        ("location", None),
        ("sticker", "1234567890987654321"),
    ]
    assert stored[2]["data"]["latitude"] == 12.25089


async def test_an_edit_updates_the_stored_message_without_a_new_reply(rig: Rig) -> None:
    await rig.deliver(text_webhook("Jak długo trwa dostawa?", "wamid.to-edit"))
    edit = {
        "id": "wamid.the-edit",
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.to-edit",
            "message": {"type": "text", "text": {"body": "Ile kosztuje dostawa?"}},
        },
    }
    await rig.deliver(webhook(edit))
    [inbound] = await rig.messages("in")
    assert inbound.text == "Ile kosztuje dostawa?" and inbound.edited_at is not None
    assert len(rig.graph.sends) == 1


async def test_statuses_are_recorded_against_our_outgoing_message(rig: Rig) -> None:
    await rig.deliver(text_webhook("Jak długo trwa dostawa?", "wamid.q"))
    [outbound] = await rig.messages("out")
    wamid = outbound.platform_message_id
    assert wamid is not None
    await rig.deliver(status_webhook(wamid, "delivered"))
    assert (await rig.messages("out"))[0].delivery_status == "delivered"
    await rig.deliver(status_webhook(wamid, "read"))
    assert (await rig.messages("out"))[0].delivery_status == "read"
    errors = fixture("message_status")["failed"]["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"]
    await rig.deliver(status_webhook(wamid, "failed", errors))
    [outbound] = await rig.messages("out")
    assert outbound.delivery_status == "failed"
    assert outbound.last_error is not None and "130472" in outbound.last_error


async def test_every_fixture_goes_through_the_endpoint_and_no_message_is_lost(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    expected_inbound = set()
    for param in every_fixture():
        file, name, payload = copy.deepcopy(param.values)
        for change in payload["entry"][0]["changes"]:
            change["value"].get("metadata", {})["phone_number_id"] = PHONE_NUMBER_ID  # placeholders vary
            for message in change["value"].get("messages", []):
                message["id"] = f"wamid.{file}.{name}"  # each example is a distinct message
        for item in parse_webhook(payload, PHONE_NUMBER_ID):
            if isinstance(item, IncomingMessage):
                expected_inbound.add(item.platform_message_id)
        response = await rig.post(payload)
        assert response.status_code == 200, (file, name, response.text)
    await rig.channel.drain()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    stored = {m.platform_message_id for m in await rig.messages("in")}
    assert stored == expected_inbound and len(stored) >= 25
    assert not [m for m in await rig.messages("out") if m.status != "sent"]


# --- outbound: rendering, limits, errors -----------------------------------------------------------


@pytest.fixture
async def wa_channel(graph_api: tuple[GraphApiStub, str]) -> AsyncIterator[WhatsAppChannel]:
    channel = WhatsAppChannel(whatsapp_settings(graph_api[1], reengagement_template="support_followup"))
    yield channel
    await channel.stop()


def target(message_id: int = 1, language: str = "pl") -> DeliveryTarget:
    return DeliveryTarget("whatsapp", CUSTOMER, CUSTOMER, 1, language, message_id)


async def test_long_text_is_split_on_paragraph_boundaries(
    wa_channel: WhatsAppChannel, graph_api: tuple[GraphApiStub, str]
) -> None:
    stub = graph_api[0]
    paragraphs = [f"Akapit {n}. " + "Zdanie o dostawie i zwrotach. " * 40 for n in range(12)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    wamid = await wa_channel.send(target(), OutgoingReply(text))
    parts = [text_of(body) for body in stub.sends]
    assert len(parts) > 1 and all(len(part) <= 4096 for part in parts)
    assert "\n\n".join(parts) == text  # cut only between paragraphs
    assert wamid == f"wamid.HBgLNDg2MDAxMDAyMDAVAgARGBI{len(parts):06d}"  # the last part's id


async def test_three_buttons_are_reply_buttons_with_short_titles(
    wa_channel: WhatsAppChannel, graph_api: tuple[GraphApiStub, str]
) -> None:
    buttons = (
        Button("Czas i koszt dostawy do paczkomatu", "entry:delivery_time"),
        Button("Czas i koszt dostawy kurierem", "entry:delivery_cost"),
        Button("Porozmawiaj z konsultantem", "human"),
    )
    await wa_channel.send(target(), OutgoingReply("Czy chodziło o jedno z tych?", buttons))
    [sent] = graph_api[0].sends
    replies = [b["reply"] for b in sent["interactive"]["action"]["buttons"]]
    assert [r["id"] for r in replies] == ["entry:delivery_time", "entry:delivery_cost", "human"]
    titles = [r["title"] for r in replies]
    assert all(len(t) <= 20 and "…" in t for t in titles) and len(set(titles)) == 3
    assert titles[2] == "Porozmawiaj z…"


async def test_more_choices_become_lists_of_ten_rows(
    wa_channel: WhatsAppChannel, graph_api: tuple[GraphApiStub, str]
) -> None:
    buttons = tuple(
        Button(f"Temat numer {n} o zwrotach i reklamacjach", f"entry:topic_{n}") for n in range(12)
    )
    await wa_channel.send(target(), OutgoingReply("Wybierz temat:", buttons))
    first, second = graph_api[0].sends
    assert first["interactive"]["type"] == second["interactive"]["type"] == "list"
    assert text_of(first) == "Wybierz temat:" and first["interactive"]["action"]["button"] == "Wybierz"
    rows = [row for body in (first, second) for row in body["interactive"]["action"]["sections"][0]["rows"]]
    assert [row["id"] for row in rows] == [b.payload for b in buttons]
    assert all(
        len(row["title"]) <= 24 and row["description"] == button.title
        for row, button in zip(rows, buttons, strict=True)
    )


async def test_a_long_answer_with_buttons_keeps_the_buttons_on_its_last_part(
    wa_channel: WhatsAppChannel, graph_api: tuple[GraphApiStub, str]
) -> None:
    text = "\n\n".join((f"Punkt {n}: " + "szczegóły zwrotu towaru. " * 20).strip() for n in range(5))
    buttons = (Button("👍", "fb:up:return_policy"), Button("👎", "fb:down:return_policy"))
    await wa_channel.send(target(), OutgoingReply(text, buttons))
    sends = graph_api[0].sends
    assert [body["type"] for body in sends][-1] == "interactive" and len(sends) >= 2
    assert len(text_of(sends[-1])) <= 1024
    assert "\n\n".join(text_of(body) for body in sends) == text


@pytest.mark.parametrize(
    ("failure", "permanent", "retry_after", "shown"),
    [
        (Failure(429, 130429, "Rate limit hit", {"Retry-After": "7"}), False, 7.0, "130429"),
        (Failure(500, 1, "An unknown error occurred"), False, None, "HTTP 500"),
        (Failure(503, 2, "Service temporarily unavailable"), False, None, "HTTP 503"),
        (
            Failure(400, 131056, "(Business Account, Consumer Account) pair rate limit hit"),
            False,
            None,
            "131056",
        ),
        (
            Failure(
                400,
                4,
                "Application request limit reached",
                {
                    "X-Business-Use-Case-Usage": '{"102": [{"type": "whatsapp", "estimated_time_to_regain_access": 3}]}'
                },
            ),
            False,
            180.0,
            "error 4",
        ),
        (Failure(400, 131047, "Re-engagement message"), True, None, "131047"),
        (Failure(400, 131026, "Message undeliverable"), True, None, "Message undeliverable"),
    ],
)
async def test_graph_errors_become_send_errors_the_outbox_understands(
    wa_channel: WhatsAppChannel,
    graph_api: tuple[GraphApiStub, str],
    failure: Failure,
    permanent: bool,
    retry_after: float | None,
    shown: str,
) -> None:
    graph_api[0].fail_next(failure)
    with pytest.raises(SendError) as raised:
        await wa_channel.send(target(), OutgoingReply("Dzień dobry"))
    assert raised.value.permanent is permanent
    assert raised.value.retry_after == retry_after
    assert shown in str(raised.value)


async def test_an_unreachable_graph_api_is_a_retryable_send_error() -> None:
    channel = WhatsAppChannel(whatsapp_settings(f"http://127.0.0.1:{free_port()}/v21.0"))
    try:
        with pytest.raises(SendError, match="unreachable") as raised:
            await channel.send(target(), OutgoingReply("Dzień dobry"))
        assert raised.value.permanent is False
    finally:
        await channel.stop()


async def test_a_retry_resumes_after_the_parts_already_delivered(
    wa_channel: WhatsAppChannel, graph_api: tuple[GraphApiStub, str]
) -> None:
    stub = graph_api[0]
    text = "\n\n".join((f"Część {n}. " + "x " * 1500).strip() for n in range(3))
    stub.fail_next(None, Failure(500))
    with pytest.raises(SendError):
        await wa_channel.send(target(message_id=7), OutgoingReply(text))
    await wa_channel.send(target(message_id=7), OutgoingReply(text))
    parts = [text_of(body) for body in stub.sends]
    assert len(parts) == 3 and "\n\n".join(parts) == text  # no part twice, none missing


async def test_a_template_can_be_sent_outside_the_window(
    wa_channel: WhatsAppChannel, graph_api: tuple[GraphApiStub, str]
) -> None:
    wamid = await wa_channel.send_template(target())
    await wa_channel.send_template(target(), "order_update", "pl")
    first, second = graph_api[0].sends
    assert first["template"] == {"name": "support_followup", "language": {"code": "en"}}
    assert second["template"] == {"name": "order_update", "language": {"code": "pl"}}
    assert wamid and wamid.startswith("wamid.")


async def test_a_failed_send_stays_in_the_outbox_and_is_retried(rig: Rig) -> None:
    rig.graph.fail_next(
        Failure(429, 130429, "Rate limit hit", {"Retry-After": "30"}),
        None,  # the mark-as-read that follows the first attempt
        Failure(500, 131000, "Something went wrong"),
    )
    await rig.deliver(text_webhook("Jak długo trwa dostawa?", "wamid.retry-1"))
    [outbound] = await rig.messages("out")
    assert outbound.status == "pending" and outbound.attempts == 1
    assert outbound.last_error is not None and "HTTP 429" in outbound.last_error
    due = outbound.next_attempt_at
    assert due is not None  # Meta's Retry-After is honoured
    assert (due if due.tzinfo else due.replace(tzinfo=UTC)) > datetime.now(UTC) + timedelta(seconds=25)
    assert await rig.bot.outbox.deliver() == 0  # not due yet: nothing is sent early
    for attempts, status, error in ((2, "pending", "HTTP 500"), (3, "sent", None)):
        async with rig.bot.database.session() as session:  # time passes: the retry is due
            await session.execute(
                update(Message).where(Message.id == outbound.id).values(next_attempt_at=datetime.now(UTC))
            )
        await rig.bot.outbox.deliver()
        [outbound] = await rig.messages("out")
        assert (outbound.attempts, outbound.status) == (attempts, status)
        assert error is None or (outbound.last_error is not None and error in outbound.last_error)
    assert outbound.platform_message_id is not None
    entry = rig.bot.matcher().kb.get("delivery_time")
    assert entry is not None
    assert [text_of(body) for body in rig.graph.sends] == [entry.answer["pl"]]
    assert [r.answered for r in rig.graph.requests if "status" not in r.body] == [429, 500, 200]


# --- processing failures, registry, parsing ----------------------------------------------------------


def test_the_channel_is_enabled_only_with_all_four_credentials(
    make_settings: Callable[..., Settings],
) -> None:
    full = whatsapp_settings("http://127.0.0.1:9/v21.0").model_dump()
    names = [c.name for c in enabled_channels(make_settings(channels={"whatsapp": full}))]
    assert "whatsapp" in names
    partial = {**full, "app_secret": None}
    assert "whatsapp" not in [c.name for c in enabled_channels(make_settings(channels={"whatsapp": partial}))]
    with pytest.raises(ConfigError, match="app_secret"):
        WhatsAppChannel(WhatsAppSettings(**partial))
    assert WhatsAppSettings().graph_api_base == "https://graph.facebook.com/v21.0"


@pytest.mark.parametrize(("file", "name", "payload"), every_fixture())
def test_every_fixture_parses(file: str, name: str, payload: dict[str, Any]) -> None:
    items = parse_webhook(payload, PHONE_NUMBER_ID)
    assert items and not [i for i in items if isinstance(i, Ignored) and i.kind == "unparseable"]


def test_fixture_types_map_to_the_channel_neutral_model() -> None:
    def first(file: str, name: str, number: str | None = PHONE_NUMBER_ID) -> Any:
        return parse_webhook(fixture(file)[name], number)[0]

    text = first("message", "text")
    assert isinstance(text, IncomingMessage)
    assert (text.text, text.chat_id, text.customer_id, text.phone) == (
        "Body Text",
        "972987654321",
        "972987654321",
        "972987654321",
    )
    assert text.display_name == "Test Name" and text.platform_message_id == "wamid.xyzxyz"
    assert text.timestamp == datetime.fromtimestamp(1697043223, UTC)
    kinds = {
        name: [a.kind for a in first("message", name).attachments]
        for name in (
            "image",
            "video",
            "document",
            "audio",
            "voice",
            "static_sticker",
            "animated_sticker",
            "current_location",
            "contacts",
            "order",
            "unsupported",
            "unsupported_with_type",
            "interactive_message_with_err",
        )
    }
    assert kinds == {
        "image": ["photo"],
        "video": ["video"],
        "document": ["document"],
        "audio": ["audio"],
        "voice": ["voice"],
        "static_sticker": ["sticker"],
        "animated_sticker": ["sticker"],
        "current_location": ["location"],
        "contacts": ["contact", "contact", "contact"],
        "order": ["unsupported"],
        "unsupported": ["unsupported"],
        "unsupported_with_type": ["unsupported"],
        "interactive_message_with_err": ["unsupported"],
    }
    document = first("message", "document")
    assert document.text == "caption" and document.attachments[0].data["filename"] == "filename.pdf"
    assert first("message", "contacts").attachments[1].data["name"]["formatted_name"] == "Monica"
    for file, name in (
        ("callback_button", "button"),
        ("callback_selection", "callback"),
        ("callback_selection", "description"),
    ):
        pressed = first(file, name)
        assert (
            isinstance(pressed, IncomingMessage) and pressed.payload == "callback_data" and pressed.text == ""
        )
    quick_reply = first("callback_button", "quick_reply")
    assert (
        isinstance(quick_reply, IncomingMessage)
        and quick_reply.text == "title"
        and quick_reply.payload is None
    )
    assert first("edited_message", "image").kind == "other_phone_number"  # sent to another number
    edit = first("edited_message", "image", number=None)
    assert isinstance(edit, IncomingMessage) and edit.edited
    assert edit.platform_message_id == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="
    assert edit.text == "Updated image caption"
    for file, name, kind in (
        ("message", "reaction", "reaction"),
        ("message", "unreaction_no_emoji", "reaction"),
        ("deleted_message", "revoke", "deleted"),
        ("system", "phone_number_change", "system:user_changed_number"),
        ("outgoing_message", "text", "field:smb_message_echoes"),
        ("message_status", "group", "other_phone_number"),
    ):
        ignored = first(file, name, None if kind != "other_phone_number" else PHONE_NUMBER_ID)
        assert isinstance(ignored, Ignored) and ignored.kind == kind, (file, name, ignored)
    failed = first("message_status", "failed")
    assert isinstance(failed, StatusUpdate) and failed.status == "failed"
    assert failed.error is not None and failed.error.startswith(
        "130472 User's number is part of an experiment"
    )
    assert [first("message_status", s).status for s in ("sent", "delivered", "read", "played")] == [
        "sent",
        "delivered",
        "read",
        "played",
    ]
    errored = parse_webhook(fixture("message")["interactive_message_with_err"], PHONE_NUMBER_ID)
    assert isinstance(errored[-1], Ignored) and errored[-1].kind == "webhook_error"


def test_split_text_prefers_paragraphs_then_lines_then_words() -> None:
    assert split_text("", 10) == [] and split_text("short", 10) == ["short"]
    assert split_text("aaaa\n\nbbbb\n\ncccc", 10) == ["aaaa\n\nbbbb", "cccc"]
    assert split_text("aaaa bbbb\ncccc dddd", 12) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("One sentence here. Another one there.", 20) == [
        "One sentence here.",
        "Another one there.",
    ]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_text("ab " * 10, 5, measure=lambda s: len(s.encode("utf-16-le")) // 2) == ["ab ab"] * 5

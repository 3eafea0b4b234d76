"""The Telegram agent desk: real aiogram against the stand-in Bot API, WhatsApp against the Graph stand-in."""

from __future__ import annotations

from datetime import timedelta

from bot.handoff.providers import CallableProvider
from bot.states import State
from bot.storage.models import Conversation, Event
from tests.support.desk import DESK, DeskRig, group_message, linked_agent
from tests.support.handoff import Api, desk_of, wait_for
from tests.support.telegram import CUSTOMER, for_customer, load, text_update
from tests.support.telegram_api import Failure
from tests.support.whatsapp import CUSTOMER as WA_CUSTOMER

OLGA, SAM, STRANGER = 55501, 55502, 55599


async def customer_sends(rig: DeskRig, chat_id: int) -> list[str]:
    return [str(p["visible"]) for p in rig.api.sent(chat_id)]


async def test_telegram_and_whatsapp_customers_are_worked_from_their_topics(desk_rig: DeskRig) -> None:
    rig = desk_rig
    olga = await linked_agent(rig.bot, "olga", OLGA, name="Olga")
    rig.api.push(text_update("оператор", message_id=501))
    await rig.whatsapp_says("I want to talk to a human", "wamid.handoff-1")
    await rig.topic("telegram", str(CUSTOMER))
    await rig.topic("whatsapp", WA_CUSTOMER)
    await rig.settle()
    tg_topic = await rig.topic("telegram", str(CUSTOMER))
    wa_topic = await rig.topic("whatsapp", WA_CUSTOMER)

    # one topic each, named who · channel · language, the card first and pinned
    assert sorted(rig.api.topics.values()) == sorted([tg_topic.name, wa_topic.name])
    assert tg_topic.name.startswith("FirstName LastName · Telegram · ")
    assert wa_topic.name == "Anna Kowalska · WhatsApp · en"
    for topic, words in ((tg_topic, "оператор"), (wa_topic, "I want to talk to a human")):
        [card, *_] = rig.api.in_topic(topic.thread_id or 0)
        assert card["visible"].startswith("#") and words in card["visible"]
        assert int(card["chat_id"]) == DESK
    pinned = {int(p["message_id"]) for p in rig.api.ok_calls("pinChatMessage")}
    assert {tg_topic.card_message_id, wa_topic.card_message_id} == pinned

    # a member of the group who is no linked agent reaches nobody
    before = len(rig.api.sent(CUSTOMER))
    rig.api.push(group_message(tg_topic.thread_id, STRANGER, "I am just a colleague", name="Eve"))
    await rig.settle()
    assert len(rig.api.sent(CUSTOMER)) == before
    assert (await rig.conversation("telegram", str(CUSTOMER))).state == State.WAITING

    # a sticker (nothing the customer's channel takes from the desk) is refused and takes nothing
    sticker = group_message(tg_topic.thread_id, OLGA)
    del sticker["message"]["text"]
    sticker["message"]["sticker"] = {
        "file_id": "CAACsticker",
        "file_unique_id": "st",
        "width": 512,
        "height": 512,
    }
    rig.api.push(sticker)
    await rig.settle()
    assert any("nothing was sent" in t for t in rig.topic_texts(tg_topic.thread_id or 0))
    assert (await rig.conversation("telegram", str(CUSTOMER))).state == State.WAITING

    # the linked agent's first message takes the waiting conversation and reaches that customer only
    rig.api.push(group_message(tg_topic.thread_id, OLGA, "Здравствуйте! Смотрю ваш заказ."))
    await rig.settle()
    conversation = await rig.conversation("telegram", str(CUSTOMER))
    assert (conversation.state, conversation.assigned_agent_id) == (State.WITH_AGENT, olga.id)
    assert (await customer_sends(rig, CUSTOMER))[-1] == "Здравствуйте! Смотрю ваш заказ."
    kinds = [e.kind for e in await rig.events(conversation.id)]
    assert kinds[-3:] == ["assigned", "agent_message", "delivery"] or kinds[-2:] == [
        "assigned",
        "agent_message",
    ]
    assert all("Смотрю" not in str(s) for s in rig.graph.sends)
    assert any("Olga" in t and "took it" in t for t in rig.topic_texts(tg_topic.thread_id or 0))

    # ... and in the WhatsApp customer's topic, to the WhatsApp customer
    rig.api.push(group_message(wa_topic.thread_id, OLGA, "Hello Anna, how can I help?"))
    await rig.settle()
    await wait_for(lambda: any("Hello Anna" in str(s) for s in rig.graph.sends), what="the WhatsApp reply")

    # the customer's follow-up (and a photo) is mirrored into their topic
    rig.api.push(text_update("Спасибо, жду", message_id=502))
    await rig.settle()
    assert "👤 Спасибо, жду" in rig.topic_texts(tg_topic.thread_id or 0)
    photo_update = for_customer(load("illemius_telegram_types/message_with_photo.json"), message_id=504)
    rig.api.push(photo_update)
    await rig.settle()
    largest = max(photo_update["message"]["photo"], key=lambda p: p.get("file_size") or 0)["file_id"]
    [mirrored] = [p for p in rig.api.ok_calls("sendPhoto") if int(p["chat_id"]) == DESK]
    assert mirrored["photo"] == largest and int(mirrored["message_thread_id"]) == tg_topic.thread_id

    # a photo from the agent reaches the Telegram customer as that file; to WhatsApp it is refused
    rig.api.push(group_message(tg_topic.thread_id, OLGA, "Вот накладная", photo="AgACphoto-1"))
    await rig.settle()
    [photo] = [p for p in rig.api.ok_calls("sendPhoto") if str(p["chat_id"]) == str(CUSTOMER)]
    assert photo["photo"] == "AgACphoto-1" and photo["visible"] == "Вот накладная"
    rig.api.push(group_message(wa_topic.thread_id, OLGA, "invoice", photo="AgACphoto-2"))
    await rig.settle()
    assert any("Files reach Telegram customers only" in t for t in rig.topic_texts(wa_topic.thread_id or 0))

    # /note stays internal: in the audit trail and the console, never sent
    sent_before = len(rig.api.sent(CUSTOMER))
    rig.api.push(group_message(tg_topic.thread_id, OLGA, "/note VIP, be kind"))
    await rig.settle()
    assert len(rig.api.sent(CUSTOMER)) == sent_before
    notes = [e for e in await rig.events(conversation.id) if e.kind == "note"]
    assert [n.data["text"] for n in notes] == ["VIP, be kind"]

    # console and topic see each other: a console reply is posted in the topic, a topic reply is in the console
    api = await Api.login(rig.http, "olga")
    await api.ok("POST", f"/conversations/{conversation.id}/messages", json={"text": "From the console"})
    await rig.settle()
    assert "💬 <b>Olga</b> (console): From the console" in [
        str(p.get("text")) for p in rig.api.in_topic(tg_topic.thread_id or 0)
    ] or any("From the console" in t for t in rig.topic_texts(tg_topic.thread_id or 0))
    detail = await api.ok("GET", f"/conversations/{conversation.id}")
    agent_texts = [m["text"] for m in detail["messages"] if m["sender"] == "agent"]
    assert agent_texts[0] == "Здравствуйте! Смотрю ваш заказ." and "From the console" in agent_texts
    assert [n["text"] for n in detail["notes"]] == ["VIP, be kind"]

    # /resolve: resolved as by the API, the CSAT question goes to the customer, the topic is closed
    rig.api.push(group_message(tg_topic.thread_id, OLGA, "/resolve order found"))
    await rig.settle()
    conversation = await rig.conversation("telegram", str(CUSTOMER))
    assert conversation.state == State.RESOLVED
    [resolved] = [e for e in await rig.events(conversation.id) if e.kind == "resolved"]
    assert (resolved.actor, resolved.data["reason"]) == ("agent:olga", "order found")
    last = rig.api.sent(CUSTOMER)[-1]
    assert last.get("reply_markup"), "the CSAT question comes with rating buttons"
    assert [int(p["message_thread_id"]) for p in rig.api.ok_calls("closeForumTopic")] == [tg_topic.thread_id]

    # the customer comes back: the same topic is reopened, with a new card
    rig.api.push(text_update("оператор", message_id=503))
    await rig.settle()
    assert len(rig.api.ok_calls("createForumTopic")) == 2
    assert [int(p["message_thread_id"]) for p in rig.api.ok_calls("reopenForumTopic")] == [tg_topic.thread_id]
    health = (await rig.http.get("/healthz")).json()
    assert health["telegram_desk"]["status"] == "ok" and health["telegram_desk"]["pending_posts"] == 0


def _moves(events: list[Event]) -> list[tuple[str, str, dict[str, object]]]:
    """The audit trail without what differs between any two conversations (message ids, where typed)."""
    return [
        (e.kind, e.actor, {k: v for k, v in (e.data or {}).items() if k not in ("message_id", "via", "text")})
        for e in events
    ]


async def test_transfer_and_resolve_in_a_topic_do_what_the_api_does(desk_rig: DeskRig) -> None:
    rig = desk_rig
    olga = await linked_agent(rig.bot, "olga", OLGA, name="Olga")
    sam = await linked_agent(rig.bot, "sam", SAM, name="Sam")
    other = CUSTOMER + 1
    rig.api.push(text_update("оператор", message_id=601))
    rig.api.push(text_update("оператор", user=other, message_id=602))
    a_topic = await rig.topic("telegram", str(CUSTOMER))
    await rig.topic("telegram", str(other))
    await rig.settle()

    # /queue in the general topic lists both, with links to their topics
    rig.api.push(group_message(None, OLGA, "/queue"))
    await rig.settle()
    [listing] = [p for p in rig.api.sent(DESK) if str(p["visible"]).startswith("2 waiting")]
    assert listing.get("message_thread_id") in (None, "") and "2 waiting" in listing["visible"]
    assert f"https://t.me/c/1234567890/{a_topic.thread_id}" in str(listing["text"])

    # A is worked from its topic, B through the agent API: the same moves
    a = await rig.conversation("telegram", str(CUSTOMER))
    b = await rig.conversation("telegram", str(other))
    rig.api.push(group_message(a_topic.thread_id, OLGA, "Здравствуйте"))
    olga_api, sam_api = await Api.login(rig.http, "olga"), await Api.login(rig.http, "sam")
    await olga_api.ok("POST", f"/conversations/{b.id}/accept")
    await olga_api.ok("POST", f"/conversations/{b.id}/messages", json={"text": "Здравствуйте"})
    await rig.settle()
    rig.api.push(group_message(None, SAM, "/online", name="Sam"))  # the same status as PUT /agents/me/status
    await rig.settle()
    assert (await sam_api.ok("GET", "/agents/me"))["status"] == "online"
    rig.api.push(group_message(a_topic.thread_id, OLGA, "/transfer sam"))
    await olga_api.ok("POST", f"/conversations/{b.id}/transfer", json={"agent_login": "sam"})
    await rig.settle()
    rig.api.push(group_message(a_topic.thread_id, SAM, "/resolve refund issued", name="Sam"))
    await sam_api.ok("POST", f"/conversations/{b.id}/resolve", json={"reason": "refund issued"})
    await rig.settle()

    a_events, b_events = await rig.events(a.id), await rig.events(b.id)
    assert _moves(a_events) == _moves(b_events)
    kinds = [e.kind for e in a_events]
    assert {"assigned", "transferred", "resolved"} <= set(kinds)
    [transfer] = [e for e in a_events if e.kind == "transferred"]
    assert (transfer.actor, transfer.agent_id, transfer.data["to"]) == ("agent:olga", sam.id, "sam")
    # what each customer was told after their place in the queue: the same words, the CSAT question last
    told_a = [str(p["visible"]) for p in rig.api.sent(CUSTOMER)]
    told_b = [str(p["visible"]) for p in rig.api.sent(other)]
    assert len(told_a) >= 5 and told_a[1:] == told_b[1:] and rig.api.sent(CUSTOMER)[-1].get("reply_markup")
    assert olga.id != sam.id
    texts = rig.topic_texts(a_topic.thread_id or 0)
    assert any("transferred to sam" in t for t in texts) and any("resolved by agent:sam" in t for t in texts)


async def test_a_busy_desk_waits_out_429_and_reports_what_it_lost(desk_rig: DeskRig) -> None:
    rig = desk_rig
    await linked_agent(rig.bot, "olga", OLGA, name="Olga")
    sam = await linked_agent(rig.bot, "sam", SAM, name="Sam")
    rig.api.push(text_update("оператор", message_id=701))
    topic = await rig.topic("telegram", str(CUSTOMER))
    await rig.settle()
    conversation = await rig.conversation("telegram", str(CUSTOMER))

    # past the SLA, the general topic gets a queue line with a link to the topic
    await desk_of(rig.bot).timers.flag_sla(rig.bot.handoff.clock() + timedelta(minutes=10))
    await rig.settle()
    [line] = [p for p in rig.api.sent(DESK) if str(p["visible"]).startswith("⏰")]
    assert f"#{conversation.id}" in line["visible"] and "waits 10 min" in line["visible"]
    assert line.get("message_thread_id") in (None, "")

    # an agent going online is assigned the conversation, announced in the topic with a mention
    rig.api.push(group_message(None, SAM, "/online", name="Sam"))
    await rig.settle()
    assert (await rig.conversation("telegram", str(CUSTOMER))).assigned_agent_id == sam.id
    assert any(f'href="tg://user?id={SAM}"' in str(p["text"]) for p in rig.api.in_topic(topic.thread_id or 0))

    # flood control on the desk: the customer's three messages arrive once each, in order
    rig.api.fail_next("sendMessage", Failure.too_many_requests(1))
    for number, words in enumerate(("первое", "второе", "третье")):
        rig.api.push(text_update(words, message_id=710 + number))
    await rig.settle()
    mirrored = [t for t in rig.topic_texts(topic.thread_id or 0) if t.startswith("👤")]
    assert mirrored == ["👤 первое", "👤 второе", "👤 третье"]
    assert [c.status for c in rig.api.calls if c.method == "sendmessage" and c.status != 200] == [429]

    # a topic deleted by hand: reported in /healthz and the log; the conversation stays in the console
    rig.api.deleted_topics.add(topic.thread_id or 0)
    rig.api.push(text_update("вы тут?", message_id=720))
    await rig.settle()
    health = (await rig.http.get("/healthz")).json()
    assert health["status"] == "ok" and health["telegram_desk"]["topics_gone"] == 1
    assert "deleted" in health["telegram_desk"]["status"]
    sam_api = await Api.login(rig.http, "sam")
    detail = await sam_api.ok("GET", f"/conversations/{conversation.id}")
    assert detail["messages"][-1]["text"] == "вы тут?"

    # the bot removed from the group: reported too
    rig.api.push(
        {
            "my_chat_member": {
                "chat": {"id": DESK, "title": "Support desk", "type": "supergroup", "is_forum": True},
                "from": {"id": OLGA, "is_bot": False, "first_name": "Olga"},
                "date": 1733480000,
                "old_chat_member": {
                    "user": {"id": 7000000001, "is_bot": True, "first_name": "Shop Support"},
                    "status": "administrator",
                },
                "new_chat_member": {
                    "user": {"id": 7000000001, "is_bot": True, "first_name": "Shop Support"},
                    "status": "left",
                },
            }
        }
    )
    await rig.settle()
    health = (await rig.http.get("/healthz")).json()
    assert "the bot is left in the desk group" in health["telegram_desk"]["status"]

    # after the resolution, the customer's return makes a new topic in place of the deleted one
    await sam_api.ok("POST", f"/conversations/{conversation.id}/resolve", json={})
    rig.api.push(text_update("оператор", message_id=730))
    await rig.settle()
    assert len(rig.api.ok_calls("createForumTopic")) == 2
    fresh = await rig.topic("telegram", str(CUSTOMER))
    assert fresh.thread_id != topic.thread_id and fresh.status == "open"


async def test_webhook_mode_late_card_data_refusals_web_chat_and_the_whatsapp_window(
    webhook_desk_rig: DeskRig,
) -> None:
    rig = webhook_desk_rig
    rig.bot.handoff.add_provider(  # type: ignore[attr-defined]
        CallableProvider("orders", lambda customer: {"orders": [{"id": "A-1001", "status": "shipped"}]})
    )
    await linked_agent(rig.bot, "full", OLGA, name="Full", capacity=0)
    sam = await linked_agent(rig.bot, "sam", SAM, name="Sam")
    await rig.telegram_webhook(text_update("оператор", message_id=801))
    await rig.whatsapp_says("I want to talk to a human", "wamid.handoff-8")
    await rig.settle()
    topic = await rig.topic("telegram", str(CUSTOMER))
    wa_topic = await rig.topic("whatsapp", WA_CUSTOMER)

    # the providers' answer came after the handoff: the pinned card is edited to show it
    edits = [p for p in rig.api.ok_calls("editMessageText") if int(p["message_id"]) == topic.card_message_id]
    assert edits and "A-1001" in edits[-1]["visible"]

    # an agent without room is refused with a short notice, and the conversation keeps waiting
    await rig.telegram_webhook(group_message(topic.thread_id, OLGA, "Добрый день", name="Full"))
    await rig.settle()
    assert any("capacity" in t for t in rig.topic_texts(topic.thread_id or 0))
    assert (await rig.conversation("telegram", str(CUSTOMER))).state == State.WAITING
    await rig.telegram_webhook(group_message(topic.thread_id, SAM, "Добрый день", name="Sam"))
    await rig.settle()
    assert (await rig.conversation("telegram", str(CUSTOMER))).assigned_agent_id == sam.id
    assert rig.api.sent(CUSTOMER)[-1]["visible"] == "Добрый день"

    # a web chat visitor gets a topic too, and the agent's answer is in their chat
    visitor = {"X-Visitor-Id": "v-desk-visitor-1"}
    asked = await rig.http.post(
        "/api/v1/webchat/messages", json={"text": "I want to talk to a human"}, headers=visitor
    )
    assert asked.status_code == 200 and asked.json()["state"] == State.WAITING
    web_topic = await rig.topic("webchat", "v-desk-visitor-1")
    assert " · Web chat · " in web_topic.name
    await rig.telegram_webhook(group_message(web_topic.thread_id, SAM, "Hi, Sam here", name="Sam"))
    await rig.settle()
    chat = (await rig.http.get("/api/v1/webchat/messages", headers=visitor)).json()
    assert [m["text"] for m in chat["messages"] if m["sender"] == "agent"] == ["Hi, Sam here"]

    # outside WhatsApp's 24 hours the topic says so and offers the template; nothing is sent
    conversation = await rig.conversation("whatsapp", WA_CUSTOMER)
    async with rig.bot.database.session() as session:
        row = await session.get(Conversation, conversation.id)
        assert row is not None
        row.last_customer_message_at = row.last_customer_message_at - timedelta(days=2)
    sends = len(rig.graph.sends)
    await rig.telegram_webhook(group_message(wa_topic.thread_id, SAM, "Are you there?", name="Sam"))
    await rig.settle()
    [notice] = [t for t in rig.topic_texts(wa_topic.thread_id or 0) if "24-hour" in t]
    assert "/template" in notice and len(rig.graph.sends) == sends
    assert (await rig.conversation("whatsapp", WA_CUSTOMER)).state == State.WAITING  # nothing taken either

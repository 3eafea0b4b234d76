"""The conversation engine over the demo KB, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.app import SupportBot
from bot.messages import Attachment
from bot.states import State
from bot.storage.models import Conversation, Customer, Event, Message
from bot.storage.repositories import ConversationRepository
from tests.support.channel import RecordingChannel, incoming


async def stored_messages(bot: SupportBot, conversation_id: int) -> list[Message]:
    async with bot.database.session() as session:
        rows = await session.execute(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        return list(rows.scalars())


async def conversation(bot: SupportBot, conversation_id: int) -> Conversation:
    async with bot.database.session() as session:
        row = await session.get(Conversation, conversation_id)
        assert row is not None
        return row


async def test_russian_question_gets_the_russian_answer(bot: SupportBot, channel: RecordingChannel) -> None:
    result = await bot.receive(incoming("Сколько идёт доставка?", language_hint="ru"))
    entry = bot.matcher().kb.get("delivery_time")
    assert entry is not None
    assert result.decision is not None and result.decision.kind == "answer"
    assert result.decision.label == "delivery_time"
    assert [reply.text for _, reply in result.replies] == [entry.answer["ru"]]
    assert channel.sent[0][1].text == entry.answer["ru"]
    rows = await stored_messages(bot, result.conversation_id or 0)
    assert [(m.direction, m.status) for m in rows] == [("in", "received"), ("out", "sent")]
    assert rows[0].decision and rows[0].decision["label"] == "delivery_time"


async def test_answers_follow_the_language_of_the_text(bot: SupportBot) -> None:
    kb = bot.matcher().kb
    polish = await bot.receive(incoming("Jak długo trwa dostawa?", customer="pl"))
    ukrainian = await bot.receive(incoming("Скільки триває доставка?", customer="uk", language_hint="ru"))
    entry = kb.get("delivery_time")
    assert entry is not None
    assert polish.replies[0][1].text == entry.answer["pl"]
    assert ukrainian.replies[0][1].text == entry.answer["uk"]


async def test_human_request_hands_off_and_stores_waiting(bot: SupportBot) -> None:
    await bot.receive(incoming("Сколько идёт доставка?"))
    result = await bot.receive(incoming("I want to talk to a human"))
    assert result.decision is not None and result.decision.kind == "handoff"
    assert result.state == State.WAITING
    row = await conversation(bot, result.conversation_id or 0)
    assert row.state == State.WAITING and row.waiting_since is not None
    context = row.handoff_context
    assert context["reason"] == "human_request"
    assert [m["text"] for m in context["transcript"]][:1] == ["Сколько идёт доставка?"]
    assert context["matched"][0]["label"] == "delivery_time"
    assert "1" in result.replies[0][1].text  # queue position


async def test_redelivered_message_is_answered_once(bot: SupportBot, channel: RecordingChannel) -> None:
    first = await bot.receive(incoming("How can I pay for my order?", msg_id="42"))
    second = await bot.receive(incoming("How can I pay for my order?", msg_id="42"))
    assert first.replies and not second.replies and second.duplicate
    assert len(channel.sent) == 1
    assert len(await stored_messages(bot, first.conversation_id or 0)) == 2


async def test_same_platform_id_in_another_chat_is_a_new_message(bot: SupportBot) -> None:
    first = await bot.receive(incoming("How can I pay?", customer="a", msg_id="1"))
    second = await bot.receive(incoming("How can I pay?", customer="b", msg_id="1"))
    assert first.replies and second.replies


async def test_edited_message_updates_text_without_second_answer(bot: SupportBot) -> None:
    first = await bot.receive(incoming("How can I pay?", msg_id="7"))
    edit = await bot.receive(incoming("How can I pay by card?", msg_id="7", edited=True))
    assert edit.edited and not edit.replies
    rows = await stored_messages(bot, first.conversation_id or 0)
    assert rows[0].text == "How can I pay by card?" and rows[0].edited_at is not None
    assert len(rows) == 2


async def test_two_misses_in_a_row_hand_off(bot: SupportBot) -> None:
    first = await bot.receive(incoming("What's the weather like in Paris tomorrow?"))
    assert first.decision is not None and first.decision.kind == "fallback"
    assert any(b.payload == "human" for b in first.replies[0][1].buttons)
    second = await bot.receive(incoming("Can you write me a poem about the sea?"))
    assert second.decision is not None and second.decision.kind == "handoff"
    assert second.decision.reason == "repeated_misses"
    assert second.state == State.WAITING


async def test_offers_nobody_chooses_count_as_misses_and_hand_off(bot: SupportBot) -> None:
    student = "Is there a student discount?"  # the demo KB is unsure: promo_code or loyalty_club
    first = await bot.receive(incoming(student))
    assert first.decision is not None and first.decision.kind == "clarify"
    offered = [b.payload for b in first.replies[0][1].buttons]
    assert "human" in offered and len(offered) >= 2
    # choosing an option answers it and starts the count again
    chosen = await bot.receive(incoming(payload=offered[0]))
    assert chosen.state == State.BOT and chosen.replies
    again = await bot.receive(incoming(student))
    assert again.decision is not None and again.decision.kind == "clarify"
    # typing on instead of choosing: a second offer in a row is a person, not another round
    stuck = await bot.receive(incoming(student + " for university students"))
    assert stuck.decision is not None and stuck.decision.kind == "handoff"
    assert stuck.decision.reason == "repeated_misses" and stuck.state == State.WAITING


async def test_waiting_customer_messages_go_to_the_agent_not_the_bot(bot: SupportBot) -> None:
    await bot.receive(incoming("оператор"))
    result = await bot.receive(incoming("How can I pay?"))
    assert not result.replies and result.state == State.WAITING
    async with bot.database.session() as session:
        kinds = [e.kind for e in await ConversationRepository(session).events(result.conversation_id or 0)]
    assert "customer_message_for_agent" in kinds


async def test_cancel_button_takes_the_customer_back_to_the_bot(bot: SupportBot) -> None:
    await bot.receive(incoming("оператор"))
    result = await bot.receive(incoming(payload="bot"))
    assert result.state == State.BOT and result.replies
    answered = await bot.receive(incoming("How can I pay?"))
    assert answered.decision is not None and answered.decision.kind == "answer"


async def test_resolved_conversation_starts_again_with_the_bot(bot: SupportBot) -> None:
    handed = await bot.receive(incoming("оператор"))
    async with bot.database.session() as session:
        repo = ConversationRepository(session)
        row = await repo.get(handed.conversation_id or 0, lock=True)
        assert row is not None
        await repo.transition(row, State.WITH_AGENT, "agent:1", "test")
        await repo.transition(row, State.RESOLVED, "agent:1", "test")
    again = await bot.receive(incoming("How can I pay?"))
    assert again.state == State.BOT and again.conversation_id != handed.conversation_id
    assert again.decision is not None and again.decision.kind == "answer"


async def test_clarification_button_answers_the_chosen_entry(bot: SupportBot) -> None:
    result = await bot.receive(incoming(payload="entry:payment_methods"))
    entry = bot.matcher().kb.get("payment_methods")
    assert entry is not None
    assert result.replies[0][1].text == entry.answer["en"]


async def test_huge_empty_and_emoji_messages_get_sensible_replies(bot: SupportBot) -> None:
    huge = "Where is my order? I have been waiting for weeks. " * 2000  # 100,000 characters
    results = [
        await bot.receive(incoming(huge)),
        await bot.receive(incoming("", customer="empty")),
        await bot.receive(incoming("😀🙏🔥", customer="emoji")),
    ]
    for result in results:
        assert result.replies, result
        assert result.replies[0][1].text.strip()
    assert results[1].decision is not None and results[1].decision.reason == "empty"
    assert results[2].decision is not None and results[2].decision.reason == "no_text"
    rows = await stored_messages(bot, results[0].conversation_id or 0)
    assert len(rows[0].text) == len(huge)  # stored whole
    assert "first part" in results[0].replies[0][1].text or "(" in results[0].replies[0][1].text


async def test_attachments_are_stored_and_acknowledged(bot: SupportBot) -> None:
    photo = Attachment("photo", file_id="AgAD123")
    result = await bot.receive(incoming(attachments=(photo,)))
    assert "photo" in result.replies[0][1].text
    rows = await stored_messages(bot, result.conversation_id or 0)
    assert rows[0].attachments[0]["file_id"] == "AgAD123"
    sticker = await bot.receive(incoming(attachments=(Attachment("sticker", file_id="s"),), customer="s"))
    assert sticker.replies and "photo" not in sticker.replies[0][1].text


async def test_every_state_change_is_audited(bot: SupportBot) -> None:
    result = await bot.receive(incoming("оператор"))
    async with bot.database.session() as session:
        events = (
            (await session.execute(select(Event).where(Event.conversation_id == result.conversation_id)))
            .scalars()
            .all()
        )
    changes = [e.data for e in events if e.kind == "state_changed"]
    assert changes == [{"from": "bot", "to": "waiting", "reason": "human_request"}]
    assert all(e.actor for e in events)


async def test_failed_send_is_kept_for_retry(bot: SupportBot, channel: RecordingChannel) -> None:
    from bot.errors import SendError

    channel.fail_next.append(SendError("HTTP 500"))
    result = await bot.receive(incoming("How can I pay?"))
    rows = await stored_messages(bot, result.conversation_id or 0)
    assert rows[-1].status == "pending" and rows[-1].attempts == 1 and "500" in (rows[-1].last_error or "")
    async with bot.database.session() as session:
        row = await session.get(Message, rows[-1].id)
        assert row is not None
        row.next_attempt_at = row.created_at  # due now
    assert await bot.outbox.deliver() == 1
    assert (await stored_messages(bot, result.conversation_id or 0))[-1].status == "sent"


async def test_permanent_failure_is_marked_failed_not_dropped(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    from bot.errors import SendError

    channel.fail_next.append(SendError("403 blocked", permanent=True))
    result = await bot.receive(incoming("How can I pay?"))
    rows = await stored_messages(bot, result.conversation_id or 0)
    assert rows[-1].status == "failed" and rows[-1].last_error == "403 blocked"
    async with bot.database.session() as session:
        count = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
    assert count == 2


async def test_start_greets_with_a_menu_of_topics(bot: SupportBot) -> None:
    result = await bot.receive(incoming(payload="start", language_hint="ru"))
    reply = result.replies[0][1]
    assert reply.text.startswith("Здравствуйте")
    assert len(reply.buttons) >= 3 and reply.buttons[-1].payload == "human"
    assert all(b.payload.startswith("entry:") for b in reply.buttons[:-1])


async def test_blocked_customer_gets_no_more_sends(bot: SupportBot, channel: RecordingChannel) -> None:
    from bot.errors import SendError

    channel.fail_next.append(SendError("HTTP 500"))
    result = await bot.receive(incoming("How can I pay?"))
    await bot.customer_blocked("test", "c1")
    rows = await stored_messages(bot, result.conversation_id or 0)
    assert rows[-1].status == "failed" and rows[-1].last_error == "customer blocked the bot"
    async with bot.database.session() as session:
        row = await session.get(Message, rows[-1].id)
        assert row is not None
    assert await bot.outbox.deliver() == 0


async def test_delivery_receipts_are_recorded(bot: SupportBot) -> None:
    result = await bot.receive(incoming("How can I pay?"))
    await bot.delivery_status("test", "p1", "read", None)
    rows = await stored_messages(bot, result.conversation_id or 0)
    assert rows[-1].platform_message_id == "p1" and rows[-1].delivery_status == "read"


async def test_a_late_receipt_never_steps_the_status_back(bot: SupportBot) -> None:
    result = await bot.receive(incoming("How can I pay?"))
    for status in ("read", "delivered", "sent"):
        await bot.delivery_status("test", "p1", status, None)
    rows = await stored_messages(bot, result.conversation_id or 0)
    assert rows[-1].delivery_status == "read"
    await bot.delivery_status("test", "p1", "failed", "131047: re-engagement message")
    rows = await stored_messages(bot, result.conversation_id or 0)
    assert rows[-1].delivery_status == "failed" and "131047" in (rows[-1].last_error or "")


async def test_nlu_workers_search_single_threaded(bot: SupportBot) -> None:
    """The engine runs one message per core; faiss must not start threads of its own inside a worker."""
    import asyncio

    import faiss
    from threadpoolctl import threadpool_info

    threads = await asyncio.get_running_loop().run_in_executor(bot.executor, faiss.omp_get_max_threads)
    assert threads == 1
    assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")


async def test_nul_characters_are_dropped_not_the_message(bot: SupportBot) -> None:
    """Messengers can send U+0000 (PostgreSQL's text columns refuse it: the message would be lost)."""
    answered = await bot.receive(
        incoming(
            "Сколько идёт\x00 доставка?", display_name="An\x00na", username="an\x00na", language_hint="ru"
        )
    )
    assert answered.decision is not None and answered.decision.label == "delivery_time"
    rows = await stored_messages(bot, answered.conversation_id or 0)
    assert (rows[0].direction, rows[0].text) == ("in", "Сколько идёт доставка?")
    handed = await bot.receive(incoming("I want a human\x00 please", customer="c2", msg_id="x\x00"))
    assert (await conversation(bot, handed.conversation_id or 0)).state == State.WAITING
    async with bot.database.session() as session:
        names = (await session.execute(select(Customer.display_name, Customer.username))).all()
    assert ("Anna", "anna") in [tuple(row) for row in names]


async def test_a_greeting_with_a_question_gets_the_question_answered(bot: SupportBot) -> None:
    result = await bot.receive(incoming("privet, gde moi zakaz 12345? uzhe nedelyu zhdu", customer="greeter"))
    assert result.decision is not None
    assert result.decision.label == "order_status", result.decision.summary()
    only_hello = await bot.receive(incoming("hello there!", customer="hello"))
    assert only_hello.decision is not None and only_hello.decision.label == "greet"


async def test_small_talk_around_a_question_is_looked_past(bot: SupportBot) -> None:
    from bot.nlu.policy import Decision

    matcher = bot.matcher()
    greeted = Decision("respond", "greet", 0.9, "intent")
    for text, entry in (
        ("Hi there! How long does delivery take?", "delivery_time"),
        ("Dzień dobry, jak długo trwa dostawa?", "delivery_time"),
        ("Спасибо! А как отменить заказ?", "order_cancel"),
    ):
        decision = matcher._beyond_small_talk(text, greeted)
        assert decision.label == entry, (text, decision.summary())
        assert decision.reason.endswith("+after_greet")
    assert matcher._beyond_small_talk("hello hello hello", greeted) is greeted

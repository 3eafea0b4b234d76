"""End to end through the engine and the agent API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from bot.app import SupportBot
from bot.states import State
from bot.web.app import create_app
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import Api, EventStream, desk_of, http_client, make_agent, wait_for
from tests.support.server import LiveServer


def texts(channel: RecordingChannel) -> list[str]:
    return [reply.text for _, reply in channel.sent]


async def test_customer_reaches_an_agent_and_comes_back_to_the_bot(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    desk = desk_of(bot)
    await make_agent(bot.database, "anna", name="Anna", languages=["en", "pl"])
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        # 1. the customer asks the bot, then for a person: queued, position 1, an honest estimate
        asked = await bot.receive(incoming("How can I pay for my order?", display_name="Jan Kowalski"))
        assert asked.decision is not None and asked.decision.kind == "answer"
        handed = await bot.receive(incoming("I want to talk to a human"))
        conversation_id = handed.conversation_id
        assert handed.state == State.WAITING
        told = handed.replies[0][1].text
        assert "number 1 in the queue" in told
        assert "Estimated wait: about 5 min" in told  # nobody online yet: one agent's default handling time
        assert told in texts(channel)
        await desk.drain()

        # 2. the agent logs in and goes online: the waiting conversation is assigned at once
        anna = await Api.login(client, "anna")
        async with EventStream(client, anna.token or "") as events:
            status = await anna.ok("PUT", "/agents/me/status", json={"status": "online"})
            assert status == {"status": "online", "assigned": [conversation_id], "requeued": []}
            await events.wait("assigned", conversation_id=conversation_id)
            await wait_for(lambda: "Anna from our team has joined the chat." in texts(channel), what="joined")

            mine = await anna.ok("GET", "/conversations", params={"mine": "true"})
            assert [(c["id"], c["state"], c["assigned_agent"]["login"]) for c in mine] == [
                (conversation_id, "with_agent", "anna")
            ]
            assert mine[0]["customer"]["name"] == "Jan Kowalski" and mine[0]["channel"] == "test"

            # 3. the card: the bot transcript, what was matched and answered, the profile
            detail = await anna.ok("GET", f"/conversations/{conversation_id}")
            card = detail["context"]
            assert card["reason"] == "human_request"
            assert card["transcript"][0]["text"] == "How can I pay for my order?"
            assert card["matched"][0]["label"] == "payment_methods" and card["matched"][0]["score"] > 0.5
            assert card["answered_entries"] == ["payment_methods"]
            assert card["customer"]["name"] == "Jan Kowalski" and card["customer"]["channel"] == "test"
            assert card["previous_conversations"] == []

            # 4. the agent's reply goes out through the customer's channel
            sent = await anna.ok(
                "POST", f"/conversations/{conversation_id}/messages", json={"text": "Hi Jan, Anna here."}
            )
            assert sent["sender"] == "agent" and sent["agent"] == "anna"
            await wait_for(lambda: "Hi Jan, Anna here." in texts(channel), what="agent reply delivered")
            delivered_to = next(
                target for target, reply in channel.sent if reply.text == "Hi Jan, Anna here."
            )
            assert delivered_to.chat_id == "c1" and delivered_to.conversation_id == conversation_id

            # 5. the customer's next message goes to the agent, not to the bot
            before = len(channel.sent)
            followup = await bot.receive(incoming("Thanks! Can I pay by BLIK?"))
            assert followup.state == State.WITH_AGENT and not followup.replies
            event = await events.wait("customer_message_for_agent", conversation_id=conversation_id)
            assert event["data"]["text"] == "Thanks! Can I pay by BLIK?"
            detail = await anna.ok("GET", f"/conversations/{conversation_id}")
            assert detail["messages"][-1]["text"] == "Thanks! Can I pay by BLIK?"
            assert len(channel.sent) == before  # the bot said nothing

        # 6. resolve: the customer is told, and the next message is the bot's again
        resolved = await anna.ok(
            "POST", f"/conversations/{conversation_id}/resolve", json={"reason": "answered"}
        )
        assert resolved["state"] == "resolved"
        await wait_for(lambda: any("conversation is closed" in t for t in texts(channel)), what="closing")
        again = await bot.receive(incoming("How can I pay for my order?"))
        assert again.state == State.BOT and again.conversation_id != conversation_id
        assert again.decision is not None and again.decision.kind == "answer"

        # the SLA clock recorded first response and resolution; the history says who had it
        detail = await anna.ok("GET", f"/conversations/{conversation_id}")
        assert detail["sla"]["first_response_seconds"] is not None
        assert detail["sla"]["resolution_seconds"] >= detail["sla"]["first_response_seconds"]
        assert [(a["agent"]["login"], a["end_reason"]) for a in detail["assignments"]] == [
            ("anna", "resolved")
        ]
        me = await anna.ok("GET", "/agents/me")
        assert me["load"] == 0

        # a later handoff shows the previous conversation and its outcome on the card
        await bot.receive(incoming("operator please, I want a person"))
        await desk.drain()
        mine = await anna.ok("GET", "/conversations", params={"mine": "true"})
        card = (await anna.ok("GET", f"/conversations/{mine[0]['id']}"))["context"]
        previous = card["previous_conversations"][0]
        assert previous["id"] == conversation_id and previous["agents"] == ["anna"]
        assert previous["resolution"] == "answered" and previous["outcome"] == "resolved by an agent"


async def test_waiting_customer_can_go_back_to_the_bot(bot: SupportBot) -> None:
    handed = await bot.receive(incoming("Соедините меня с оператором, пожалуйста", language_hint="ru"))
    assert handed.state == State.WAITING
    assert "Примерное время ожидания" in handed.replies[0][1].text
    back = await bot.receive(incoming(payload="bot"))
    assert back.state == State.BOT
    async with bot.database.session() as session:
        from bot.storage.repositories import ConversationRepository

        kinds = [e.kind for e in await ConversationRepository(session).events(handed.conversation_id or 0)]
    assert "queued" in kinds and "left_queue" in kinds
    await desk_of(bot).drain()

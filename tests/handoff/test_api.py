"""The agent API over real HTTP: authentication and roles, transfers and their audit trail, notes,
the messaging window, live events, and `supportbot agents add`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from bot.adapters.base import DeliveryTarget
from bot.app import SupportBot
from bot.storage.models import Message, utcnow
from bot.web.app import create_app
from tests.support.channel import RecordingChannel, incoming
from tests.support.cli import SUPPORTBOT, write_config
from tests.support.handoff import PASSWORD, Api, EventStream, desk_of, http_client, make_agent, wait_for
from tests.support.server import LiveServer


async def test_unauthenticated_and_wrong_role_calls_are_refused(bot: SupportBot) -> None:
    await make_agent(bot.database, "agent1")
    await make_agent(bot.database, "sup", role="supervisor")
    await make_agent(bot.database, "root", role="admin")
    handed = await bot.receive(incoming("I want to talk to a human"))
    await desk_of(bot).drain()
    cid = handed.conversation_id
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anonymous = Api(client)
        forged = Api(client, "not-a-real-token")
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/conversations", {}),
            ("GET", f"/conversations/{cid}", {}),
            ("GET", f"/conversations/{cid}/history", {}),
            ("POST", f"/conversations/{cid}/accept", {}),
            ("POST", f"/conversations/{cid}/messages", {"json": {"text": "hi"}}),
            ("POST", f"/conversations/{cid}/notes", {"json": {"text": "hi"}}),
            ("POST", f"/conversations/{cid}/transfer", {"json": {"queue": True}}),
            ("POST", f"/conversations/{cid}/resolve", {"json": {}}),
            ("PUT", "/agents/me/status", {"json": {"status": "online"}}),
            ("GET", "/agents/me", {}),
            ("GET", "/agents", {}),
            ("POST", "/agents", {"json": {"login": "x", "password": PASSWORD}}),
            ("GET", "/queue", {}),
            ("GET", "/events", {}),
        ]
        for method, path, kwargs in calls:
            for caller in (anonymous, forged):
                response = await caller.call(method, path, **kwargs)
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["detail"]["code"] == "unauthorized"

        # logging in: a wrong password and an unknown login get the same answer
        for login, password in (("agent1", "wrong password!"), ("nobody", PASSWORD)):
            response = await client.post("/api/v1/auth/login", json={"login": login, "password": password})
            assert (
                response.status_code == 401
                and response.json()["detail"]["message"] == "wrong login or password"
            )

        agent = await Api.login(client, "agent1")
        supervisor = await Api.login(client, "sup")
        admin = await Api.login(client, "root")
        new_agent = {"login": "nina", "password": PASSWORD, "languages": ["pl"], "capacity": 2}
        for method, path, kwargs in [
            ("GET", "/agents", {}),
            ("POST", "/agents", {"json": new_agent}),
            ("PATCH", "/agents/sup", {"json": {"capacity": 9}}),
            ("PUT", "/agents/sup/status", {"json": {"status": "offline"}}),
        ]:
            response = await agent.call(method, path, **kwargs)
            assert response.status_code == 403, (method, path, response.text)
            assert "role" in response.json()["detail"]["message"]
        assert (await supervisor.call("POST", "/agents", json=new_agent)).status_code == 403
        assert len(await supervisor.ok("GET", "/agents")) == 3

        # admins manage agents; bad input is a clear 4xx
        created = await admin.ok("POST", "/agents", json=new_agent)
        assert created["login"] == "nina" and created["role"] == "agent" and created["capacity"] == 2
        duplicate = await admin.call("POST", "/agents", json=new_agent)
        assert duplicate.status_code == 409 and duplicate.json()["detail"]["code"] == "duplicate_agent"
        short = await admin.call("POST", "/agents", json={"login": "pat", "password": "short"})
        assert short.status_code == 422
        bad_language = await admin.call(
            "POST", "/agents", json={**new_agent, "login": "ola", "languages": ["?!"]}
        )
        assert bad_language.status_code == 422 and "language" in bad_language.json()["detail"]["message"]
        nina = await Api.login(client, "nina")
        assert (await nina.ok("GET", "/agents/me"))["languages"] == ["pl"]
        assert (await agent.call("PUT", "/agents/me/status", json={"status": "busy"})).status_code == 422

        # an agent sees the queue, but not a conversation another agent holds
        assert [c["id"] for c in await agent.ok("GET", "/conversations", params={"state": "waiting"})] == [
            cid
        ]
        await nina.ok("POST", f"/conversations/{cid}/accept")
        hidden = await agent.call("GET", f"/conversations/{cid}")
        assert hidden.status_code == 403 and hidden.json()["detail"]["code"] == "forbidden"
        assert (await agent.call("GET", f"/conversations/{cid}/history")).status_code == 403
        assert (await agent.call("POST", f"/conversations/{cid}/resolve", json={})).status_code == 403
        assert (await agent.ok("GET", "/conversations")) == []
        assert (await supervisor.ok("GET", f"/conversations/{cid}"))["assigned_agent"]["login"] == "nina"
        assert (await agent.call("GET", "/conversations/999999")).status_code == 404

        # deactivating an agent sends them offline (their conversation back to the queue) and ends their tokens
        patched = await admin.ok("PATCH", "/agents/nina", json={"active": False})
        assert patched["active"] is False and patched["status"] == "offline" and patched["load"] == 0
        assert (await nina.call("GET", "/agents/me")).status_code == 401
        response = await client.post("/api/v1/auth/login", json={"login": "nina", "password": PASSWORD})
        assert response.status_code == 401
        assert (await supervisor.ok("GET", f"/conversations/{cid}"))["state"] == "waiting"

        # logging out ends the token
        assert (await agent.call("POST", "/auth/logout")).status_code == 204
        assert (await agent.call("GET", "/agents/me")).status_code == 401

        # the OpenAPI document describes the API and its bearer scheme
        spec = (await client.get("/openapi.json")).json()
        for path in (
            "/api/v1/auth/login",
            "/api/v1/agents/me/status",
            "/api/v1/conversations",
            "/api/v1/conversations/{conversation_id}",
            "/api/v1/conversations/{conversation_id}/accept",
            "/api/v1/conversations/{conversation_id}/messages",
            "/api/v1/conversations/{conversation_id}/notes",
            "/api/v1/conversations/{conversation_id}/transfer",
            "/api/v1/conversations/{conversation_id}/resolve",
            "/api/v1/events",
        ):
            assert path in spec["paths"], path
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_transfers_are_audited_so_we_know_who_had_the_conversation(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    await make_agent(bot.database, "anna", name="Anna")
    await make_agent(bot.database, "boris", name="Boris")
    await make_agent(bot.database, "cora", name="Cora", capacity=1)
    await make_agent(bot.database, "dan", name="Dan")
    await make_agent(bot.database, "sup", role="supervisor")
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna, boris, cora, dan, sup = [
            await Api.login(client, login) for login in ("anna", "boris", "cora", "dan", "sup")
        ]
        for agent in (anna, boris, cora):
            await agent.ok("PUT", "/agents/me/status", json={"status": "online"})
        handed = await bot.receive(incoming("I want to talk to a human", customer="moving"))
        await desk_of(bot).drain()
        cid = handed.conversation_id
        mine = await anna.ok("GET", "/conversations", params={"mine": "true"})
        assert [c["id"] for c in mine] == [cid]  # all equal: the first agent to have waited longest

        # clear 4xx for transfers that cannot happen
        offline = await anna.call("POST", f"/conversations/{cid}/transfer", json={"agent_login": "dan"})
        assert offline.status_code == 409 and "dan is offline" in offline.json()["detail"]["message"]
        unknown = await anna.call("POST", f"/conversations/{cid}/transfer", json={"agent_login": "ghost"})
        assert unknown.status_code == 404
        both = await anna.call(
            "POST", f"/conversations/{cid}/transfer", json={"agent_login": "boris", "queue": True}
        )
        assert both.status_code == 422
        not_hers = await boris.call("POST", f"/conversations/{cid}/transfer", json={"queue": True})
        assert not_hers.status_code == 403
        not_yours = await boris.call("POST", f"/conversations/{cid}/messages", json={"text": "hello"})
        assert not_yours.status_code == 409
        blank = await anna.call("POST", f"/conversations/{cid}/messages", json={"text": "   "})
        assert blank.status_code == 422

        # anna -> boris -> the queue -> cora takes it
        await anna.ok("POST", f"/conversations/{cid}/messages", json={"text": "Let me find a colleague."})
        moved = await anna.ok(
            "POST", f"/conversations/{cid}/transfer", json={"agent_login": "boris", "reason": "refunds"}
        )
        assert moved["assigned_agent"]["login"] == "boris" and moved["state"] == "with_agent"
        await wait_for(
            lambda: any(r.text == "Boris from our team has joined the chat." for _, r in channel.sent)
        )
        back = await boris.ok(
            "POST", f"/conversations/{cid}/transfer", json={"queue": True, "reason": "wrong team"}
        )
        assert back["state"] == "waiting" and back["assigned_agent"] is None and back["queue_position"] == 1
        # the agent who handed it back is the last choice for it: boris has as much room as anna and waited
        # longer since his last assignment, yet the assigner gives it to anna
        await desk_of(bot).assign()
        holder = (await sup.ok("GET", f"/conversations/{cid}"))["assigned_agent"]["login"]
        assert holder == "anna"
        # everyone steps away (no automatic assignment), the conversation goes back to the queue,
        # and cora takes it by hand
        for agent in (boris, cora, anna):
            await agent.ok("PUT", "/agents/me/status", json={"status": "away"})
        await anna.ok("POST", f"/conversations/{cid}/transfer", json={"queue": True})
        taken = await cora.ok("POST", f"/conversations/{cid}/accept")
        assert taken["assigned_agent"]["login"] == "cora"

        # cora is at capacity (1): she cannot take another one
        other = await bot.receive(incoming("I want to talk to a human", customer="second"))
        await desk_of(bot).drain()
        full = await cora.call("POST", f"/conversations/{other.conversation_id}/accept")
        assert full.status_code == 409 and "capacity" in full.json()["detail"]["message"]

        # a note is for agents only
        note = await cora.ok(
            "POST", f"/conversations/{cid}/notes", json={"text": "Refund approved by finance."}
        )
        assert note["author"] == "cora"
        assert all(r.text != "Refund approved by finance." for _, r in channel.sent)

        # "who had this conversation and when": the audit trail answers it (anna may look: she had it)
        history = await anna.ok("GET", f"/conversations/{cid}/history")
        holders = [(a["agent"]["login"], a["how"], a["end_reason"]) for a in history["assignments"]]
        assert holders[:2] == [("anna", "auto", "transferred"), ("boris", "transfer", "transferred_to_queue")]
        assert holders[2:] == [("anna", "auto", "transferred_to_queue"), ("cora", "take", None)]
        for a in history["assignments"]:
            assert a["assigned_at"] and (a["ended_at"] or a["end_reason"] is None)
        transfers = [
            (e["actor"], e["data"]["to"], e["data"]["reason"])
            for e in history["events"]
            if e["kind"] == "transferred"
        ]
        assert transfers[:2] == [("agent:anna", "boris", "refunds"), ("agent:boris", "queue", "wrong team")]
        detail = await cora.ok("GET", f"/conversations/{cid}")
        assert [n["text"] for n in detail["notes"]] == ["Refund approved by finance."]
        assert [m["agent"] for m in detail["messages"] if m["sender"] == "agent"] == ["anna"]
        assert (await dan.call("GET", f"/conversations/{cid}")).status_code == 403

        # supervisors see everything and can move any conversation
        everything = await sup.ok("GET", "/conversations")
        assert {c["id"] for c in everything} == {cid, other.conversation_id}
        await sup.ok("POST", f"/conversations/{cid}/resolve", json={"reason": "refund issued"})
        assert (await cora.ok("GET", "/agents/me"))["load"] == 0


class WindowChannel(RecordingChannel):
    """A channel with WhatsApp's rule: free text only within 24 hours of the customer's last message."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.templates: list[DeliveryTarget] = []

    def free_form_window(self) -> timedelta:
        return timedelta(hours=24)

    async def send_template(self, target: DeliveryTarget) -> str:
        self.templates.append(target)
        return f"template-{len(self.templates)}"


async def test_reply_outside_the_messaging_window_is_refused_clearly(bot: SupportBot) -> None:
    windowed = WindowChannel("test")
    bot.channels["test"] = windowed  # the same dict the outbox and the desk read
    await make_agent(bot.database, "anna", status="online")
    yesterday = utcnow() - timedelta(hours=25)
    handed = await bot.receive(incoming("I want to talk to a human", customer="late", timestamp=yesterday))
    await desk_of(bot).drain()
    cid = handed.conversation_id
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna = await Api.login(client, "anna")
        refused = await anna.call(
            "POST", f"/conversations/{cid}/messages", json={"text": "Sorry for the delay!"}
        )
        assert refused.status_code == 409
        detail = refused.json()["detail"]
        assert detail["code"] == "outside_messaging_window"
        assert "24-hour" in detail["message"] and "template" in detail["message"]
        stored = await anna.ok("GET", f"/conversations/{cid}")
        assert all(m["text"] != "Sorry for the delay!" for m in stored["messages"])
        # what the agent can do instead: send the re-engagement template
        sent = await anna.ok("POST", f"/conversations/{cid}/template")
        assert sent["status"] == "sent" and sent["sender"] == "agent" and sent["sent_at"] is not None
        async with bot.database.session() as session:
            stored = await session.get(Message, sent["id"])
            assert stored is not None
            assert (stored.status, stored.platform_message_id, stored.attempts) == ("sent", "template-1", 1)
        assert [t.chat_id for t in windowed.templates] == ["late"]
        # once the customer writes again, the window is open
        await bot.receive(incoming("hello?", customer="late"))
        await anna.ok("POST", f"/conversations/{cid}/messages", json={"text": "Sorry for the delay!"})
        await wait_for(lambda: any(r.text == "Sorry for the delay!" for _, r in windowed.sent))


async def test_live_events_go_to_the_agent_concerned_and_sla_to_supervisors(bot: SupportBot) -> None:
    desk = desk_of(bot)
    await make_agent(bot.database, "anna", capacity=1)
    await make_agent(bot.database, "boris", capacity=1)
    await make_agent(bot.database, "sup", role="supervisor")
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna, boris, sup = [await Api.login(client, login) for login in ("anna", "boris", "sup")]
        async with (
            EventStream(client, anna.token or "") as anna_events,
            EventStream(client, boris.token or "") as boris_events,
            EventStream(client, sup.token or "") as sup_events,
        ):
            await anna.ok("PUT", "/agents/me/status", json={"status": "online"})
            first = await bot.receive(incoming("I want to talk to a human", customer="one"))
            await desk.drain()
            await anna_events.wait("assigned", conversation_id=first.conversation_id)
            await boris_events.wait("assigned", conversation_id=first.conversation_id)  # a queue change
            await bot.receive(incoming("my parcel is late", customer="one"))
            await anna_events.wait("customer_message_for_agent", conversation_id=first.conversation_id)
            second = await bot.receive(incoming("I want to talk to a human", customer="two"))
            await boris_events.wait("queued", conversation_id=second.conversation_id)
            flagged = await desk.timers.flag_sla(
                utcnow() + timedelta(seconds=bot.settings.handoff.sla_first_response + 1)
            )
            assert set(flagged) == {first.conversation_id, second.conversation_id}
            await sup_events.wait("sla_breached", conversation_id=second.conversation_id)
            await sup_events.wait("customer_message_for_agent", conversation_id=first.conversation_id)
            # a marker event both agents see, so "nothing else arrived" is checked after it
            await boris.ok("PUT", "/agents/me/status", json={"status": "online"})
            await anna_events.wait("assigned", conversation_id=second.conversation_id)
            await boris_events.wait("assigned", conversation_id=second.conversation_id)
            assert "customer_message_for_agent" not in boris_events.kinds()
            assert "sla_breached" not in anna_events.kinds() + boris_events.kinds()
            queue = await sup.ok("GET", "/queue")
            assert queue["waiting"] == 0 and queue["online_agents"] == 2 and queue["free_slots"] == 0


def test_agents_add_command_creates_an_agent_who_can_log_in(tmp_path: Path, index_cache: Path) -> None:
    config = write_config(tmp_path, index_cache)
    command = [
        SUPPORTBOT,
        "--config",
        str(config),
        "agents",
        "add",
        "--login",
        "olga",
        "--password",
        PASSWORD,
    ]
    done = subprocess.run(
        [*command, "--name", "Olga", "--languages", "ru,uk", "--capacity", "4", "--role", "supervisor"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    created = json.loads(done.stdout)
    assert (
        created["login"],
        created["name"],
        created["languages"],
        created["capacity"],
        created["role"],
    ) == (
        "olga",
        "Olga",
        ["ru", "uk"],
        4,
        "supervisor",
    )
    with sqlite3.connect(tmp_path / "var" / "bot.db") as db:
        (stored,) = db.execute("SELECT password_hash FROM agents WHERE login = 'olga'").fetchone()
    assert stored.startswith("$argon2") and PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "an agent with login 'olga' already exists" in again.stderr
    weak_command = [
        SUPPORTBOT,
        "--config",
        str(config),
        "agents",
        "add",
        "--login",
        "pat",
        "--password",
        "123",
    ]
    weak = subprocess.run(weak_command, capture_output=True, text=True, timeout=120)
    assert weak.returncode == 2 and "at least 8 characters" in weak.stderr
    listed = subprocess.run(
        [SUPPORTBOT, "--config", str(config), "agents", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert [json.loads(line)["login"] for line in listed.stdout.splitlines()] == ["olga"]


async def test_numbers_no_row_can_have_get_a_clear_answer(bot: SupportBot) -> None:
    # Found by fuzzing: ids and offsets beyond what the database stores reached the driver and came back 500
    await make_agent(bot.database, "root", role="admin")
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        admin = await Api.login(client, "root")
        too_big = str(2**31)  # ids are 32-bit on PostgreSQL; 2**63 and beyond overflowed SQLite too
        for huge in (too_big, "99999999999999999999999"):
            for method, path, kwargs in (
                ("GET", f"/conversations/{huge}", {}),
                ("GET", f"/conversations/{huge}/history", {}),
                ("POST", f"/conversations/{huge}/accept", {}),
                ("POST", f"/conversations/{huge}/messages", {"json": {"text": "hi"}}),
                ("POST", f"/conversations/{huge}/template", {}),
                ("POST", f"/conversations/{huge}/notes", {"json": {"text": "hi"}}),
                ("POST", f"/conversations/{huge}/transfer", {"json": {"queue": True}}),
                ("POST", f"/conversations/{huge}/resolve", {"json": {}}),
                ("GET", f"/console/conversations/{huge}/suggestions", {}),
                ("GET", "/conversations", {"params": {"offset": huge}}),
                ("GET", "/events", {"params": {"after": huge}}),
            ):
                response = await admin.call(method, path, **kwargs)
                assert response.status_code == 422, (method, path, response.text)
                assert response.json()["detail"][0]["type"] == "less_than_equal"
        assert (await admin.call("GET", "/conversations/-1")).status_code == 422
        assert (await admin.call("GET", f"/conversations/{2**31 - 1}")).status_code == 404
        assert (await admin.ok("GET", "/conversations", params={"offset": 2**31 - 1})) == []

        # a Last-Event-ID that is no event id is ignored, as a non-numeric one always was
        for last_event_id in ("99999999999999999999999", "²".encode("latin-1")):
            headers = {**admin.headers, "Last-Event-ID": last_event_id}
            async with client.stream("GET", "/api/v1/events", headers=headers) as response:
                assert response.status_code == 200
                lines = response.aiter_lines()
                assert await anext(lines) == "retry: 2000"
                await bot.receive(incoming("I want to talk to a human", customer=f"c-{len(last_event_id)}"))
                await desk_of(bot).drain()
                while await anext(lines) != "event: queued":
                    pass

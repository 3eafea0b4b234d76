"""The knowledge workspace's API (/api/v1/kb) over real HTTP, on SQLite and PostgreSQL: an editor edits an
entry (only that entry changes in its file), the running bot answers with the new text without a restart,
a stale version or a file changed on disk is a 412 with the current version, a save `kb check` refuses
leaves the file as it was, the history has every change and a revert puts back the exact earlier text;
agents get 403 here and editors 403 on the conversations."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.web.app import create_app
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import Api, http_client, make_agent, wait_for
from tests.support.paths import REPO
from tests.support.server import LiveServer

XSS = "<img src=x onerror=alert(1)>"
QUESTION = "How long does delivery take?"
FIELDS = ("title", "tags", "questions", "answer", "handoff", "action")


@pytest.fixture
async def running_bot(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    channel: RecordingChannel,
    tmp_path: Path,
) -> AsyncIterator[SupportBot]:
    """The demo content copied to tmp_path, served as `supportbot run` serves it (with the file watcher)."""
    shutil.copytree(REPO / "kb", tmp_path / "kb")
    shutil.copytree(REPO / "intents", tmp_path / "intents")
    settings = make_settings(kb={"path": str(tmp_path / "kb")}, intents={"path": str(tmp_path / "intents")})
    instance = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    await instance.start(background=True, progress=False)
    yield instance
    await instance.close()


def body_of(entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What the form sends back: the entry as GET gave it (its own title, not the shown one), changed."""
    return {**{key: entry[key] for key in FIELDS}, "title": entry["own_title"], **changes}


async def answer_to(bot: SupportBot, text: str, customer: str) -> str:
    result = await bot.receive(incoming(text, customer=customer))
    return result.replies[0][1].text if result.replies else ""


async def test_editors_edit_try_and_revert(running_bot: SupportBot, tmp_path: Path) -> None:
    bot = running_bot
    for login, role in (("ed", "editor"), ("anna", "agent"), ("sup", "supervisor"), ("root", "admin")):
        await make_agent(bot.database, login, role=role, status="online" if login == "anna" else None)
    path = tmp_path / "kb" / "delivery.yaml"
    original = path.read_bytes()

    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        ed, anna, sup = [await Api.login(client, login) for login in ("ed", "anna", "sup")]
        # roles: agents may not edit, editors may not see conversations, supervisors may edit
        assert (await Api(client).call("GET", "/kb/entries")).status_code == 401
        assert (await anna.call("GET", "/kb/entries")).status_code == 403
        assert (await anna.call("POST", "/kb/try", json={"text": QUESTION})).status_code == 403
        for method, where in (("GET", "/queue"), ("GET", "/conversations"), ("PUT", "/agents/me/status")):
            refused = await ed.call(method, where, json={"status": "online"})
            assert refused.status_code == 403, (method, where, refused.text)
        assert (await ed.call("GET", "/answers")).status_code == 200  # how answers land: theirs too
        assert (await ed.call("GET", "/stats")).status_code == 403
        root = await Api.login(client, "root")  # an agent made an editor goes offline, and may edit
        made = await root.ok("PATCH", "/agents/anna", json={"role": "editor"})
        assert (made["role"], made["status"]) == ("editor", "offline")
        assert (await anna.call("GET", "/kb/entries")).status_code == 200
        assert (await anna.call("GET", "/queue")).status_code == 403

        # the list: a version per entry, files, tags, gaps; search by text and by meaning, filter by tag
        listed = await ed.ok("GET", "/kb/entries")
        assert "delivery.yaml" in listed["files"] and "delivery" in listed["tags"]
        entries = {e["id"]: e for e in listed["entries"]}
        delivery = entries["delivery_time"]
        assert delivery["question_counts"] == {"en": 6, "ru": 6, "pl": 6, "uk": 6}
        assert delivery["missing_answers"] == [] and delivery["file"] == str(path)
        found = await ed.ok("GET", "/kb/entries", params={"q": "nova poshta", "tag": "delivery"})
        assert "delivery_time" in [e["id"] for e in found["entries"]]
        closest = await ed.ok("GET", "/kb/entries", params={"meaning": "when does my parcel come"})
        assert closest["entries"][0]["id"] == "delivery_time" and closest["entries"][0]["score"] > 0
        one = await ed.call("GET", "/kb/entries/delivery_time")
        assert one.headers["etag"] == f'"{delivery["etag"]}"' and one.json() == delivery

        # a save: only the edited line changes; the bot answers with it at once, without a restart
        new_answer = f"Delivery takes two days. {XSS}"
        changed = body_of(delivery, answer={**delivery["answer"], "en": new_answer})
        assert (await ed.call("PUT", "/kb/entries/delivery_time", json=changed)).status_code == 428
        saved = await ed.call(
            "PUT", "/kb/entries/delivery_time", json=changed, headers={"If-Match": one.headers["etag"]}
        )
        assert saved.status_code == 200, saved.text
        after = saved.json()["entry"]
        assert saved.headers["etag"] == f'"{after["etag"]}"' != one.headers["etag"]
        old_line = next(
            line for line in delivery["text"].splitlines() if line.startswith('    en: "Delivery')
        )
        assert path.read_text(encoding="utf-8") == original.decode().replace(
            old_line, f'    en: "{new_answer}"'
        )
        asked = iter(range(1000))

        async def answers_anew() -> bool:
            return new_answer in await answer_to(bot, QUESTION, f"customer-{next(asked)}")

        await wait_for(answers_anew, within=60, what="the running bot answering with the saved text")

        # a second editor (here: a supervisor) still holding the old version: 412 with the current one
        stale = await sup.call(
            "PUT", "/kb/entries/delivery_time", json=body_of(delivery), headers={"If-Match": delivery["etag"]}
        )
        assert stale.status_code == 412
        assert stale.json()["detail"]["code"] == "stale"
        assert stale.json()["detail"]["current"]["answer"]["en"] == new_answer
        assert stale.json()["detail"]["current"]["etag"] == after["etag"]

        # a save kb check refuses: 422 with file, line and field; the file is left as it was
        saved_bytes = path.read_bytes()
        no_polish = body_of(after, answer={k: v for k, v in after["answer"].items() if k != "pl"})
        refused = await ed.call(
            "PUT", "/kb/entries/delivery_time", json=no_polish, headers={"If-Match": after["etag"]}
        )
        assert refused.status_code == 422
        [problem] = refused.json()["detail"]["problems"]
        assert (problem["file"], problem["line"], problem["field"]) == (
            "delivery.yaml",
            after["line"],
            "answer.pl",
        )
        taken = body_of(
            after,
            questions={
                **after["questions"],
                "en": [*after["questions"]["en"], "How much does delivery cost?"],
            },
        )
        refused = await ed.call(
            "PUT", "/kb/entries/delivery_time", json=taken, headers={"If-Match": after["etag"]}
        )
        assert refused.status_code == 422
        [problem] = refused.json()["detail"]["problems"]  # named where the other entry has it
        assert problem["field"] == "questions.en" and "How much does delivery cost?" in problem["message"]
        assert path.read_bytes() == saved_bytes

        # try it: as saved, and with an unsaved draft (a new entry too close to delivery_time)
        tried = await ed.ok("POST", "/kb/try", json={"text": QUESTION})
        assert (tried["decision"], tried["entry"], tried["answer"], tried["language"]) == (
            "answer",
            "delivery_time",
            new_answer,
            "en",
        )
        assert tried["candidates"][0]["label"] == "delivery_time" and tried["draft"] is False
        draft = {
            "id": "moon_delivery",
            "questions": {
                "en": [
                    "Do you deliver to the Moon?",
                    "How long does delivery to the Moon take?",
                    "When will my parcel arrive on the Moon?",
                ]
            },
            "answer": {"en": "Not yet."},
        }
        moon = await ed.ok("POST", "/kb/try", json={"text": "Can you ship to the Moon?", "draft": draft})
        assert (moon["entry"], moon["answer"], moon["draft"]) == ("moon_delivery", "Not yet.", True)
        assert any("hard to tell from 'delivery_time'" in w for w in moon["warnings"]), moon["warnings"]
        assert (await ed.ok("GET", "/kb/entries/delivery_time"))["etag"] == after["etag"]  # nothing saved

        # history and revert: the file is byte for byte what it was
        history = await ed.ok("GET", "/kb/entries/delivery_time/history")
        [event] = history["events"]
        assert (event["kind"], event["by"], event["before"], event["after"]) == (
            "kb_entry_saved",
            "agent:ed",
            delivery["text"],
            after["text"],
        )
        reverted = await sup.ok("POST", "/kb/entries/delivery_time/revert", json={"event_id": event["id"]})
        assert path.read_bytes() == original
        assert reverted["entry"]["etag"] == delivery["etag"]
        history = await ed.ok("GET", "/kb/entries/delivery_time/history")
        assert [e["kind"] for e in history["events"]] == ["kb_entry_reverted", "kb_entry_saved"]
        assert history["events"][0]["reverted"] == event["id"]

        # a file changed on disk (a git pull) is a stale version too
        pulled = original.decode().replace("1-3 working days in Poland", "1-2 working days in Poland")
        path.write_text(pulled, encoding="utf-8")
        again = await ed.call(
            "PUT", "/kb/entries/delivery_time", json=changed, headers={"If-Match": delivery["etag"]}
        )
        assert again.status_code == 412 and "1-2 working days" in again.json()["detail"]["current"]["text"]
        assert path.read_text(encoding="utf-8") == pulled

        # a new entry into a chosen file, then deleted: both in its history
        new = {
            "id": "gift_wrap",
            "file": "store.yaml",
            "tags": ["store"],
            "questions": {"en": ["Do you gift wrap?"]},
            "answer": {lang: "Yes." for lang in ("en", "ru", "pl", "uk")},
        }
        created = await client.post("/api/v1/kb/entries", json=new, headers=ed.headers)
        assert created.status_code == 201, created.text
        store = tmp_path / "kb" / "store.yaml"
        assert store.read_text(encoding="utf-8").endswith(created.json()["entry"]["text"])
        assert (
            await ed.call("DELETE", "/kb/entries/gift_wrap", headers={"If-Match": '"nope"'})
        ).status_code == 412
        deleted = await ed.call(
            "DELETE", "/kb/entries/gift_wrap", headers={"If-Match": created.headers["etag"]}
        )
        assert deleted.status_code == 200 and deleted.json()["entry"] is None
        assert (await ed.call("GET", "/kb/entries/gift_wrap")).status_code == 404
        kinds = [e["kind"] for e in (await ed.ok("GET", "/kb/entries/gift_wrap/history"))["events"]]
        assert kinds == ["kb_entry_deleted", "kb_entry_created"]

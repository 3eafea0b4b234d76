"""Suggested KB entries from agents' answers, over real HTTP on a running bot: grouping, placeholders,
accept (a valid entry the bot then answers with), dismiss (remembered), new wording for a covered entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.app import SupportBot
from bot.content.check import check_content
from bot.learning import review
from bot.storage.models import Event
from bot.web.app import create_app
from tests.learning.history import GIFT_WRAPPING, PERSONAL, RETURNS, RETURNS_LATER, STUDENTS, hold
from tests.support.channel import incoming
from tests.support.handoff import Api, http_client, make_agent
from tests.support.server import LiveServer

GIFT_ANSWER = {
    "en": 'Yes, we gift-wrap any order for 9 zł: tick "Gift wrapping" in the basket before you pay.',
    "ru": "Да, подарочная упаковка любого заказа стоит 9 злотых: отметьте «Подарочная упаковка» в корзине.",
    "pl": "Tak, pakujemy każde zamówienie na prezent za 9 zł: zaznacz „Pakowanie na prezent” w koszyku.",
    "uk": "Так, подарункове пакування будь-якого замовлення коштує 9 злотих: позначте його в кошику.",
}


async def events(bot: SupportBot) -> list[tuple[str, str, dict[str, Any]]]:
    async with bot.database.session() as session:
        rows = await session.execute(select(Event).where(Event.kind.like("suggestion_%")).order_by(Event.id))
        return [(e.kind, e.actor, e.data) for e in rows.scalars()]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # PostgreSQL: the test below
async def test_agents_answers_become_entries_the_bot_answers(
    editable_bot: SupportBot, tmp_path: Path
) -> None:
    bot = editable_bot
    agent = await make_agent(bot.database, "olga", name="Olga Wiśniewska")
    await make_agent(bot.database, "sup", role="supervisor")
    gift = [await hold(bot, talk, agent.id) for talk in GIFT_WRAPPING]
    returns = [await hold(bot, talk, agent.id) for talk in RETURNS]
    for talk in STUDENTS:  # two conversations: below learning.min_conversations
        await hold(bot, talk, agent.id)
    returns_file = tmp_path / "kb" / "returns.yaml"
    returns_before = returns_file.read_text(encoding="utf-8")

    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna = await Api.login(client, "olga")
        sup = await Api.login(client, "sup")
        for caller, status in ((Api(client), 401), (anna, 403)):
            assert (await caller.call("GET", "/suggestions")).status_code == status
            assert (await caller.call("POST", "/suggestions/0123456789ab/dismiss")).status_code == status
        found = await sup.ok("GET", "/suggestions")
        listed = json.dumps(found, ensure_ascii=False)
        assert [word for word in PERSONAL if word.casefold() in listed.casefold()] == []  # no personal data
        assert "customer care" not in listed  # the console's canned greeting is no answer
        [wrapping, wording] = found["suggestions"]

        # gift wrapping: four conversations in three languages, a new subject next to gift cards
        assert (wrapping["kind"], wrapping["conversations"]) == ("new_entry", gift)
        assert {q["language"] for q in wrapping["questions"]} == {"en", "ru", "pl"}
        assert "hi" not in [q["text"] for q in wrapping["questions"]]  # greetings are not questions
        assert {q["text"] for q in wrapping["questions"]} >= {
            "Do you offer gift wrapping?",
            "Можете упаковать заказ как подарок?",
            "Czy pakujecie zamówienia na prezent?",
        }
        assert sorted(wrapping["answer"]) == ["en", "pl", "ru"] and wrapping["missing_languages"] == ["uk"]
        assert "{name}" in wrapping["answer"]["ru"] and set(wrapping["placeholders"]) >= {"{name}"}
        assert wrapping["answer_similarity"] < bot.settings.learning.answer_similarity

        # the return questions: a covered subject in words the bot missed, answered as return_how_to says
        assert (wording["kind"], wording["entry"], wording["conversations"]) == (
            "add_questions",
            "return_how_to",
            returns,
        )
        assert wording["answer_similarity"] >= bot.settings.learning.answer_similarity

        # refused as suggested: personal data placeholders (and no Ukrainian answer); nothing written
        path = f"/suggestions/{wrapping['id']}/accept"
        refused = await sup.call("POST", path)
        assert refused.status_code == 422 and "placeholders" in refused.json()["detail"]["message"]
        no_uk = {"en": GIFT_ANSWER["en"], "ru": GIFT_ANSWER["ru"], "pl": GIFT_ANSWER["pl"]}
        refused = await sup.call("POST", path, json={"answer": no_uk})
        assert refused.status_code == 422 and "no answer in 'uk'" in refused.json()["detail"]["message"]
        assert not (tmp_path / "kb" / "suggested.yaml").exists()

        # dismissed: gone, and stays gone
        dismissed = await sup.ok("POST", f"/suggestions/{wording['id']}/dismiss")
        assert dismissed == {"id": wording["id"], "conversations": returns}
        assert [s["id"] for s in (await sup.ok("GET", "/suggestions"))["suggestions"]] == [wrapping["id"]]

        # accepted as edited: a valid entry in kb/suggested.yaml, and the bot answers with it at once
        accepted = await sup.ok("POST", path, json={"entry": "gift_wrapping", "answer": GIFT_ANSWER})
        written = tmp_path / "kb" / "suggested.yaml"
        assert accepted == {
            "id": wrapping["id"],
            "kind": "new_entry",
            "entry": "gift_wrapping",
            "file": str(written),
            "line": 2,
        }
        assert check_content(bot.settings).problems == []
        entry = yaml.safe_load(written.read_text(encoding="utf-8"))[0]
        assert entry["id"] == "gift_wrapping" and entry["answer"] == GIFT_ANSWER
        assert {lang: len(texts) for lang, texts in entry["questions"].items()} == {"en": 2, "ru": 1, "pl": 1}
        answer = (await bot.receive(incoming("Do you offer gift wrapping?", customer="later"))).decision
        assert answer is not None and (answer.kind, answer.label) == ("answer", "gift_wrapping")
        assert (await sup.ok("GET", "/suggestions"))["suggestions"] == []

        # one more conversation joins the dismissed group: it is back, with a new id, and accepted
        returns.append(await hold(bot, RETURNS_LATER, agent.id))
        [back] = (await sup.ok("GET", "/suggestions"))["suggestions"]
        assert (back["kind"], back["conversations"]) == ("add_questions", returns) and back["id"] != wording[
            "id"
        ]
        added = await sup.ok("POST", f"/suggestions/{back['id']}/accept")
        assert (added["entry"], added["file"]) == ("return_how_to", str(returns_file))
        assert returns_file.read_text(encoding="utf-8") != returns_before
        answer = (
            await bot.receive(incoming("I changed my mind about the jacket, what now", customer="l2"))
        ).decision
        assert answer is not None and (answer.kind, answer.label) == ("answer", "return_how_to")

    assert [(kind, who, data["suggestion"]) for kind, who, data in await events(bot)] == [
        ("suggestion_dismissed", "agent:sup", wording["id"]),
        ("suggestion_accepted", "agent:sup", wrapping["id"]),
        ("suggestion_accepted", "agent:sup", back["id"]),
    ]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_suggestions_and_dismissals_on_postgresql(editable_bot: SupportBot) -> None:
    bot = editable_bot
    agent = await make_agent(bot.database, "olga")
    sup = await make_agent(bot.database, "sup", role="supervisor")
    returns = [await hold(bot, talk, agent.id) for talk in RETURNS]
    [wording] = await review.current_suggestions(bot)
    assert (wording.kind, wording.entry, wording.conversations) == ("add_questions", "return_how_to", returns)
    await review.dismiss(bot, sup, wording.id)
    assert await review.current_suggestions(bot) == []
    returns.append(await hold(bot, RETURNS_LATER, agent.id))
    [back] = await review.current_suggestions(bot)
    assert back.conversations == returns and back.id != wording.id

"""Adding a question to a KB entry or an out-of-scope example edits one line; the rest stays byte for byte."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings
from bot.content.check import check_content
from bot.content.edit import AlreadyPresent, UnknownEntry, add_out_of_scope_example, add_question
from bot.content.intents import load_intents
from bot.content.knowledge import load_knowledge_base
from bot.errors import ContentError
from tests.support.paths import REPO

ANSWERS = '{en: "A.", ru: "А.", pl: "A.", uk: "А."}'

# hand-written styles the editor must cope with: block lists with comments, one string, no pl questions
KB = f"""# Hand-written entries.  Comments stay.

- id: opening_hours   # the shop's hours
  questions:
    en:
      - When are you open?   # plain
      - "What time do you close?"
    # no Russian questions yet
    ru: Когда вы открыты?
    uk: ["Коли ви працюєте?"]
  answer: {ANSWERS}

- id: gift_wrap
  questions:
    en: ["Do you gift wrap?"]
  answer: {ANSWERS}
"""

INTENTS = """version: "3.1"
nlu:
# what the bot must not answer
- intent: oos
  examples: |
    - tell me a joke
    - what is the meaning of life

# conversation
- intent: greet
  examples: |
    - hello
"""


@pytest.fixture
def content(tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    (tmp_path / "kb").mkdir()
    (tmp_path / "intents").mkdir()
    (tmp_path / "kb" / "shop.yaml").write_text(KB, encoding="utf-8")
    (tmp_path / "intents" / "nlu.yml").write_text(INTENTS, encoding="utf-8")
    settings = make_settings(kb={"path": str(tmp_path / "kb")}, intents={"path": str(tmp_path / "intents")})
    assert check_content(settings).problems == []
    return settings


def kb_file(settings: Settings) -> Path:
    return settings.resolve(settings.kb.path) / "shop.yaml"


def intents_file(settings: Settings) -> Path:
    return settings.resolve(settings.intents.path) / "nlu.yml"


def questions(settings: Settings, entry: str) -> dict[str, list[str]]:
    found = load_knowledge_base(settings.resolve(settings.kb.path), settings.kb.languages).get(entry)
    assert found is not None
    return found.questions


def test_a_question_goes_into_each_kind_of_list_as_one_quoted_addition(content: Settings) -> None:
    path = kb_file(content)
    tricky = 'Are you open on "Black Friday": #late, 9\\10?'
    done = add_question(content, "opening_hours", "en", f"  {tricky}\n ")  # a block list
    assert (done.file, done.line, done.text) == (path, 8, tricky)
    last = '      - "What time do you close?"\n'
    expected = KB.replace(last, last + '      - "Are you open on \\"Black Friday\\": #late, 9\\\\10?"\n')
    assert path.read_text(encoding="utf-8") == expected

    add_question(content, "opening_hours", "ru", "До скольки работаете?")  # one string becomes a list of two
    add_question(content, "opening_hours", "pl", "Do której jesteście otwarci?")  # a new language line
    add_question(content, "gift_wrap", "en", "Can you wrap it as a present?")  # a flow list
    for before, after in (
        ("    ru: Когда вы открыты?\n", '    ru: ["Когда вы открыты?", "До скольки работаете?"]\n'),
        (
            '    uk: ["Коли ви працюєте?"]\n',
            '    uk: ["Коли ви працюєте?"]\n    pl: ["Do której jesteście otwarci?"]\n',
        ),
        (
            '    en: ["Do you gift wrap?"]\n',
            '    en: ["Do you gift wrap?", "Can you wrap it as a present?"]\n',
        ),
    ):
        expected = expected.replace(before, after)
    assert path.read_text(encoding="utf-8") == expected
    assert questions(content, "opening_hours") == {
        "en": ["When are you open?", "What time do you close?", tricky],
        "ru": ["Когда вы открыты?", "До скольки работаете?"],
        "uk": ["Коли ви працюєте?"],
        "pl": ["Do której jesteście otwarci?"],
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["shop.yaml"]  # no temporary file left


def test_refused_edits_leave_the_file_byte_identical(content: Settings) -> None:
    path = kb_file(content)
    before = path.read_bytes()
    with pytest.raises(AlreadyPresent, match="already a question of entry 'opening_hours'"):
        add_question(content, "opening_hours", "en", "when ARE you  open?")
    with pytest.raises(
        ContentError,
        match=re.escape(
            "shop.yaml:14: question 'Do you gift wrap?' (en) is also under entry 'opening_hours'"
        ),
    ):
        add_question(content, "opening_hours", "en", "Do you gift wrap?")
    with pytest.raises(ContentError, match=re.escape("not one of kb.languages")):
        add_question(content, "opening_hours", "de", "Wann haben Sie offen?")
    with pytest.raises(UnknownEntry, match="no knowledge-base entry 'parking'"):
        add_question(content, "parking", "en", "Where can I park?")
    with pytest.raises(ContentError, match="the text is empty"):
        add_question(content, "opening_hours", "en", " \n ")
    assert path.read_bytes() == before

    # a problem elsewhere in the content is a problem of the result too: named, and nothing written
    other = path.parent / "broken.yaml"
    other.write_text("- id: broken\n  questions: {en: [x]}\n", encoding="utf-8")
    with pytest.raises(ContentError, match=re.escape("broken.yaml:1: entry 'broken' has no answer in 'en'")):
        add_question(content, "gift_wrap", "en", "Can you wrap it?")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["broken.yaml", "shop.yaml"]


def test_windows_line_breaks_and_a_missing_final_line_break_are_kept(content: Settings) -> None:
    path = kb_file(content)
    crlf = KB.replace("\n", "\r\n").rstrip("\r\n").encode("utf-8")
    path.write_bytes(crlf)
    add_question(content, "gift_wrap", "en", "Do you sell gift boxes?")
    add_question(content, "opening_hours", "en", "Are you open on Sundays?")
    changed = path.read_bytes()
    assert b"\r\n" in changed and b"\n" not in changed.replace(b"\r\n", b"")
    assert changed == crlf.replace(
        b'en: ["Do you gift wrap?"]', b'en: ["Do you gift wrap?", "Do you sell gift boxes?"]'
    ).replace(
        b'      - "What time do you close?"\r\n',
        b'      - "What time do you close?"\r\n      - "Are you open on Sundays?"\r\n',
    )


def test_an_out_of_scope_example_is_one_line_after_the_last_one(content: Settings) -> None:
    path = intents_file(content)
    done = add_out_of_scope_example(content, "Who won the match yesterday?")
    assert (done.file, done.line) == (path, 8)
    assert path.read_text(encoding="utf-8") == INTENTS.replace(
        "    - what is the meaning of life\n",
        "    - what is the meaning of life\n    - Who won the match yesterday?\n",
    )
    oos = load_intents(path.parent).get("oos")
    assert oos is not None and oos.examples[-1] == "Who won the match yesterday?"

    before = path.read_bytes()
    with pytest.raises(AlreadyPresent):
        add_out_of_scope_example(content, "WHO won the match yesterday?")
    with pytest.raises(ContentError, match="example 'hello' is under intent 'greet' and also under 'oos'"):
        add_out_of_scope_example(content, "Hello")
    with pytest.raises(ContentError, match="would not be read back as written"):
        add_out_of_scope_example(content, "weather in [Paris](city)")  # Rasa markup would be stripped
    assert path.read_bytes() == before


def test_the_shipped_content_takes_an_edit(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    shutil.copytree(REPO / "kb", tmp_path / "kb")
    settings = make_settings(kb={"path": str(tmp_path / "kb")})
    path = tmp_path / "kb" / "payment.yaml"
    before = path.read_text(encoding="utf-8").splitlines(keepends=True)
    done = add_question(settings, "promo_code", "en", "Is there a student discount?")
    after = path.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
    assert changed == [done.line - 1]
    assert after[done.line - 1] == before[done.line - 1].replace(
        '"]\n', '", "Is there a student discount?"]\n'
    )
    assert before[0].startswith("# ") and after[0] == before[0]

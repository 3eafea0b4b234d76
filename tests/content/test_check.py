from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from bot.cli import cli
from bot.config import Settings
from bot.content.check import check_content
from bot.content.knowledge import load_knowledge_base

GOOD_ENTRY = """\
- id: delivery_time
  questions:
    en: ["How long does delivery take?"]
    ru: ["Сколько идёт доставка?"]
  answer:
    en: "1-3 days."
    ru: "1-3 дня."
"""


def write_content(root: Path, kb: dict[str, str], intents: dict[str, str]) -> Path:
    (root / "kb").mkdir()
    (root / "intents").mkdir()
    for name, text in kb.items():
        (root / "kb" / name).write_text(text, encoding="utf-8")
    for name, text in intents.items():
        (root / "intents" / name).write_text(text, encoding="utf-8")
    config = root / "config.yaml"
    config.write_text("kb:\n  languages: [en, ru]\n", encoding="utf-8")
    return config


BROKEN_YAML = """\
- id: broken
  questions:
    en: ["one", "two"
  answer: {en: "x"}
"""
DUPLICATE = GOOD_ENTRY.replace("1-3 days.", "Another answer.")
SHARED_EXAMPLE = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
- intent: thanks
  examples: |
    - thank you
    - hello
"""


def test_broken_kb_exits_non_zero_with_file_and_line(tmp_path: Path) -> None:
    config = write_content(
        tmp_path,
        {"a.yaml": GOOD_ENTRY, "b.yaml": DUPLICATE, "c.yaml": BROKEN_YAML},
        {"conversation.yml": SHARED_EXAMPLE},
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "kb", "check"])
    assert result.exit_code == 1
    output = result.output
    assert f"{tmp_path / 'kb' / 'c.yaml'}:4:" in output and "YAML error" in output
    assert f"{tmp_path / 'kb' / 'b.yaml'}:1: duplicate id 'delivery_time'" in output
    assert f"(first defined at {tmp_path / 'kb' / 'a.yaml'}:1)" in output
    assert (
        f"{tmp_path / 'intents' / 'conversation.yml'}:10: example 'hello' is under intent 'thanks'" in output
    )


def test_missing_language_and_empty_answer_are_reported(tmp_path: Path) -> None:
    entry = """\
- id: refund
  questions:
    en: ["When do I get my money back?"]
  answer:
    en: ""
"""
    config = write_content(tmp_path, {"a.yaml": entry}, {})
    result = CliRunner().invoke(cli, ["--config", str(config), "kb", "check"])
    assert result.exit_code == 1
    assert "answer.en is empty" in result.output
    assert "has no answer in 'ru'" in result.output
    assert "no questions in 'ru'" in result.output


def test_not_a_list_and_unknown_keys(tmp_path: Path) -> None:
    kb = load_knowledge_base(tmp_path, ["en"])
    assert kb.problems == [f"{tmp_path}: no knowledge-base entries found"]
    (tmp_path / "x.yaml").write_text("id: x\n", encoding="utf-8")
    (tmp_path / "y.yaml").write_text(
        '- id: y\n  questions: {en: ["q"]}\n  answer: {en: "a"}\n  colour: red\n', encoding="utf-8"
    )
    problems = load_knowledge_base(tmp_path, ["en"]).problems
    assert any("x.yaml:1: the file must be a list" in p for p in problems)
    assert any("y.yaml:1: entry 'y' has unknown keys: colour" in p for p in problems)


def test_demo_content_is_valid(make_settings: Callable[..., Settings]) -> None:
    report = check_content(make_settings())
    assert report.problems == []
    assert report.entries >= 40


def test_demo_kb_has_four_languages_and_four_variants(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    kb = load_knowledge_base(settings.resolve(settings.kb.path), settings.kb.languages)
    for entry in kb.entries:
        for lang in ("en", "ru", "pl", "uk"):
            assert len(entry.questions.get(lang, [])) >= 4, (entry.id, lang)
            assert entry.answer.get(lang), (entry.id, lang)


def test_a_thin_kb_without_out_of_scope_examples_is_told_what_to_add(tmp_path: Path) -> None:
    entries = "".join(
        f'- id: e{i}\n  questions: {{en: ["question {i}"], ru: ["вопрос {i}"]}}\n'
        f'  answer: {{en: "answer {i}", ru: "ответ {i}"}}\n'
        for i in range(4)
    )
    config = write_content(tmp_path, {"a.yaml": entries}, {})
    result = CliRunner().invoke(cli, ["--config", str(config), "kb", "check", "--no-similarity"])
    assert result.exit_code == 0, result.output
    assert "4 of 4 KB entries have fewer than 3 questions (e0, e1, e2, e3)" in result.output
    assert "add two or three other ways customers ask to each" in result.output
    assert "0 out-of-scope examples in intents/" in result.output

from __future__ import annotations

import pytest

from bot.nlu.human_request import is_human_request
from bot.nlu.language import choose_language, detect_language
from bot.nlu.normalize import normalize_for_matching, split_long

SUPPORTED = ["en", "ru", "pl", "uk"]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Сколько идёт доставка?", "ru"),
        ("Скільки триває доставка?", "uk"),
        ("Jak długo trwa dostawa?", "pl"),
        ("jak dlugo trwa dostawa", "pl"),
        ("How long does delivery take?", "en"),
        ("gde moi zakaz", "ru"),
    ],
)
def test_detects_language(text: str, lang: str) -> None:
    assert detect_language(text)[0] == lang


def test_text_evidence_beats_a_wrong_hint_but_hint_decides_when_text_is_silent() -> None:
    assert choose_language("Скільки коштує доставка?", "ru", None, SUPPORTED, "en") == "uk"
    assert choose_language("ok", "pl", None, SUPPORTED, "en") == "pl"
    assert choose_language("👍", None, "uk", SUPPORTED, "en") == "uk"
    assert choose_language("👍", "de", None, SUPPORTED, "en") == "en"


@pytest.mark.parametrize(
    "text",
    [
        "оператор",
        "Chcę rozmawiać z konsultantem",
        "живий оператор",
        "I want to talk to a human",
        "позовите живого человека",
        "can I speak to a real person",
        "z kimś z obsługi proszę połączyć z człowiekiem",
    ],
)
def test_explicit_human_requests(text: str) -> None:
    assert is_human_request(text)


@pytest.mark.parametrize(
    "text", ["How long does delivery take?", "Сколько стоит доставка?", "operator płatności odrzucił"]
)
def test_ordinary_questions_are_not_human_requests(text: str) -> None:
    assert not is_human_request(text)


def test_normalisation_drops_order_numbers_emoji_and_shouting() -> None:
    assert normalize_for_matching("WHERE IS MY ORDER #482133 😡😡") == "where is my order"
    assert "48213" not in normalize_for_matching("zamówienie nr 48213 gdzie jest?")


def test_long_messages_are_split_into_bounded_parts() -> None:
    text = "Hello there. " * 10_000
    parts = split_long(text)
    assert 1 < len(parts) <= 8
    assert all(len(p) <= 400 for p in parts)
    assert split_long("short") == ["short"]
    run_on = "a" * 5000
    assert all(len(p) <= 400 for p in split_long(run_on))


def test_a_word_russian_and_ukrainian_share_follows_the_platform_hint() -> None:
    from bot.nlu.language import choose_language

    supported = ["en", "ru", "pl", "uk"]
    assert choose_language("оператор", "ru", None, supported, "en") == "ru"
    assert choose_language("оператор", "uk", None, supported, "en") == "uk"
    assert choose_language("оператор", None, "uk", supported, "en") == "uk"

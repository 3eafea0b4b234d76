from __future__ import annotations

import pytest

from bot.nlu.matcher import translit_languages
from bot.nlu.translit import looks_latin, to_cyrillic


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("gde moi zakaz", "ru", "где мои заказ"),
        ("khochu operatora", "ru", "хочу оператора"),
        ("eto normalno?", "ru", "это нормално?"),
        ("novyy zakaz", "ru", "новый заказ"),
        ("de moye zamovlennya", "uk", "де моє замовлення"),
        ("shcho robyty, dyakuyu", "uk", "що робити, дякую"),
    ],
)
def test_to_cyrillic(text: str, lang: str, expected: str) -> None:
    assert to_cyrillic(text, lang) == expected


def test_only_latin_text_is_transliterated() -> None:
    assert looks_latin("gde moi zakaz NW-1234")
    assert not looks_latin("где мой заказ")
    assert not looks_latin("gdzie jest moje zamówienie")  # Polish letters
    assert not looks_latin("12345 !!")


def test_which_readings_are_scored() -> None:
    assert translit_languages("How long does delivery take to Berlin?") == []
    assert "ru" in translit_languages("gde moi zakaz")
    assert "uk" in translit_languages("de moye zamovlennya")


def test_polish_questions_are_also_indexed_without_diacritics() -> None:
    from bot.content.intents import IntentSet
    from bot.content.knowledge import KBEntry, KnowledgeBase
    from bot.nlu.matcher import index_items
    from bot.nlu.normalize import fold_diacritics

    assert fold_diacritics("Gdzie jest moje zamówienie? Łódź") == "Gdzie jest moje zamowienie? Lodz"
    assert fold_diacritics("Где мой заказ? Її") == "Где мой заказ? Її"
    kb = KnowledgeBase()
    kb.entries.append(KBEntry("e", {"pl": ["Ile kosztuje dostawa?", "Jak długo trwa dostawa?"]}, {"pl": "x"}))
    texts = [(item.text, item.variant) for item in index_items(kb, IntentSet(), answers=False)]
    assert texts == [
        ("Ile kosztuje dostawa?", False),
        ("Jak długo trwa dostawa?", False),
        ("Jak dlugo trwa dostawa?", True),
    ]

"""Personal data in agents' answers becomes placeholders an editor must check."""

from __future__ import annotations

from bot.learning.placeholders import mask, placeholders_in


def test_personal_data_becomes_placeholders() -> None:
    text = (
        "Hi Anna, your order #123456 ships to ul. Marszałkowska 10/4, 00-950 Warszawa; "
        "we will call +48 600 100 200 or write to anna.kowalska@example.com. Wrapping costs 1 500 zł."
    )
    masked = mask(text, ["Anna Kowalska", "anna_k"])
    assert masked == (
        "Hi {name}, your order {order_number} ships to {address}; "
        "we will call {phone} or write to {email}. Wrapping costs 1 500 zł."
    )
    assert placeholders_in(masked) == ["{name}", "{order_number}", "{address}", "{phone}", "{email}"]


def test_forms_of_address_and_known_names_in_every_language() -> None:
    assert mask("Здравствуйте, Иван! Да, упакуем.") == "Здравствуйте, {name}! Да, упакуем."
    assert mask("Dzień dobry Pani Kasiu, tak.") == "Dzień dobry Pani {name}, tak."
    assert mask("Hello! Yes, we do.") == "Hello! Yes, we do."  # not a name
    assert mask("Olga here: yes, we do.", ["Olga"]) == "{name} here: yes, we do."

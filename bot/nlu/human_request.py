"""Explicit requests for a person, in every supported language: these always hand off."""

from __future__ import annotations

import re

_PATTERNS = [
    # en
    r"\bhuman\b",
    r"\breal (person|people|agent)\b",
    r"\blive (agent|person|chat|support)\b",
    r"\b(talk|speak|chat)\s+(to|with)\s+(a |an |the |some |your )?"
    r"(person|someone|somebody|agent|operator|representative|manager|staff)\b",
    r"\bcustomer (service|support) (agent|rep|representative)\b",
    r"\boperator\b(?!\s+p[lł]atno)",
    # ru (Cyrillic and Latin transliteration)
    r"оператор",
    r"консультант",
    r"жив(ой|ого|ому|ым) (человек|сотрудник|оператор|менеджер)",
    r"(с|со) (человеком|сотрудником|менеджером|специалистом)",
    r"позов\w* (человека|менеджера|сотрудника)",
    r"\bs chelovekom\b",
    r"\bzhiv(oy|oi|ogo) (chelovek|operator)",
    r"\bkonsultant",
    # uk
    r"жив(ий|ого|ою|ої) (людин|оператор|працівник|менеджер)",
    r"з людиною",
    r"з (менеджером|працівником)",
    r"\bzhyv(yi|yy|oho) ",
    r"\bz lyudynoyu\b",
    # pl
    r"z (człowiekiem|czlowiekiem|operatorem|konsultantem|konsultantką|pracownikiem|kimś|kims)\b",
    r"do (operatora|konsultanta|człowieka|czlowieka)",
    r"(ż|z)yw(ą|a|ym|ej) (osob|człowiek|czlowiek)",
    r"\bkonsultant",
]
_HUMAN_REQUEST = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE | re.UNICODE)


def is_human_request(text: str) -> bool:
    """Return True when the customer explicitly asks for a person."""
    return bool(_HUMAN_REQUEST.search(text[:2000]))

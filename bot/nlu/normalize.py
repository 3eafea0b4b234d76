"""Prepare customer text for matching: drop what carries no meaning, cap what the model reads."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_ORDER_NO = re.compile(r"(?:#|№|\bnr\.?\s*|\bno\.?\s*)?\b\d[\d\- ]{3,}\d\b", re.IGNORECASE)
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0000fe0f\U0000200d\U00002300-\U000023ff\U0001f1e6-\U0001f1ff]+"
)
_FOLD_EXTRA = {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss"}
_SPACE = re.compile(r"\s+")
_REPEAT = re.compile(r"([!?.])\1+")
_SENTENCE = re.compile(r"(?<=[.!?…\n])\s+")


def fold_diacritics(text: str) -> str:
    """Drop diacritics from Latin letters ("zamówienie" -> "zamowienie"); Cyrillic stays as it is."""
    out = []
    for ch in text:
        if ch in _FOLD_EXTRA:
            out.append(_FOLD_EXTRA[ch])
        elif "\u00c0" <= ch <= "\u024f":
            out.append("".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c)))
        else:
            out.append(ch)
    return "".join(out)


def has_words(text: str) -> bool:
    """Return True when the text holds at least one letter or digit."""
    return any(ch.isalnum() for ch in text)


def normalize_for_matching(text: str) -> str:
    """Strip URLs, e-mails, order/phone numbers and emoji; fold case and spaces."""
    text = _URL.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    text = _ORDER_NO.sub(" ", text)
    text = _EMOJI.sub(" ", text)
    text = _REPEAT.sub(r"\1", text)
    text = _SPACE.sub(" ", text).strip()
    if text.isupper():
        text = text.lower()
    return text


def split_long(text: str, max_chars: int = 400, max_parts: int = 8) -> list[str]:
    """Split a long message into sentence groups of at most `max_chars` (at most `max_parts`)."""
    if len(text) <= max_chars:
        return [text]
    parts: list[str] = []
    current = ""
    for sentence in _SENTENCE.split(text):
        while len(sentence) > max_chars:  # a run-on sentence: cut on a space near the limit
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            if current:
                parts.append(current)
                current = ""
            parts.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > max_chars:
            parts.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
        if len(parts) >= max_parts:
            break
    if current and len(parts) < max_parts:
        parts.append(current)
    return [p for p in parts if has_words(p)][:max_parts]


_PHONE_DIGITS = 9  # a number this long (or written with +) is read as a phone, shorter as an order number


def find_entities(text: str) -> list[dict[str, Any]]:
    """Return the e-mails, phone and order numbers that matching ignores, as Rasa NLU entities."""
    found: list[dict[str, Any]] = []
    for match in _EMAIL.finditer(text):
        found.append(_entity("email", match.group(0), match.start(), match.end()))
    for match in _ORDER_NO.finditer(_EMAIL.sub(lambda m: " " * len(m.group(0)), text)):
        digits = re.sub(r"\D", "", match.group(0))
        plus = text[max(match.start() - 1, 0) : match.start()] == "+"
        kind = "phone" if plus or len(digits) >= _PHONE_DIGITS else "order_number"
        value = f"+{digits}" if plus else digits
        found.append(_entity(kind, value, match.start() - plus, match.end()))
    return sorted(found, key=lambda entity: entity["start"])


def _entity(kind: str, value: str, start: int, end: int) -> dict[str, Any]:
    return {"entity": kind, "value": value, "start": start, "end": end, "extractor": "supportbot"}

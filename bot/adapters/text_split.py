"""Split a long reply into messenger-sized parts on paragraph, line, sentence or word boundaries."""

from __future__ import annotations

import re
from collections.abc import Callable

# Coarse to fine: a part is cut at the first of these that makes it fit.
_SEPARATORS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\n\s*\n"),  # paragraphs
    re.compile(r"\n"),  # lines
    re.compile(r"(?<=[.!?…])\s+"),  # sentences
    re.compile(r"\s+"),  # words
)


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Return `text` as parts of at most `limit` (by `measure`), cut at the coarsest boundary that fits."""
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    if measure(text) <= limit:
        return [text] if text else []
    return [part for part in _split(text, limit, measure, 0) if part]


def _split(text: str, limit: int, measure: Callable[[str], int], level: int) -> list[str]:
    if measure(text) <= limit:
        return [text]
    if level >= len(_SEPARATORS):
        return _hard_cut(text, limit, measure)
    pieces = [p for p in _SEPARATORS[level].split(text) if p.strip()]
    joiner = ("\n\n", "\n", " ", " ")[level]
    parts: list[str] = []
    current = ""
    for piece in pieces:
        piece = piece.strip()
        candidate = f"{current}{joiner}{piece}" if current else piece
        if measure(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        if measure(piece) <= limit:
            current = piece
        else:  # this piece alone is too long: cut it at a finer boundary
            finer = _split(piece, limit, measure, level + 1)
            parts.extend(finer[:-1])
            current = finer[-1] if finer else ""
    if current:
        parts.append(current)
    return parts


def _hard_cut(text: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    # One unbroken word longer than the limit (a URL, a hash): cut it by characters.
    if measure is len:
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    parts: list[str] = []
    current = ""
    for char in text:
        if current and measure(current + char) > limit:
            parts.append(current)
            current = ""
        current += char
    if current:
        parts.append(current)
    return parts

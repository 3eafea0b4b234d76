"""Turn Russian and Ukrainian typed in Latin letters ("gde moi zakaz") back into Cyrillic for matching.

Customers without a Cyrillic keyboard write phonetically, in many overlapping schemes ("zh"/"j", "kh"/"h",
"ya"/"ia"/"ja"). The model reads Cyrillic far better than such text, so the matcher scores both. The
rules are greedy, longest match first; they need to be good enough for the model, not for a human.
"""

from __future__ import annotations

import re

_COMMON: dict[str, str] = {
    "shch": "щ",
    "sch": "щ",
    "zh": "ж",
    "kh": "х",
    "ch": "ч",
    "sh": "ш",
    "ts": "ц",
    "tz": "ц",
    "yu": "ю",
    "ju": "ю",
    "iu": "ю",
    "ya": "я",
    "ja": "я",
    "ia": "я",
    "a": "а",
    "b": "б",
    "v": "в",
    "w": "в",
    "d": "д",
    "e": "е",
    "z": "з",
    "j": "й",
    "k": "к",
    "l": "л",
    "m": "м",
    "n": "н",
    "o": "о",
    "p": "п",
    "r": "р",
    "s": "с",
    "t": "т",
    "u": "у",
    "f": "ф",
    "c": "ц",
    "q": "к",
    "x": "кс",
    "'": "ь",
}
_RU: dict[str, str] = {
    **_COMMON,
    "yo": "ё",
    "jo": "ё",
    "ye": "е",
    "je": "е",
    "iy": "ий",
    "yy": "ый",
    "ii": "ий",
    "g": "г",
    "h": "х",
    "i": "и",
    "y": "ы",
}
_UK: dict[str, str] = {
    **_COMMON,
    "ye": "є",
    "je": "є",
    "ie": "є",
    "yi": "ї",
    "ji": "ї",
    "yo": "йо",
    "g": "г",
    "h": "г",
    "i": "і",
    "y": "и",
    "'": "'",
}
_VOWELS = set("aeiouy")
_RU_INITIAL_E = re.compile(r"e(t[oaiu]|ks|lek|kran)")
_LATIN_WORD = re.compile(r"[a-z']+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


def looks_latin(text: str) -> bool:
    """Return True when the text has letters and none of them are Cyrillic or Polish-specific."""
    letters = _LETTER.findall(text)
    return bool(letters) and not _CYRILLIC.search(text) and all(c.isascii() for c in letters)


def to_cyrillic(text: str, lang: str) -> str:
    """Transliterate Latin-script Russian (`ru`) or Ukrainian (`uk`) into Cyrillic; other text stays."""
    table = _UK if lang == "uk" else _RU
    longest = max(len(k) for k in table)
    return _LATIN_WORD.sub(lambda m: _word(m.group(0), table, longest, lang), text.casefold())


def _word(word: str, table: dict[str, str], longest: int, lang: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(word):
        ch = word[i]
        # "y" after a vowel is the consonant й ("moy", "novyy" -> "новый" handled by "yy").
        if ch == "y" and i > 0 and word[i - 1] in _VOWELS and word[i : i + 2] not in table:
            out.append("й")
            i += 1
            continue
        for size in range(min(longest, len(word) - i), 0, -1):
            piece = word[i : i + size]
            if piece in table:
                out.append(table[piece])
                i += size
                break
        else:
            out.append(ch)
            i += 1
    result = "".join(out)
    if lang == "ru" and _RU_INITIAL_E.match(word):
        result = "э" + result[1:]  # "eto", "ekspress", "elektronnyy": э, not е
    return result

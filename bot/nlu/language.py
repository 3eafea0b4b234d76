"""Guess the customer's language from the text: ru, uk, pl or en (others via the hint)."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_UK_LETTERS = set("іїєґ")
_RU_LETTERS = set("ыэъё")
_PL_LETTERS = set("ąćęłńóśźż")
_UK_WORDS = {
    "що",
    "як",
    "коли",
    "чи",
    "де",
    "мій",
    "моє",
    "моя",
    "можна",
    "будь",
    "ласка",
    "дякую",
    "привіт",
    "хочу",
    "замовлення",
    "скільки",
    "гроші",
    "повернення",
    "немає",
    "треба",
    "потрібно",
    "тому",
    "це",
    "та",
    "але",
    "вже",
    "ще",
    "ви",
    "мені",
    "чому",
}
_RU_WORDS = {
    "что",
    "как",
    "когда",
    "где",
    "мой",
    "моя",
    "можно",
    "пожалуйста",
    "спасибо",
    "привет",
    "хочу",
    "заказ",
    "сколько",
    "деньги",
    "возврат",
    "нет",
    "надо",
    "нужно",
    "это",
    "и",
    "но",
    "уже",
    "еще",
    "ещё",
    "вы",
    "мне",
    "почему",
    "чтобы",
    "если",
    "не",
    "он",
    "она",
    "они",
}
_PL_WORDS = {
    "jak",
    "czy",
    "nie",
    "się",
    "jest",
    "gdzie",
    "moje",
    "mój",
    "moja",
    "kiedy",
    "dlaczego",
    "paczka",
    "paczki",
    "proszę",
    "prosze",
    "dziękuję",
    "dziekuje",
    "chcę",
    "chce",
    "mam",
    "zamówienie",
    "zamowienie",
    "dostawa",
    "dostawy",
    "zwrot",
    "ile",
    "kosztuje",
    "mogę",
    "moge",
    "już",
    "juz",
    "jeszcze",
    "czekam",
    "dzień",
    "dobry",
    "witam",
    "faktura",
    "fakture",
    "fakturę",
    "konto",
    "hasło",
    "haslo",
    "płatność",
    "platnosc",
    "zamowilem",
    "zamówiłem",
    "przesyłka",
    "przesylka",
    "trwa",
    "długo",
    "dlugo",
    "jaki",
    "jakie",
    "mnie",
    "na",
    "do",
    "że",
    "ze",
    "co",
    "to",
    "w",
    "z",
}
_RU_TRANSLIT = {
    "gde",
    "moi",
    "moy",
    "zakaz",
    "zakaza",
    "skolko",
    "dostavka",
    "dostavku",
    "pozhaluysta",
    "pozhalujsta",
    "spasibo",
    "privet",
    "kogda",
    "pochemu",
    "mne",
    "nuzhno",
    "nado",
    "hochu",
    "khochu",
    "vozvrat",
    "dengi",
    "operator",
    "chelovek",
    "cheloveka",
    "kak",
    "eto",
    "uzhe",
    "posylka",
    "oplata",
    "oplatit",
    "tovar",
    "kupil",
    "kupila",
    "prishel",
    "prishla",
    "net",
    "zdravstvuyte",
    "zdravstvuite",
    "dobryy",
    "den",
    "vy",
    "u",
    "menya",
    "ne",
    "mozhno",
}
_UK_TRANSLIT = {
    "shcho",
    "shco",
    "koly",
    "skilky",
    "zamovlennya",
    "zamovlennia",
    "dyakuyu",
    "diakuiu",
    "pryvit",
    "hochu",
    "treba",
    "chomu",
    "groshi",
    "hroshi",
    "povernennya",
    "zhyvyi",
    "zhyvyy",
    "de",
    "moye",
    "moie",
    "bud",
    "laska",
    "mozhna",
    "dostavka",
    "ne",
    "ya",
    "ye",
    "nemaye",
}
_EN_WORDS = {
    "the",
    "is",
    "are",
    "my",
    "where",
    "how",
    "what",
    "when",
    "can",
    "i",
    "you",
    "do",
    "does",
    "order",
    "delivery",
    "please",
    "thanks",
    "thank",
    "hello",
    "hi",
    "want",
    "to",
    "it",
    "and",
    "of",
    "for",
    "a",
    "an",
    "with",
    "not",
    "return",
    "refund",
    "payment",
    "account",
    "why",
    "have",
}


def detect_language(text: str) -> tuple[str | None, float]:
    """Return (language, confidence 0..1); (None, 0) when the text says too little."""
    lowered = text.casefold()
    words = _WORD.findall(lowered)
    if not words:
        return None, 0.0
    letters = [c for w in words for c in w]
    cyrillic = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    if cyrillic >= max(2, len(letters) * 0.3):
        chars = set(letters)
        uk_score = 3 * len(chars & _UK_LETTERS) + sum(w in _UK_WORDS for w in words)
        ru_score = 3 * len(chars & _RU_LETTERS) + sum(w in _RU_WORDS for w in words)
        if uk_score > ru_score:
            return "uk", 0.9 if uk_score >= 2 else 0.7
        if ru_score == uk_score:  # words both languages share ("оператор"): let the hint decide
            return "ru", 0.4
        return "ru", 0.9 if ru_score >= 2 else 0.7
    pl = 3 * sum(c in _PL_LETTERS for c in letters) + sum(w in _PL_WORDS for w in words)
    ru = sum(w in _RU_TRANSLIT for w in words)
    uk = sum(w in _UK_TRANSLIT for w in words) - sum(w in _RU_TRANSLIT for w in words if w in _UK_TRANSLIT)
    en = sum(w in _EN_WORDS for w in words)
    scores = {"pl": pl, "ru": ru, "uk": uk, "en": en}
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        return None, 0.0
    second = sorted(scores.values())[-2]
    confidence = 0.9 if scores[best] >= second + 2 else 0.6 if scores[best] > second else 0.3
    return best, confidence


def choose_language(
    text: str, hint: str | None, previous: str | None, supported: list[str], default: str
) -> str:
    """Pick the reply language: clear evidence in the text, then the platform hint, then history."""
    detected, confidence = detect_language(text)
    hint_lang = (hint or "").split("-")[0].lower() or None
    if detected in supported and confidence >= 0.6:
        return detected
    for candidate in (hint_lang, previous, detected):
        if candidate in supported:
            return candidate
    return default

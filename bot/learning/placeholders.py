"""Keep personal data out of suggested KB entries: each piece becomes a visible `{placeholder}`.

What agents write to one customer carries that customer's details: an order number, a phone number, an
e-mail, a street address, a name. A suggested entry shows them as `{order_number}`, `{phone}`, `{email}`,
`{address}` and `{name}`, so an editor sees where the draft needs a general wording; accepting a
suggestion whose answer still holds one is refused until it is edited (bot/learning/accept.py).

E-mails, phone and order numbers are found as the normaliser finds them for matching
(bot/nlu/normalize.py, `find_entities`); amounts of money ("1 500 zł") are not order numbers. Names are the
ones the conversation knows (the customer's display name and username, the agents' names) and a
capitalised word after a form of address ("Dear Anna", "Pani Kasia", "Здравствуйте, Иван").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.nlu.normalize import find_entities

PLACEHOLDER = re.compile(r"\{(order_number|phone|email|address|name)\}")
_MONEY_AFTER = re.compile(r"\s?(zł|zl|pln|eur|€|\$|usd|uah|грн|₴|руб|₽|rub)", re.IGNORECASE)
_STREET = re.compile(
    r"(?<!\w)(?:ul\.|ulica|al\.|aleja|os\.|pl\.|ул\.|улица|пр\.|проспект|вул\.|вулиця|пров\.)\s*"
    r"[\w.\-]+(?:\s+[\w.\-]+){0,3}?\s+\d+[a-zA-Zа-яА-Я]?(?:\s*[/\-]\s*\d+)?"
    r"|\b\d+[a-zA-Z]?\s+(?:[A-Z][\w\-]+\s+){1,3}(?:street|st\.|avenue|ave\.|road|rd\.|lane|ln\.)",
    re.IGNORECASE,
)
_POSTCODE = re.compile(r"\b\d{2}-\d{3}\b(?:\s+[A-ZŁŚŻŹ][\w\-]+)?")
_FORMS_OF_ADDRESS = (
    r"dear|hi|hello|hey|mr\.?|mrs\.?|ms\.?|miss|pan|pani|panie|szanowny|szanowna|cześć|witam|dzień dobry|"
    r"здравствуйте|привет|добрый день|уважаемый|уважаемая|вітаю|привіт|добрий день|шановний|шановна"
)
_FORM_OF_ADDRESS = re.compile(_FORMS_OF_ADDRESS, re.IGNORECASE)
_ADDRESS_WORDS = re.compile(
    rf"(?<!\w)(?:{_FORMS_OF_ADDRESS})(?:,?\s+(?:{_FORMS_OF_ADDRESS})(?!\w))*,?\s+([A-ZА-ЯЁІЇЄŁŚŻŹĆŃÓ][\w\-]+)",
    re.IGNORECASE,
)

_NOT_NAMES = {
    "yes", "no", "sure", "thanks", "thank", "we", "our", "i", "unfortunately", "of", "there", "team",
    "tak", "nie", "dziękuję", "niestety", "да", "нет", "конечно", "спасибо", "к", "так", "ні", "дякую",
}  # fmt: skip


def _replace_entities(text: str) -> str:
    out, last = [], 0
    for entity in find_entities(text):
        start, end = entity["start"], entity["end"]
        if start < last:
            continue
        if entity["entity"] == "order_number" and _MONEY_AFTER.match(text, end):
            continue  # a price, not an order
        out.append(text[last:start])
        out.append("{" + str(entity["entity"]) + "}")
        last = end
    out.append(text[last:])
    return "".join(out)


def _name_words(names: Iterable[str | None]) -> list[str]:
    words = {word.strip(".,@") for name in names if name for word in name.split()}
    return sorted((w for w in words if len(w) >= 2 and any(c.isalpha() for c in w)), key=len, reverse=True)


def mask(text: str, names: Iterable[str | None] = ()) -> str:
    """Return `text` with personal data replaced by placeholders (see the module docstring)."""
    text = _STREET.sub("{address}", text)
    text = _POSTCODE.sub("{address}", text)
    text = _replace_entities(text)
    for word in _name_words(names):
        text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", "{name}", text, flags=re.IGNORECASE)

    def addressed(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name[:1].isupper() or _FORM_OF_ADDRESS.fullmatch(name) or name.casefold() in _NOT_NAMES:
            return match.group(0)
        return match.group(0)[: match.start(1) - match.start(0)] + "{name}"

    text = _ADDRESS_WORDS.sub(addressed, text)  # "Dzień dobry Pani Kasiu": two forms, then the name
    return re.sub(r"(\{address\}[\s,]*)+\{address\}", "{address}", text)


def placeholders_in(text: str) -> list[str]:
    """The placeholders left in `text`, in order of appearance, each once."""
    return list(dict.fromkeys(match.group(0) for match in PLACEHOLDER.finditer(text)))

"""What the customer is told about the queue and the agents, in every supported language."""

from __future__ import annotations

import math
from datetime import datetime

TEXTS: dict[str, dict[str, str]] = {
    "wait_estimate": {
        "en": "Estimated wait: about {minutes} min.",
        "ru": "Примерное время ожидания: около {minutes} мин.",
        "pl": "Szacowany czas oczekiwania: około {minutes} min.",
        "uk": "Орієнтовний час очікування: близько {minutes} хв.",
    },
    "wait_now": {
        "en": "A colleague will be with you in a moment.",
        "ru": "Сотрудник подключится через минуту.",
        "pl": "Konsultant dołączy za chwilę.",
        "uk": "Співробітник підключиться за хвилину.",
    },
    "closed": {
        "en": "Our team is offline right now; we are back {when}. You stay in the queue, and a person will "
        "answer here then.",
        "ru": "Сейчас наша команда не работает; мы вернёмся {when}. Вы остаётесь в очереди, и оператор "
        "ответит здесь.",
        "pl": "Nasz zespół jest teraz niedostępny; wracamy {when}. Zostajesz w kolejce, a konsultant "
        "odpowie tutaj.",
        "uk": "Зараз наша команда не працює; ми повернемося {when}. Ви залишаєтеся в черзі, і оператор "
        "відповість тут.",
    },
    "closed_no_agents": {
        "en": "No one from our team is online right now. You stay in the queue, and a person will answer "
        "here as soon as they are back.",
        "ru": "Сейчас никого из команды нет на месте. Вы остаётесь в очереди, оператор ответит здесь, как "
        "только появится.",
        "pl": "Nikogo z zespołu nie ma teraz online. Zostajesz w kolejce, a konsultant odpowie tutaj, gdy "
        "tylko wróci.",
        "uk": "Зараз нікого з команди немає на місці. Ви залишаєтеся в черзі, оператор відповість тут, щойно "
        "з'явиться.",
    },
    "reopened": {
        "en": "Our team is back. You are number {position} in the queue. {estimate}",
        "ru": "Наша команда снова на связи. Вы {position}-й в очереди. {estimate}",
        "pl": "Nasz zespół już jest. Jesteś {position}. w kolejce. {estimate}",
        "uk": "Наша команда знову на зв'язку. Ви {position}-й у черзі. {estimate}",
    },
    "estimate_grew": {
        "en": "Sorry for the wait. You are number {position} in the queue; about {minutes} min to go.",
        "ru": "Извините за ожидание. Вы {position}-й в очереди, осталось около {minutes} мин.",
        "pl": "Przepraszamy za czekanie. Jesteś {position}. w kolejce, zostało około {minutes} min.",
        "uk": "Вибачте за очікування. Ви {position}-й у черзі, залишилося близько {minutes} хв.",
    },
    "agent_joined": {
        "en": "{name} from our team has joined the chat.",
        "ru": "{name} из нашей команды подключился к чату.",
        "pl": "{name} z naszego zespołu dołączył(a) do czatu.",
        "uk": "{name} з нашої команди приєднався до чату.",
    },
    "requeued": {
        "en": "I'm passing you to another colleague. You are number {position} in the queue.",
        "ru": "Передаю вас другому сотруднику. Вы {position}-й в очереди.",
        "pl": "Przekazuję Cię innemu konsultantowi. Jesteś {position}. w kolejce.",
        "uk": "Передаю вас іншому співробітнику. Ви {position}-й у черзі.",
    },
    "resolved": {
        "en": "This conversation is closed. If you need anything else, just write here.",
        "ru": "Разговор завершён. Если понадобится что-то ещё, просто напишите сюда.",
        "pl": "Rozmowa zakończona. Jeśli będziesz potrzebować czegoś jeszcze, po prostu napisz tutaj.",
        "uk": "Розмову завершено. Якщо знадобиться щось ще, просто напишіть сюди.",
    },
}

_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "ru": ("в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу", "в воскресенье"),
    "pl": ("w poniedziałek", "we wtorek", "w środę", "w czwartek", "w piątek", "w sobotę", "w niedzielę"),
    "uk": ("в понеділок", "у вівторок", "в середу", "в четвер", "в п'ятницю", "в суботу", "в неділю"),
}
_AT = {"en": "on {day} at {time}", "ru": "{day} в {time}", "pl": "{day} o {time}", "uk": "{day} о {time}"}


def text(key: str, language: str | None, **values: object) -> str:
    """Return the text `key` in `language` (English when that language has none), formatted."""
    texts = TEXTS[key]
    chosen = texts.get(language or "en") or texts["en"]
    return chosen.format(**values).strip() if values else chosen


def minutes(seconds: float) -> int:
    """Whole minutes for "about N min" (nearest, at least 1)."""
    return max(1, math.floor(seconds / 60 + 0.5))


def estimate_text(seconds: float | None, language: str | None) -> str:
    if seconds is None:
        return ""
    if seconds <= 0:
        return text("wait_now", language)
    return text("wait_estimate", language, minutes=minutes(seconds))


def when_text(moment: datetime, language: str | None) -> str:
    """Say when (local time of the business, with its zone): 'on Monday at 09:00 (Europe/Warsaw)'."""
    lang = language if language in _WEEKDAYS else "en"
    day = _WEEKDAYS[lang][moment.weekday()]
    zone = getattr(moment.tzinfo, "key", None) or moment.tzname() or ""
    return _AT[lang].format(day=day, time=moment.strftime("%H:%M")) + (f" ({zone})" if zone else "")

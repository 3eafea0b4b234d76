"""`action_order_status`: the status of the order whose number the customer gave, in their language."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.demo.shop import order_by_number

_STATUS = {
    "new": {"en": "New", "ru": "Новый", "pl": "Nowe", "uk": "Нове"},
    "paid": {"en": "Paid", "ru": "Оплачен", "pl": "Opłacone", "uk": "Оплачене"},
    "packed": {"en": "Packed", "ru": "Упакован", "pl": "Spakowane", "uk": "Упаковане"},
    "shipped": {"en": "Shipped", "ru": "Отправлен", "pl": "Wysłane", "uk": "Відправлене"},
    "delivered": {"en": "Delivered", "ru": "Доставлен", "pl": "Dostarczone", "uk": "Доставлене"},
}
_TEXTS = {
    "status": {
        "en": "Order {number} ({items}, placed {placed}) has the status: {status}.",
        "ru": "Заказ {number} ({items}, оформлен {placed}) в статусе: {status}.",
        "pl": "Zamówienie {number} ({items}, złożone {placed}) ma status: {status}.",
        "uk": "Замовлення {number} ({items}, оформлене {placed}) має статус: {status}.",
    },
    "ask": {
        "en": "Please send me your order number (for example NW-12345): it is in the confirmation e-mail.",
        "ru": "Пришлите, пожалуйста, номер заказа (например, NW-12345): он есть в письме с подтверждением.",
        "pl": "Podaj, proszę, numer zamówienia (np. NW-12345): znajdziesz go w e-mailu z potwierdzeniem.",
        "uk": "Надішліть, будь ласка, номер замовлення (наприклад, NW-12345): він є в листі з підтвердженням.",
    },
    "unknown": {
        "en": "I can't find order {number}. Please check the number and send it again (for example NW-12345).",
        "ru": "Не нахожу заказ {number}. Проверьте, пожалуйста, номер и пришлите его ещё раз (например, NW-12345).",
        "pl": "Nie mogę znaleźć zamówienia {number}. Sprawdź numer i wyślij go jeszcze raz (np. NW-12345).",
        "uk": "Не знаходжу замовлення {number}. Перевірте, будь ласка, номер і надішліть його ще раз "
        "(наприклад, NW-12345).",
    },
}


def _say(key: str, language: str, **values: str) -> str:
    texts = _TEXTS[key]
    return (texts.get(language) or texts["en"]).format(**values)


class ActionOrderStatus(Action):
    """Look the order up in the demo shop; ask for the number when it is missing or unknown."""

    def name(self) -> str:
        return "action_order_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        language = tracker.get_slot("language") or "en"
        number = next(tracker.get_latest_entity_values("order_number"), None)
        if number is None:
            dispatcher.utter_message(text=_say("ask", language))
            return [ActiveLoop(self.name()), SlotSet("requested_slot", "order_number")]
        order = await order_by_number(number)
        if order is None:
            dispatcher.utter_message(text=_say("unknown", language, number=number))
            return [ActiveLoop(self.name()), SlotSet("requested_slot", "order_number")]
        status = _STATUS[order["status"]].get(language) or _STATUS[order["status"]]["en"]
        text = _say(
            "status",
            language,
            number=order["number"],
            items=", ".join(order["items"]),
            placed=order["placed"],
            status=status,
        )
        dispatcher.utter_message(text=text)
        return [SlotSet("order_number", order["number"]), SlotSet("requested_slot", None), ActiveLoop(None)]

"""What the bot itself says (not FAQ answers), in every supported language."""

from __future__ import annotations

PHRASES: dict[str, dict[str, str]] = {
    "greet": {
        "en": "Hello! I'm the shop's support assistant. Ask me about orders, delivery, payment or returns, "
        'or write "operator" to reach a person.',
        "ru": "Здравствуйте! Я помощник службы поддержки магазина. Спросите о заказе, доставке, оплате или "
        "возврате, или напишите «оператор», чтобы связаться с человеком.",
        "pl": "Dzień dobry! Jestem asystentem obsługi klienta sklepu. Zapytaj o zamówienie, dostawę, płatność "
        "lub zwrot albo napisz „konsultant”, aby porozmawiać z człowiekiem.",
        "uk": "Вітаю! Я помічник служби підтримки магазину. Запитайте про замовлення, доставку, оплату чи "
        "повернення, або напишіть «оператор», щоб зв'язатися з людиною.",
    },
    "thanks": {
        "en": "You're welcome! Anything else I can help with?",
        "ru": "Пожалуйста! Могу ещё чем-нибудь помочь?",
        "pl": "Proszę bardzo! Czy mogę pomóc w czymś jeszcze?",
        "uk": "Будь ласка! Чим ще можу допомогти?",
    },
    "goodbye": {
        "en": "Goodbye, and have a nice day!",
        "ru": "До свидания, хорошего дня!",
        "pl": "Do widzenia, miłego dnia!",
        "uk": "До побачення, гарного дня!",
    },
    "compliment": {
        "en": "Thank you, that's very kind! I'll pass it on to the team.",
        "ru": "Спасибо за добрые слова! Обязательно передам команде.",
        "pl": "Dziękujemy za miłe słowa! Przekażę je zespołowi.",
        "uk": "Дякуємо за теплі слова! Обов'язково передам команді.",
    },
    "back_to_bot": {
        "en": "OK, I've taken you out of the queue. Ask me anything.",
        "ru": "Хорошо, я убрал вас из очереди. Спрашивайте.",
        "pl": "Dobrze, usunąłem Cię z kolejki. Pytaj śmiało.",
        "uk": "Гаразд, я прибрав вас із черги. Запитуйте.",
    },
    "fallback": {
        "en": "Sorry, I'm not sure I understood. Could you rephrase it, or shall I connect you with a person?",
        "ru": "Извините, я не уверен, что понял. Переформулируйте, пожалуйста, или соединить вас с оператором?",
        "pl": "Przepraszam, nie jestem pewien, czy rozumiem. Możesz napisać to inaczej albo połączę Cię "
        "z konsultantem?",
        "uk": "Вибачте, я не впевнений, що зрозумів. Перефразуйте, будь ласка, або з'єднати вас з оператором?",
    },
    "empty": {
        "en": "Your message came through empty. Please type your question.",
        "ru": "Сообщение пришло пустым. Напишите, пожалуйста, ваш вопрос.",
        "pl": "Wiadomość dotarła pusta. Napisz, proszę, swoje pytanie.",
        "uk": "Повідомлення надійшло порожнім. Напишіть, будь ласка, ваше запитання.",
    },
    "no_text": {
        "en": "I can only read words for now. Please describe your question in a few words.",
        "ru": "Пока я понимаю только слова. Опишите, пожалуйста, вопрос парой слов.",
        "pl": "Na razie rozumiem tylko słowa. Opisz, proszę, pytanie kilkoma słowami.",
        "uk": "Поки що я розумію лише слова. Опишіть, будь ласка, запитання кількома словами.",
    },
    "clarify": {
        "en": "Did you mean one of these?",
        "ru": "Вы имели в виду одно из этого?",
        "pl": "Czy chodzi o jedno z tych pytań?",
        "uk": "Ви мали на увазі одне з цього?",
    },
    "handoff": {
        "en": "I'm connecting you with a person. You are number {position} in the queue; please stay in this chat.",
        "ru": "Соединяю вас с оператором. Вы {position}-й в очереди, пожалуйста, оставайтесь в этом чате.",
        "pl": "Łączę Cię z konsultantem. Jesteś {position}. w kolejce, zostań proszę na tym czacie.",
        "uk": "З'єдную вас з оператором. Ви {position}-й у черзі, будь ласка, залишайтеся в цьому чаті.",
    },
    "handoff_after_misses": {
        "en": "I'm sorry I couldn't help. I'm passing your question to a person; they will see our whole chat.",
        "ru": "Извините, что не смог помочь. Передаю ваш вопрос оператору, он увидит всю нашу переписку.",
        "pl": "Przepraszam, że nie pomogłem. Przekazuję pytanie konsultantowi, zobaczy całą naszą rozmowę.",
        "uk": "Вибачте, що не зміг допомогти. Передаю ваше запитання оператору, він побачить усе наше листування.",
    },
    "already_waiting": {
        "en": "You are already in the queue for a person; your message has been passed on.",
        "ru": "Вы уже в очереди к оператору, ваше сообщение передано.",
        "pl": "Jesteś już w kolejce do konsultanta, Twoja wiadomość została przekazana.",
        "uk": "Ви вже в черзі до оператора, ваше повідомлення передано.",
    },
    "offer_human": {
        "en": "Talk to a person",
        "ru": "Связаться с оператором",
        "pl": "Porozmawiaj z konsultantem",
        "uk": "Зв'язатися з оператором",
    },
    "answer_then_human": {
        "en": "If this doesn't solve it, a person can take a look.",
        "ru": "Если это не решает вопрос, оператор может посмотреть подробнее.",
        "pl": "Jeśli to nie rozwiązuje sprawy, konsultant może się temu przyjrzeć.",
        "uk": "Якщо це не вирішує питання, оператор може розібратися детальніше.",
    },
    "attachment_received": {
        "en": "Thanks, I've received your {kind}. I can't look inside files myself; a person will see it "
        "if you ask for one.",
        "ru": "Спасибо, получил ваш файл ({kind}). Сам я не могу его посмотреть; оператор увидит его, "
        "если вы попросите связать с ним.",
        "pl": "Dziękuję, otrzymałem Twój plik ({kind}). Sam nie mogę go obejrzeć; zobaczy go konsultant, "
        "jeśli o niego poprosisz.",
        "uk": "Дякую, отримав ваш файл ({kind}). Сам я не можу його переглянути; оператор побачить його, "
        "якщо ви попросите з'єднати.",
    },
    "unsupported": {
        "en": "Sorry, I can't read this kind of message. Please write your question as text.",
        "ru": "Извините, я не умею читать такие сообщения. Напишите, пожалуйста, вопрос текстом.",
        "pl": "Przepraszam, nie potrafię odczytać takiej wiadomości. Napisz, proszę, pytanie tekstem.",
        "uk": "Вибачте, я не вмію читати такі повідомлення. Напишіть, будь ласка, запитання текстом.",
    },
    "long_message": {
        "en": "(Your message was very long; I read the first part of it. A person will see all of it.)",
        "ru": "(Сообщение очень длинное, я прочитал его начало. Оператор увидит его целиком.)",
        "pl": "(Wiadomość jest bardzo długa, przeczytałem jej początek. Konsultant zobaczy całość.)",
        "uk": "(Повідомлення дуже довге, я прочитав його початок. Оператор побачить його повністю.)",
    },
    "feedback_thanks": {
        "en": "Thanks for the feedback!",
        "ru": "Спасибо за отзыв!",
        "pl": "Dziękujemy za opinię!",
        "uk": "Дякуємо за відгук!",
    },
    # CSAT after an agent resolved the chat (bot/insights/csat.py); the button titles follow a face
    "csat_question": {
        "en": "How did we do? Please rate this conversation.",
        "ru": "Как мы справились? Оцените, пожалуйста, этот разговор.",
        "pl": "Jak nam poszło? Oceń, proszę, tę rozmowę.",
        "uk": "Як ми впоралися? Оцініть, будь ласка, цю розмову.",
    },
    "csat_bad": {"en": "Bad", "ru": "Плохо", "pl": "Źle", "uk": "Погано"},
    "csat_ok": {"en": "OK", "ru": "Нормально", "pl": "W porządku", "uk": "Нормально"},
    "csat_great": {"en": "Great", "ru": "Отлично", "pl": "Świetnie", "uk": "Чудово"},
    "csat_thanks": {
        "en": "Thank you for your rating!",
        "ru": "Спасибо за оценку!",
        "pl": "Dziękujemy za ocenę!",
        "uk": "Дякуємо за оцінку!",
    },
    "csat_already": {
        "en": "You have already rated this conversation. Thank you!",
        "ru": "Вы уже оценили этот разговор. Спасибо!",
        "pl": "Ta rozmowa została już oceniona. Dziękujemy!",
        "uk": "Ви вже оцінили цю розмову. Дякуємо!",
    },
    "csat_expired": {
        "en": "Thank you! This conversation can no longer be rated, but you can always write to us here.",
        "ru": "Спасибо! Этот разговор уже нельзя оценить, но вы всегда можете написать нам здесь.",
        "pl": "Dziękujemy! Tej rozmowy nie można już ocenić, ale zawsze możesz napisać do nas tutaj.",
        "uk": "Дякуємо! Цю розмову вже не можна оцінити, але ви завжди можете написати нам тут.",
    },
    # NPS after a resolved chat, when feedback.nps is on (bot/insights/nps.py)
    "nps_question": {
        "en": "How likely are you to recommend us to a friend, from 0 to 10?",
        "ru": "Насколько вероятно, что вы порекомендуете нас другу, от 0 до 10?",
        "pl": "Jak bardzo prawdopodobne jest, że polecisz nas znajomemu, w skali od 0 do 10?",
        "uk": "Наскільки ймовірно, що ви порекомендуєте нас другові, від 0 до 10?",
    },
    "nps_type_number": {
        "en": "Please reply with a number.",
        "ru": "Ответьте, пожалуйста, числом.",
        "pl": "Odpowiedz, proszę, liczbą.",
        "uk": "Дайте, будь ласка, відповідь числом.",
    },
    "nps_thanks": {
        "en": "Thank you, that helps us a lot!",
        "ru": "Спасибо, это нам очень помогает!",
        "pl": "Dziękujemy, to nam bardzo pomaga!",
        "uk": "Дякуємо, це нам дуже допомагає!",
    },
    "nps_already": {
        "en": "You have already answered. Thank you!",
        "ru": "Вы уже ответили. Спасибо!",
        "pl": "Już udzielono odpowiedzi. Dziękujemy!",
        "uk": "Ви вже відповіли. Дякуємо!",
    },
    "action_failed": {  # a custom action failed and its policy is `reply` (bot/actions)
        "en": "Sorry, I can't check that right now. Please try again in a few minutes, or ask for a person.",
        "ru": "Извините, сейчас не получается это проверить. Попробуйте через несколько минут или позовите "
        "оператора.",
        "pl": "Przepraszam, nie mogę tego teraz sprawdzić. Spróbuj za kilka minut albo poproś o konsultanta.",
        "uk": "Вибачте, зараз не вдається це перевірити. Спробуйте за кілька хвилин або покличте оператора.",
    },
}


def phrase(key: str, language: str, default_language: str = "en", **values: object) -> str:
    """Return the bot's phrase `key` in `language` (falling back to the default), formatted."""
    texts = PHRASES[key]
    text = texts.get(language) or texts.get(default_language) or texts["en"]
    return text.format(**values) if values else text

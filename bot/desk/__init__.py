"""The Telegram agent desk: agents work handed-off conversations from a forum group (docs/telegram-desk.md)."""

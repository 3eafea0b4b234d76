"""What the desk writes into the group, as Telegram HTML: topic names, the context card, event lines.

The card is the console's card (bot/handoff/context.py `context_card`), rendered for a phone: the
customer's words, what the bot answered and how sure it was, the profile, earlier conversations and the
context providers' data. Everything here is text in, text out.
"""

from __future__ import annotations

import html
import json
from typing import Any

CHANNEL_NAMES = {
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
    "webchat": "Web chat",
    "terminal": "Terminal",
}
TEXT_LIMIT = 4000  # Telegram allows 4,096 characters; room for the closing tags
_TRANSCRIPT_LINES = 12
_SENDER_MARKS = {"customer": "👤", "bot": "🤖", "agent": "🧑‍💼", "system": "ℹ️"}


def esc(text: Any) -> str:
    return html.escape(str(text if text is not None else ""), quote=False)


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel)


def topic_name(name: str | None, channel: str, language: str | None) -> str:
    """'Ivan · WhatsApp · ru': who, where from, in which language (at most 128 characters)."""
    parts = [(name or "Customer").strip()[:80] or "Customer", channel_name(channel)]
    if language:
        parts.append(language)
    return " · ".join(parts)[:128]


def mention(name: str, telegram_user_id: int | None) -> str:
    """The agent's name, as a mention when they have a linked Telegram account."""
    if telegram_user_id:
        return f'<a href="tg://user?id={telegram_user_id}">{esc(name)}</a>'
    return f"<b>{esc(name)}</b>"


def topic_link(chat_id: int, thread_id: int | None) -> str | None:
    """t.me link to a topic of a supergroup (-100… ids only)."""
    digits = str(chat_id)
    if thread_id is None or not digits.startswith("-100"):
        return None
    return f"https://t.me/c/{digits[4:]}/{thread_id}"


def render_card(card: dict[str, Any], conversation_id: int, state: str) -> str:
    """The context card as one Telegram message (cut to fit)."""
    customer = card.get("customer") or {}
    lines = [
        f"<b>#{conversation_id} · {esc(topic_name(customer.get('name'), customer.get('channel', ''), card.get('language')))}</b>",
        f"State: {esc(state)} · reason: {esc(card.get('reason') or '-')}"
        + (" · <b>VIP</b>" if card.get("vip") else "")
        + (f" · priority {card['priority']}" if card.get("priority") else ""),
    ]
    profile = [
        f"{label}: {esc(customer[key])}"
        for key, label in (("username", "username"), ("phone", "phone"), ("external_id", "id"))
        if customer.get(key)
    ]
    if profile:
        lines.append(" · ".join(profile))
    lines.append("")
    lines.append("<b>Conversation so far</b>")
    transcript = card.get("transcript") or []
    if len(transcript) > _TRANSCRIPT_LINES:
        lines.append(f"… {len(transcript) - _TRANSCRIPT_LINES} earlier message(s) in the console")
    for message in transcript[-_TRANSCRIPT_LINES:]:
        mark = _SENDER_MARKS.get(message.get("sender", ""), "•")
        words = (message.get("text") or "").strip().replace("\n", " ")
        files = [a.get("kind") for a in message.get("attachments") or [] if isinstance(a, dict)]
        if files:
            words = f"{words} [{', '.join(str(f) for f in files)}]".strip()
        lines.append(f"{mark} {esc(words[:300])}")
    matched = card.get("matched") or []
    if matched:
        lines.append("")
        lines.append("<b>What the bot understood</b>")
        for item in matched[-5:]:
            score = item.get("score")
            sure = f" ({score:.2f})" if isinstance(score, (int, float)) else ""
            lines.append(
                f"• {esc((item.get('text') or '')[:80])} → {esc(item.get('decision'))} "
                f"{esc(item.get('label') or '')}{sure}"
            )
    lines.extend(_providers(card.get("providers") or {}))
    lines.extend(_previous(card.get("previous_conversations") or []))
    return cut("\n".join(lines))


def _providers(providers: dict[str, Any]) -> list[str]:
    if not providers:
        return []
    lines = ["", "<b>Customer data</b>"]
    for name, result in providers.items():
        status = result.get("status") if isinstance(result, dict) else None
        if status == "ok":
            data = json.dumps(result.get("data"), ensure_ascii=False, default=str)
            lines.append(f"• {esc(name)}: <code>{esc(data[:600])}</code>")
        else:
            detail = result.get("error") if isinstance(result, dict) else None
            lines.append(f"• {esc(name)}: {esc(status or 'unknown')}{' - ' + esc(detail) if detail else ''}")
    return lines


def _previous(previous: list[dict[str, Any]]) -> list[str]:
    if not previous:
        return []
    lines = ["", "<b>Earlier conversations</b>"]
    for item in previous[:5]:
        agents = ", ".join(item.get("agents") or [])
        lines.append(
            f"• #{item.get('id')} {esc((item.get('started_at') or '')[:10])} · {esc(item.get('outcome'))}"
            + (f" · {esc(agents)}" if agents else "")
            + (f" · {esc(item.get('resolution'))}" if item.get("resolution") else "")
        )
    return lines


def cut(html_text: str, limit: int = TEXT_LIMIT) -> str:
    """Cut rendered lines to Telegram's limit at a line break (tags never span lines here)."""
    if len(html_text) <= limit:
        return html_text
    kept = html_text[:limit].rsplit("\n", 1)[0]
    return kept + "\n… (the rest is in the console)"


def attachment_words(attachments: list[dict[str, Any]]) -> str:
    return " ".join(f"[{a.get('kind')}]" for a in attachments if isinstance(a, dict))

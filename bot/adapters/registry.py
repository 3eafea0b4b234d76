"""Which channels `supportbot run` starts, decided by configuration alone."""

from __future__ import annotations

from bot.adapters.base import Channel
from bot.adapters.telegram import TelegramChannel
from bot.adapters.webchat import WebchatChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.config import Settings


def enabled_channels(settings: Settings) -> list[Channel]:
    """Return an adapter for every channel whose credentials are configured."""
    channels: list[Channel] = []
    if settings.channels.telegram.token:
        channels.append(TelegramChannel(settings.channels.telegram))
    whatsapp = settings.channels.whatsapp
    if all((whatsapp.access_token, whatsapp.phone_number_id, whatsapp.app_secret, whatsapp.verify_token)):
        channels.append(WhatsAppChannel(whatsapp))
    if settings.channels.webchat.enabled:
        channels.append(WebchatChannel(settings.channels.webchat))
    return channels

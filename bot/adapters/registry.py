"""Which channels `supportbot run` starts, decided by configuration alone."""

from __future__ import annotations

from bot.adapters.base import Channel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.config import Settings


def enabled_channels(settings: Settings) -> list[Channel]:
    """Return an adapter for every channel whose credentials are configured."""
    channels: list[Channel] = []
    whatsapp = settings.channels.whatsapp
    if all((whatsapp.access_token, whatsapp.phone_number_id, whatsapp.app_secret, whatsapp.verify_token)):
        channels.append(WhatsAppChannel(whatsapp))
    return channels

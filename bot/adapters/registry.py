"""Which channels `supportbot run` starts, decided by configuration alone."""

from __future__ import annotations

from bot.adapters.base import Channel
from bot.config import Settings


def enabled_channels(settings: Settings) -> list[Channel]:
    """Return an adapter for every channel whose credentials are configured."""
    channels: list[Channel] = []
    return channels

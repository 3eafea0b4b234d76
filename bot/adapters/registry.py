"""Channels by name: each module registers its class; configuration alone decides which ones run."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from bot.adapters.base import Channel
from bot.config import Settings
from bot.errors import ConfigError

C = TypeVar("C", bound=type[Channel])
_CHANNELS: dict[str, type[Channel]] = {}


def register_channel(name: str) -> Callable[[C], C]:
    """Register a Channel class as `name`: its module is bot/adapters/<name>.py, its settings channels.<name>."""

    def register(cls: C) -> C:
        if getattr(cls, "name", None) != name:
            raise TypeError(
                f"{cls.__qualname__}.name is {getattr(cls, 'name', None)!r}, registered as {name!r}"
            )
        if _CHANNELS.get(name, cls) is not cls:
            raise TypeError(
                f"two channels registered as {name!r}: {_CHANNELS[name].__qualname__}, {cls.__qualname__}"
            )
        _CHANNELS[name] = cls
        return cls

    return register


def channel_class(name: str) -> type[Channel]:
    """Return the class registered as `name`, importing bot/adapters/<name>.py to let it register."""
    if name not in _CHANNELS:
        try:
            importlib.import_module(f"bot.adapters.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bot.adapters.{name}":
                raise
    if name not in _CHANNELS:
        raise ConfigError(
            f"channels.{name} is configured but no channel is registered as {name!r}: "
            f'bot/adapters/{name}.py should decorate its class with @register_channel("{name}")'
        )
    return _CHANNELS[name]


def enabled_channels(settings: Settings) -> list[Channel]:
    """Return a channel for every channels.<name> whose settings enable it (Channel.configured)."""
    channels: list[Channel] = []
    for name in type(settings.channels).model_fields:
        channel = channel_class(name).configured(settings)
        if channel is not None:
            channels.append(channel)
    return channels

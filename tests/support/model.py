"""Fault injection for the model: calls that hang, for the model-deadline tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bot.app import SupportBot


@contextmanager
def hung_model(bot: SupportBot, monkeypatch: pytest.MonkeyPatch, deadline: float) -> Iterator[None]:
    """Fault injection: in the block, model calls block (until the block ends) and the engine gives up on a
    message after `deadline` seconds (policy.understanding_timeout_seconds). A hang cannot be had on demand."""
    matcher = bot.matcher()
    understand_many = matcher.understand_many
    release = threading.Event()

    def hung(texts: list[str]) -> object:
        release.wait(30)
        return understand_many(texts)

    monkeypatch.setattr(matcher, "understand_many", hung)
    monkeypatch.setattr(bot.settings.policy, "understanding_timeout_seconds", deadline)
    try:
        yield
    finally:
        release.set()
        monkeypatch.setattr(matcher, "understand_many", understand_many)

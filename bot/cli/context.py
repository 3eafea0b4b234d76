"""What every command shares: the settings, loaded on first use, and a migrated database to work on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from bot.config import Settings, load_settings

if TYPE_CHECKING:
    from bot.storage.database import Database

T = TypeVar("T")


class CommandContext:
    """The `--config` given to `supportbot`, and the settings read from it when a command first needs them."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


pass_context = click.make_pass_decorator(CommandContext)


def on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the configured database (migrated to the latest schema), run `work` on it, close it."""
    from bot.storage.database import Database

    async def run() -> T:
        database = Database(settings.database_url)
        try:
            await database.migrate()
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(run())

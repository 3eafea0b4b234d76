"""The real `supportbot` executable of this environment, and a config for it on the demo content."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.paths import REPO

SUPPORTBOT = str(Path(sys.executable).parent / "supportbot")


def write_config(tmp_path: Path, index_cache: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kb: {{path: {REPO / 'kb'}}}\n"
        f"intents: {{path: {REPO / 'intents'}}}\n"
        "database: {url: 'sqlite+aiosqlite:///var/bot.db'}\n"
        f"embedding: {{cache_dir: {index_cache}}}\n",
        encoding="utf-8",
    )
    return config

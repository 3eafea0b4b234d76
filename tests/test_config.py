from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("kb: {path: content/kb}\n", encoding="utf-8")
    settings = load_settings(tmp_path / "config.yaml")
    assert settings.resolve(settings.kb.path) == tmp_path / "content" / "kb"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/var/supportbot.db"


def test_environment_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text("database: {url: 'sqlite+aiosqlite:///a.db'}\n", encoding="utf-8")
    monkeypatch.setenv("SUPPORTBOT_DATABASE__URL", "postgresql+asyncpg://u@h/db")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    settings = load_settings(tmp_path / "config.yaml")
    assert settings.database.url == "postgresql+asyncpg://u@h/db"
    assert settings.channels.telegram.token == "123:abc"


def test_config_env_var_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "other.yaml").write_text("server: {port: 9999}\n", encoding="utf-8")
    monkeypatch.setenv("SUPPORTBOT_CONFIG", str(tmp_path / "other.yaml"))
    assert load_settings().server.port == 9999


@pytest.mark.parametrize(
    ("text", "message"),
    [("kb: [1, 2\n", "invalid YAML"), ("- a\n", "must be a mapping"), ("colour: red\n", "colour")],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path / "config.yaml")


def test_shipped_config_matches_the_defaults() -> None:
    shipped = load_settings(Path(__file__).parents[1] / "config.yaml")
    assert shipped.embedding.model == "builtin:multilingual-e5-small"
    assert shipped.server.port == 8080

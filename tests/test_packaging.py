"""pyproject.toml ships what exists, and the default install does without the optional extras."""

from __future__ import annotations

import importlib
import re
import sys
import tomllib

import pytest

from tests.support.paths import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE = REPO / "bot"


def test_package_data_globs_match_files() -> None:
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["bot"]
    assert [pattern for pattern in globs if not any(PACKAGE.glob(pattern))] == []


def test_every_data_file_of_the_package_is_shipped() -> None:
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["bot"]
    shipped = {path for pattern in globs for path in PACKAGE.glob(pattern)}
    data = {
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    assert sorted(str(p.relative_to(PACKAGE)) for p in data - shipped) == []


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_dev_extra_holds_every_other_extra() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    dev = {_name(r) for r in extras["dev"]}
    for extra, requirements in extras.items():
        assert {_name(r) for r in requirements} <= dev, f"[dev] lacks part of [{extra}]: make test needs it"


def test_only_the_ptb_integration_imports_python_telegram_bot() -> None:
    importing = re.compile(r"^\s*(?:from|import)\s+telegram\b", re.M)
    modules = sorted(PACKAGE.rglob("*.py"))
    assert [str(p.relative_to(REPO)) for p in modules if importing.search(p.read_text(encoding="utf-8"))] == [
        "bot/adapters/telegram_ptb.py"
    ]
    assert "python-telegram-bot" not in {_name(r) for r in PYPROJECT["project"]["dependencies"]}


def test_ptb_integration_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "telegram", None)  # as if python-telegram-bot were not installed
    monkeypatch.delitem(sys.modules, "bot.adapters.telegram_ptb", raising=False)
    with pytest.raises(ImportError, match=re.escape("pip install 'supportbot[ptb]'")):
        importlib.import_module("bot.adapters.telegram_ptb")

"""The docs stay true: every settings key is documented in config.yaml, every relative link resolves."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from bot.config import Settings
from tests.support.paths import REPO

CONFIG = REPO / "config.yaml"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "eval").glob("*.md"))]


def _model_in(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """Return ("dict" | "list", Model) for dict[str, Model] and list[Model] fields, else None."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (dict, list) and args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
        return ("dict" if origin is dict else "list", args[-1])
    return None


def _keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Yield (path, annotation) of every field, descending into nested settings models."""
    for name, field in model.model_fields.items():
        if field.exclude:  # base_dir: set by load_settings, not a key
            continue
        path = (*prefix, name)
        yield path, field.annotation
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _keys(field.annotation, path)


def _lookup(data: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def test_every_settings_key_is_documented_in_config_yaml() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    shipped = yaml.safe_load(text)
    missing = [".".join(path) for path, _ in _keys(Settings) if not _lookup(shipped, path)]
    assert not missing, (
        f"config.yaml does not show these keys (add each with its default and a comment): {missing}"
    )
    # the fields of a dict or list of models (context providers, canned responses) may be shown in comments
    for path, annotation in _keys(Settings):
        inner = _model_in(annotation)
        if inner is None:
            continue
        section = text[text.index(f"{path[-1]}:") :]
        undocumented = [name for name in inner[1].model_fields if not re.search(rf"\b{name}:", section)]
        assert not undocumented, f"config.yaml: {'.'.join(path)} does not show {undocumented}"


def _unknown(data: Any, model: type[BaseModel], prefix: str) -> Iterator[str]:
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            yield f"{prefix}{key}"
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _unknown(value, field.annotation, f"{prefix}{key}.")


def test_config_yaml_shows_no_key_the_settings_lack() -> None:
    # nested sections ignore unknown keys, so a renamed key would linger here unnoticed
    shipped = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert list(_unknown(shipped, Settings, "")) == []


_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def _anchors(page: Path) -> set[str]:
    """Return GitHub's heading anchors of a Markdown page."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 1
        while anchor in anchors:  # GitHub numbers repeated headings
            anchor, n = f"{slug}-{n}", n + 1
        anchors.add(anchor)
    return anchors


def _links(page: Path) -> Iterator[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    for target in _LINK.findall(text):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if REPO not in (file, *file.parents) or not file.exists():
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


def test_readme_fits_in_300_lines() -> None:
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_pages_name_no_path_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert not re.findall(r"\.\./shared|/work/|/home/|/tmp/\w", text)

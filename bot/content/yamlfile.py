"""Read YAML content files keeping line numbers, so errors can name file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.errors import ContentError


class LineDict(dict[str, Any]):
    """A mapping that remembers the line (1-based) where it started."""

    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict(loader.construct_pairs(node, deep=True))
    result.line = node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    """Parse `path`; raise ContentError naming file:line:column on a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ContentError([f"{where}: YAML error: {problem}"]) from exc
    except yaml.YAMLError as exc:
        raise ContentError([f"{path}: YAML error: {exc}"]) from exc


def line_of(node: Any) -> int:
    """Return the remembered line of a mapping, or 0 when unknown."""
    return getattr(node, "line", 0)


def content_files(folder: Path, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> list[Path]:
    """List the content files of a folder (or the file itself), sorted for stable ids."""
    if folder.is_file():
        return [folder]
    if not folder.exists():
        raise ContentError([f"{folder}: folder not found (check kb.path / intents.path in config.yaml)"])
    return sorted(p for p in folder.iterdir() if p.suffix in suffixes and not p.name.startswith("."))

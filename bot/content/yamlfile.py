"""Read YAML content files keeping line numbers, so errors can name file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.errors import ContentError

# One content file may be at most this big (256 KiB): the demo KB's largest file is ~27 KB, and a file is
# read, parsed and its new sentences embedded on every reload (a 5 MB file kept a core busy for half an hour).
MAX_FILE_BYTES = 262_144


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
    """Parse `path`; raise ContentError naming file:line:column on a syntax error, a file over
    MAX_FILE_BYTES, nesting too deep to read, or anything else the parser fails on."""
    text = read_content_file(path)
    try:
        loader = _LineLoader(text)  # reads the whole text: a control character fails here already
    except yaml.YAMLError as exc:
        raise ContentError([f"{path}: YAML error: {exc}"]) from exc
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ContentError([f"{where}: YAML error: {problem}"]) from exc
    except yaml.YAMLError as exc:
        raise ContentError([f"{path}: YAML error: {exc}"]) from exc
    except RecursionError as exc:  # e.g. a list nested 100,000 deep: PyYAML recurses once per level
        raise ContentError([f"{_where(path, loader)}: YAML error: nested too deeply to read"]) from exc
    except Exception as exc:  # whatever else the parser trips on is this file's problem, not a crash
        raise ContentError([f"{_where(path, loader)}: YAML error: {type(exc).__name__}: {exc}"]) from exc
    finally:
        loader.dispose()


def read_content_file(path: Path) -> str:
    """The text of a content file; ContentError when it is over MAX_FILE_BYTES or not UTF-8 text."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ContentError(
                [
                    f"{path}: {size} bytes, over the limit of {MAX_FILE_BYTES} bytes for one content file "
                    "(split it into several files)"
                ]
            )
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    except OSError as exc:
        raise ContentError([f"{path}: cannot read it: {exc}"]) from exc


def _where(path: Path, loader: _LineLoader) -> str:
    """file:line:column where the parser stopped (as far as it got)."""
    mark = loader.get_mark()
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


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

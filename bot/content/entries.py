"""KB entries as text in their files: find one, its version, and write it changed, new, deleted or restored.

A file is edited as text, like bot/content/edit.py does: an entry is the lines from its `- ` to the end of
its last value (blank lines and comments around it belong to the file). A changed entry has only the keys
whose value changed rewritten (within `questions:` and `answer:`, only the languages that changed), so a
saved answer is a one-line diff and everything else in the file stays byte for byte. An entry's version
(its ETag) is a hash of its text in the file: an edit made meanwhile elsewhere, in the workspace or by a
`git pull`, changes it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from bot.content.edit import _after_line, _compose, _last_leaf, _line_at, _quoted, _scalar
from bot.errors import ContentError

KEYS = ("id", "title", "tags", "questions", "answer", "action", "handoff")  # the order new keys go in
_PLAIN_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class EntryFields:
    """What an editor sets of an entry (the form, the API's body)."""

    id: str
    title: str = ""
    tags: tuple[str, ...] = ()
    questions: dict[str, list[str]] = field(default_factory=dict)
    answer: dict[str, str] = field(default_factory=dict)
    handoff: bool = False
    action: str | None = None

    def normalised(self) -> dict[str, Any]:
        """The values as the KB loader reads them back (texts stripped, empty ones dropped)."""
        return {
            "title": self.title.strip(),
            "tags": [str(tag) for tag in self.tags],
            "questions": {
                lang: [q.strip() for q in texts if q.strip()] for lang, texts in self.questions.items()
            },
            "answer": {lang: text.strip() for lang, text in self.answer.items() if text.strip()},
            "action": (self.action or "").strip() or None,
            "handoff": bool(self.handoff),
        }


@dataclass(frozen=True)
class EntryText:
    """Where one entry is in its file's text."""

    id: str
    start: int  # the start of the line with its `-`
    end: int  # after the line break of its last line
    text: str
    line: int  # of its `-`, 1-based
    node: MappingNode = field(repr=False, compare=False)

    @property
    def version(self) -> str:
        return version_of(self.text)


def version_of(text: str) -> str:
    """An entry's version: a hash of its text (the ETag the API gives)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def entries_in(source: str, where: str = "") -> list[EntryText]:
    """Every entry of a KB file's text (items of its top-level list with an `id`), in file order."""
    root = _compose(source, where)
    if root is None:
        return []
    if not isinstance(root, SequenceNode) or root.flow_style:
        raise ContentError([f"{where}:1: the file must be a list of entries (each starting with `- id:`)"])
    found = []
    for item in root.value:
        entry_id = _scalar(_value(item, "id")).strip()
        if not isinstance(item, MappingNode) or item.flow_style or not entry_id:
            continue
        dash = source.rfind("-", 0, item.start_mark.index)
        start = _line_start(source, dash if dash >= 0 else item.start_mark.index)
        end = _trimmed_end(source, start, _after_line(source, _last_leaf(item)))
        found.append(EntryText(entry_id, start, end, source[start:end], _line_at(source, start), item))
    return found


def find_entry(source: str, entry_id: str, where: str = "") -> EntryText | None:
    return next((entry for entry in entries_in(source, where) if entry.id == entry_id), None)


# --- changing the text ---------------------------------------------------------------------------------


def change_entry(source: str, entry: EntryText, fields: EntryFields, languages: list[str]) -> str:
    """Return `source` with `entry` set to `fields`: only the keys (and languages) that changed rewritten."""
    wanted = fields.normalised()
    edits = _mapping_edits(source, entry.node, {k: wanted[k] for k in KEYS if k != "id"}, languages, 0)
    return _apply(source, edits)


def render_entry(fields: EntryFields, languages: list[str]) -> str:
    """A new entry's text: `- id: ...` with its keys two spaces in, ending with a line break."""
    wanted = fields.normalised()
    lines = [f"- id: {_plain_or_quoted(fields.id)}\n"]
    for key in KEYS[1:]:
        if _present(key, wanted[key]):
            lines.append("  " + _render(key, wanted[key], 2, languages, None))
    return "".join(lines)


def add_entry(source: str, text: str) -> tuple[str, int]:
    """Return `source` with the entry `text` appended after a blank line, and the line it starts on."""
    newline = "\r\n" if "\r\n" in source else "\n"
    body = source.rstrip("\r\n")
    before = body + newline + newline if body else ""
    return before + text.replace("\n", newline), _line_at(before, len(before))


def remove_entry(source: str, entry: EntryText) -> str:
    """Return `source` without `entry` and the blank lines that followed it (or, last, preceded it)."""
    end = entry.end
    while end < len(source) and source[end : _next_line(source, end)].strip() == "":
        end = _next_line(source, end)
    start = entry.start
    if end >= len(source):  # the last entry: the blank lines before it go instead
        while start > 0 and source[_line_start(source, start - 1) : start].strip() == "":
            start = _line_start(source, start - 1)
    return source[:start] + source[end:]


def restore_entry(source: str, current: EntryText | None, text: str) -> tuple[str, int]:
    """Return `source` with the entry's text exactly `text` (replacing `current`, or appended)."""
    if current is None:
        return add_entry(source, text)
    return source[: current.start] + text + source[current.end :], current.line


# --- keys, one by one ------------------------------------------------------------------------------------

Edit = tuple[int, int, str]  # replace source[start:end] with the text


def _mapping_edits(
    source: str, node: MappingNode, wanted: dict[str, Any], languages: list[str], depth: int
) -> list[Edit]:
    edits: list[Edit] = []
    have = {_scalar(key): (key, value) for key, value in node.value}
    column = node.value[0][0].start_mark.column
    for name, value in wanted.items():
        if name not in have:
            if _present(name, value):
                at = _insert_at(source, node, name)
                newline = "" if source[:at].endswith("\n") else "\n"  # the file's last line, unbroken
                edits.append((at, at, newline + " " * column + _render(name, value, column, languages, None)))
            continue
        key, current = have[name]
        start, end = _key_span(source, key, current)
        if not _present(name, value) and name not in ("handoff", "tags") and depth == 0:
            edits.append((_line_start(source, start), end, ""))
            continue
        if _same(name, _construct(current), value):
            continue
        nested = depth == 0 and name in ("questions", "answer")
        if nested and isinstance(current, MappingNode) and not current.flow_style and current.value:
            inner = {lang: value.get(lang) for lang in [*(_scalar(k) for k, _ in current.value), *value]}
            edits += _language_edits(source, current, inner, name)
            continue
        edits.append((start, end, _render(name, value, column, languages, current)))
    return edits


def _language_edits(source: str, node: MappingNode, wanted: dict[str, Any], kind: str) -> list[Edit]:
    """The edits within `questions:` or `answer:`: each language changed, added or removed alone."""
    edits: list[Edit] = []
    have = {_scalar(key): (key, value) for key, value in node.value}
    column = node.value[0][0].start_mark.column
    last_end = _key_span(source, *node.value[-1])[1]
    for lang, value in wanted.items():
        if lang not in have:
            if value:
                edits.append((last_end, last_end, " " * column + _render_language(kind, lang, value, column)))
            continue
        key, current = have[lang]
        start, end = _key_span(source, key, current)
        if not value:
            edits.append((_line_start(source, start), end, ""))
        elif not _same(kind, {lang: _construct(current)}, {lang: value}):
            edits.append((start, end, _render_language(kind, lang, value, column, current)))
    return edits


def _insert_at(source: str, node: MappingNode, name: str) -> int:
    """Where a new key goes: after the last key that comes before it in KEYS, else after the last key."""
    earlier = set(KEYS[: KEYS.index(name)])
    spans = [_key_span(source, key, value) for key, value in node.value if _scalar(key) in earlier]
    return spans[-1][1] if spans else _key_span(source, *node.value[-1])[1]


def _apply(source: str, edits: list[Edit]) -> str:
    for start, end, text in sorted(edits, key=lambda edit: (edit[0], edit[1]), reverse=True):
        source = source[:start] + text + source[end:]
    return source


def _same(name: str, current: Any, wanted: Any) -> bool:
    """Whether a key's value in the file reads back as the wanted one (as the KB loader reads it)."""
    if name == "questions":
        current = {
            str(lang): [q.strip() for q in ([texts] if isinstance(texts, str) else texts or []) if q.strip()]
            for lang, texts in (current or {}).items()
        }
        return bool(current == wanted)
    if name == "answer":
        if isinstance(current, str):
            return False  # one text for the default language: rewritten as a mapping
        return {str(k): str(v).strip() for k, v in (current or {}).items() if str(v).strip()} == wanted
    if name == "tags":
        return [str(t) for t in current or []] == wanted
    if name == "title" or name == "action":
        return (str(current).strip() if current else None) == (wanted or None)
    return bool(current == wanted)


def _present(name: str, value: Any) -> bool:
    return (name == "handoff" and value is True) or (name != "handoff" and bool(value))


# --- rendering ---------------------------------------------------------------------------------------------


def _render(name: str, value: Any, column: int, languages: list[str], current: Node | None) -> str:
    """`name: value` from the key's column on (its first line unindented), ending with a line break."""
    if name == "tags":
        return f"tags: [{', '.join(_plain_or_quoted(tag) for tag in value)}]\n"
    if name == "handoff":
        return f"handoff: {'true' if value else 'false'}\n"
    if name in ("title", "action"):
        return f"{name}: {_quoted(value) if name == 'title' else _plain_or_quoted(value)}\n"
    indent = " " * (column + 2)
    order = [lang for lang in languages if lang in value] + [lang for lang in value if lang not in languages]
    return f"{name}:\n" + "".join(
        indent + _render_language(name, lang, value[lang], column + 2) for lang in order
    )


def _render_language(kind: str, lang: str, value: Any, column: int, current: Node | None = None) -> str:
    if kind == "questions":
        if isinstance(current, SequenceNode) and not current.flow_style:
            item = " " * (column + 2) + "- "
            return f"{lang}:\n" + "".join(f"{item}{_quoted(q)}\n" for q in value)
        return f"{lang}: [{', '.join(_quoted(q) for q in value)}]\n"
    text = str(value)
    if "\n" in text and all(line.isprintable() for line in text.split("\n")):
        indent = " " * (column + 2)
        body = "".join(f"{indent}{line}\n" if line else "\n" for line in text.split("\n"))
        return f"{lang}: |-\n{body}"
    return f"{lang}: {_quoted(text)}\n"


def _plain_or_quoted(text: str) -> str:
    """Plain when YAML reads it back as this very text (delivery, gift-card), else double-quoted."""
    try:
        if _PLAIN_TAG.match(text) and yaml.safe_load(text) == text:
            return text
    except yaml.YAMLError:  # e.g. a control character: PyYAML's emitter escapes it when quoting
        pass
    return _quoted(text)


# --- positions ---------------------------------------------------------------------------------------------


def _value(node: Node, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    return next((value for name, value in node.value if _scalar(name) == key), None)


def _construct(node: Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _key_span(source: str, key: Node, value: Node) -> tuple[int, int]:
    """From a key to the line break after its value's last line (comments after that stay outside)."""
    end = _trimmed_end(source, key.start_mark.index, _after_line(source, _last_leaf(value)))
    return key.start_mark.index, end


def _line_start(source: str, index: int) -> int:
    return source.rfind("\n", 0, index) + 1


def _next_line(source: str, index: int) -> int:
    found = source.find("\n", index)
    return len(source) if found == -1 else found + 1


def _trimmed_end(source: str, start: int, end: int) -> int:
    """`end` moved back over blank lines (a block text's end mark is after the blank lines that follow)."""
    while end > start:
        previous = _line_start(source, end - 1)
        if previous <= start or source[previous:end].strip():
            break
        end = previous
    return end

"""The knowledge workspace's edits of kb/: read the entries with their versions; save, create, delete and
restore one, each checked like `supportbot kb check` before the file is written.

Every write goes through bot/content/edit.py: the changed file is checked with the same loaders and
checker as `kb check` on a copy of both content folders, must read the entry back as the editor wrote
it, and replaces the file atomically only if the file still holds what was read (else ChangedMeanwhile,
nothing written). A save names the version of the entry it started from: if the entry's text in the file
is no longer that version (another editor's save, a `git pull`), it is refused with Stale and the
current version. These functions block (file I/O, YAML): the API runs them in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings
from bot.content.edit import EDIT_LOCK, UnknownEntry, check_edit, read_file, replace_file
from bot.content.entries import (
    EntryFields,
    EntryText,
    add_entry,
    change_entry,
    entries_in,
    find_entry,
    remove_entry,
    render_entry,
    restore_entry,
    version_of,
)
from bot.content.intents import IntentSet
from bot.content.knowledge import KBEntry, KnowledgeBase, load_knowledge_base
from bot.content.yamlfile import content_files
from bot.errors import ContentError, SupportBotError


class Stale(SupportBotError):
    """The entry is no longer the version the edit started from; `current` is what it is now."""

    def __init__(self, message: str, current: StoredEntry | None) -> None:
        super().__init__(message)
        self.current = current


class EntryExists(SupportBotError):
    """A new entry's id is already taken."""


@dataclass(frozen=True)
class StoredEntry:
    """An entry as the KB loader reads it, with its file and its text there."""

    entry: KBEntry
    file: Path
    text: EntryText

    @property
    def version(self) -> str:
        return self.text.version


@dataclass(frozen=True)
class Change:
    """What one write did to one entry: its text before and after (None: there was none, or is none)."""

    entry_id: str
    file: Path
    before: str | None
    after: str | None
    line: int

    @property
    def version(self) -> str | None:
        return None if self.after is None else version_of(self.after)


def kb_files(settings: Settings) -> list[Path]:
    return content_files(settings.resolve(settings.kb.path))


def read_entries(settings: Settings) -> list[StoredEntry]:
    """Every entry the KB loader accepts, in file order, with its file and text."""
    kb = load_knowledge_base(settings.resolve(settings.kb.path), settings.kb.languages)
    found: list[StoredEntry] = []
    texts: dict[Path, dict[str, EntryText]] = {}
    for entry in kb.entries:
        path = Path(entry.source.rsplit(":", 1)[0])
        if path not in texts:
            texts[path] = {e.id: e for e in entries_in(read_file(path), str(path))}
        text = texts[path].get(entry.id)
        if text is not None:
            found.append(StoredEntry(entry, path, text))
    return found


def get_entry(settings: Settings, entry_id: str) -> StoredEntry | None:
    return next((stored for stored in read_entries(settings) if stored.entry.id == entry_id), None)


def save_entry(settings: Settings, fields: EntryFields, version: str | None) -> Change:
    """Set entry `fields.id` to `fields` if it is still `version` (None: whatever it is)."""
    with EDIT_LOCK:
        stored = _current(settings, fields.id, version)
        original = read_file(stored.file)
        changed = change_entry(original, stored.text, fields, settings.kb.languages)
        return _write(settings, stored.file, original, changed, fields, stored.text.text)


def create_entry(settings: Settings, fields: EntryFields, file: str | None) -> Change:
    """Add a new entry to `file` (a KB file's name; default: the file of its first tag's entries)."""
    with EDIT_LOCK:
        entries = read_entries(settings)
        if any(stored.entry.id == fields.id for stored in entries):
            raise EntryExists(f"an entry with id {fields.id!r} already exists: choose another id")
        path = _target_file(settings, file, fields, entries)
        original = read_file(path)
        changed, _ = add_entry(original, render_entry(fields, settings.kb.languages))
        return _write(settings, path, original, changed, fields, None)


def delete_entry(settings: Settings, entry_id: str, version: str | None) -> Change:
    with EDIT_LOCK:
        stored = _current(settings, entry_id, version)
        original = read_file(stored.file)
        changed = remove_entry(original, stored.text)

        def gone(kb: KnowledgeBase, _: IntentSet) -> bool:
            return kb.get(entry_id) is None

        check_edit(settings, stored.file, changed, gone)
        replace_file(stored.file, original, changed)
        return Change(entry_id, stored.file, stored.text.text, None, stored.text.line)


def restore_text(
    settings: Settings, entry_id: str, text: str | None, file: Path, version: str | None
) -> Change:
    """Make the entry's text exactly `text` again (None: no entry), in its file or, gone, in `file`."""
    with EDIT_LOCK:
        stored = get_entry(settings, entry_id)
        if version is not None and (stored is None or stored.version != version):
            raise Stale(f"entry {entry_id!r} changed since you loaded it", stored)
        if stored is None and text is None:
            raise ContentError([f"entry {entry_id!r} is already deleted"])
        path = stored.file if stored is not None else _kb_file(settings, file)
        original = read_file(path)
        if text is None:
            assert stored is not None
            changed, line = remove_entry(original, stored.text), stored.text.line
        else:
            changed, line = restore_entry(original, stored.text if stored else None, text)
            found = find_entry(changed, entry_id, str(path))
            if found is None or found.text != text:
                raise ContentError([f"{path}: that version of {entry_id!r} is not an entry of its own"])

        def restored(kb: KnowledgeBase, _: IntentSet) -> bool:
            return (kb.get(entry_id) is None) == (text is None)

        check_edit(settings, path, changed, restored)
        replace_file(path, original, changed)
        return Change(entry_id, path, stored.text.text if stored else None, text, line)


# --- helpers -----------------------------------------------------------------------------------------------


def _current(settings: Settings, entry_id: str, version: str | None) -> StoredEntry:
    stored = get_entry(settings, entry_id)
    if stored is None:
        raise UnknownEntry(f"no knowledge-base entry {entry_id!r}")
    if version is not None and stored.version != version:
        raise Stale(
            f"entry {entry_id!r} changed since you loaded it (another editor's save, or its file changed "
            "on disk): here is the current version; apply your change to it and save again",
            stored,
        )
    return stored


def _write(
    settings: Settings, path: Path, original: str, changed: str, fields: EntryFields, before: str | None
) -> Change:
    wanted = fields.normalised()

    def read_back(kb: KnowledgeBase, _: IntentSet) -> bool:
        entry = kb.get(fields.id)
        return entry is not None and _fields_of(entry) == wanted

    check_edit(settings, path, changed, read_back)
    replace_file(path, original, changed)
    after = find_entry(changed, fields.id, str(path))
    assert after is not None
    return Change(fields.id, path, before, after.text, after.line)


def _fields_of(entry: KBEntry) -> dict[str, object]:
    return EntryFields(
        entry.id,
        entry.title,
        entry.tags,
        {lang: list(texts) for lang, texts in entry.questions.items()},
        dict(entry.answer),
        entry.handoff,
        entry.action,
    ).normalised()


def _kb_file(settings: Settings, name: str | Path) -> Path:
    """A KB file by its name (payment.yaml) or path; ContentError if it is not one of kb/'s files."""
    files = kb_files(settings)
    wanted = Path(name)
    for path in files:
        if path.name == wanted.name and (
            len(wanted.parts) == 1 or path.resolve() == settings.resolve(wanted).resolve()
        ):
            return path
    names = ", ".join(path.name for path in files)
    raise ContentError([f"{name}: not a knowledge-base file (one of: {names})"])


def _target_file(
    settings: Settings, file: str | None, fields: EntryFields, entries: list[StoredEntry]
) -> Path:
    if file:
        return _kb_file(settings, file)
    tag = fields.tags[0] if fields.tags else None
    same = next((stored.file for stored in entries if tag and tag in stored.entry.tags), None)
    return same or kb_files(settings)[0]

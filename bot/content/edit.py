"""Add one customer question to the content files: to a KB entry's questions, or to the `oos` examples.

The file is edited as text: the question is appended to the entry's list for its language (a flow list
`en: [...]` gets `, "question"` before its `]`, a block list one more `- "question"` line), or one
`- question` line is added after the last example of the `oos` intent. Comments, order and formatting
of everything else stay byte for byte. The result is checked by the same loaders and checker as
`supportbot kb check`, on a copy of both content folders, and must read back as written; only then is
it written, atomically (a temporary file beside it renamed over it), so the running bot's reload
(bot/app.py watches the files) never sees half a file. A refused edit leaves the file as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.config import Settings
from bot.content.check import check_content
from bot.content.intents import OOS_INTENT, IntentSet, load_intents
from bot.content.knowledge import KnowledgeBase, load_knowledge_base
from bot.content.yamlfile import content_files, read_content_file
from bot.errors import ContentError, SupportBotError

MAX_TEXT = 1000
_ENTRY_ID = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
# Edits run in worker threads, one at a time in this process (the insights' additions and the knowledge
# workspace's saves alike); across processes, replace_file refuses a file that changed meanwhile.
EDIT_LOCK = threading.Lock()


class UnknownEntry(SupportBotError):
    """No KB entry has this id."""


class AlreadyPresent(SupportBotError):
    """The text is already a question of the entry, or already an out-of-scope example."""


class ChangedMeanwhile(SupportBotError):
    """The file changed on disk while the edit was being checked; nothing was written."""


@dataclass(frozen=True)
class ContentEdit:
    file: Path
    line: int  # where the text now is (1-based)
    text: str  # as written: surrounding and repeated spaces removed


def tidy(text: str) -> str:
    """Return the text on one line with single spaces (how it is written into a file)."""
    return " ".join(text.split())


def add_question(settings: Settings, entry_id: str, language: str, text: str) -> ContentEdit:
    """Add `text` to the questions of KB entry `entry_id` in `language`; raise if refused."""
    text = _checked_text(text)
    if language not in settings.kb.languages:
        raise ContentError(
            [f"language {language!r} is not one of kb.languages ({', '.join(settings.kb.languages)})"]
        )
    folder = settings.resolve(settings.kb.path)
    entry = load_knowledge_base(folder, settings.kb.languages).get(entry_id)
    if entry is None:
        raise UnknownEntry(f"no knowledge-base entry {entry_id!r} in {folder}")
    for lang, questions in entry.questions.items():
        if any(_same(question, text) for question in questions):
            raise AlreadyPresent(f"{text!r} is already a question of entry {entry_id!r} ({lang})")
    path = Path(entry.source.rsplit(":", 1)[0])
    original = read_file(path)
    changed, line = insert_question(original, entry_id, language, text, where=str(path))

    def read_back(kb: KnowledgeBase, _: IntentSet) -> bool:
        added = kb.get(entry_id)
        return added is not None and text in added.questions.get(language, [])

    check_edit(settings, path, changed, read_back)
    replace_file(path, original, changed)
    return ContentEdit(path, line, text)


def add_out_of_scope_example(settings: Settings, text: str) -> ContentEdit:
    """Add `text` as an example of the `oos` intent (the first file that has one); raise if refused."""
    text = _checked_text(text)
    folder = settings.resolve(settings.intents.path)
    intent = load_intents(folder).get(OOS_INTENT)
    if intent is None:
        raise ContentError([f"{folder}: no `- intent: {OOS_INTENT}` with examples to add to; add one first"])
    if any(_same(example, text) for example in intent.examples):
        raise AlreadyPresent(f"{text!r} is already an out-of-scope example")
    path = Path(intent.source.rsplit(":", 1)[0])
    original = read_file(path)
    changed, line = insert_example(original, OOS_INTENT, text, where=str(path))

    def read_back(_: KnowledgeBase, intents: IntentSet) -> bool:
        added = intents.get(OOS_INTENT)
        return added is not None and text in added.examples

    check_edit(settings, path, changed, read_back)
    replace_file(path, original, changed)
    return ContentEdit(path, line, text)


def add_questions(settings: Settings, entry_id: str, questions: list[tuple[str, str]]) -> ContentEdit:
    """Add several (language, text) questions to KB entry `entry_id` in one checked write.

    Questions the entry already has are left out; raise AlreadyPresent when none is left.
    """
    folder = settings.resolve(settings.kb.path)
    entry = load_knowledge_base(folder, settings.kb.languages).get(entry_id)
    if entry is None:
        raise UnknownEntry(f"no knowledge-base entry {entry_id!r} in {folder}")
    has = {tidy(q).casefold() for texts in entry.questions.values() for q in texts}
    wanted: list[tuple[str, str]] = []
    for language, raw in questions:
        text = _checked_text(raw)
        if language not in settings.kb.languages:
            raise ContentError([f"language {language!r} is not one of kb.languages"])
        if text.casefold() not in has:
            has.add(text.casefold())
            wanted.append((language, text))
    if not wanted:
        raise AlreadyPresent(f"every question is already a question of entry {entry_id!r}")
    path = Path(entry.source.rsplit(":", 1)[0])
    original = changed = read_file(path)
    first = 0
    for language, text in wanted:
        changed, line = insert_question(changed, entry_id, language, text, where=str(path))
        first = first or line

    def read_back(kb: KnowledgeBase, _: IntentSet) -> bool:
        added = kb.get(entry_id)
        return added is not None and all(t in added.questions.get(lang, []) for lang, t in wanted)

    check_edit(settings, path, changed, read_back)
    replace_file(path, original, changed)
    return ContentEdit(path, first, "; ".join(text for _, text in wanted))


def add_entry(
    settings: Settings,
    path: Path,
    entry_id: str,
    questions: dict[str, list[str]],
    answer: dict[str, str],
    comment: str = "",
    tags: tuple[str, ...] = (),
) -> ContentEdit:
    """Append a new KB entry to `path` (a file of kb.path; created when missing) in one checked write."""
    if not _ENTRY_ID.fullmatch(entry_id):
        raise ContentError([f"entry id {entry_id!r}: use lowercase letters, digits and _ (at most 64)"])
    texts = {lang: [_checked_text(q) for q in qs] for lang, qs in questions.items() if qs}
    answers = {lang: " ".join(text.split()) for lang, text in answer.items() if text.strip()}
    for lang in [*texts, *answers]:
        if lang not in settings.kb.languages:
            raise ContentError([f"language {lang!r} is not one of kb.languages"])
    original = read_file(path) if path.exists() else ""
    lines = [f"# {line}" for line in comment.splitlines() if line.strip()]
    lines += [f"- id: {entry_id}"]
    if tags:
        lines.append(f"  tags: [{', '.join(_quoted(tag) for tag in tags)}]")
    lines.append("  questions:")
    lines += [f"    {lang}: [{', '.join(_quoted(q) for q in qs)}]" for lang, qs in texts.items()]
    lines.append("  answer:")
    lines += [f"    {lang}: {_quoted(text)}" for lang, text in answers.items()]
    newline = "\r\n" if "\r\n" in original else "\n"
    before = original if not original or original.endswith(("\n", "\r\n")) else original + newline
    changed = before + (newline if before else "") + newline.join(lines) + newline
    comments = sum(line.startswith("#") for line in lines)
    line = _line_at(changed, len(before) + (len(newline) if before else 0)) + comments

    def read_back(kb: KnowledgeBase, _: IntentSet) -> bool:
        added = kb.get(entry_id)
        return added is not None and added.questions == texts and added.answer == answers

    check_edit(settings, path, changed, read_back)
    replace_file(path, original, changed)
    return ContentEdit(path, line, entry_id)


# --- the text edits ------------------------------------------------------------------------------


def insert_question(source: str, entry_id: str, language: str, text: str, where: str = "") -> tuple[str, int]:
    """Return `source` with `text` added to entry `entry_id`'s questions in `language`, and its line."""
    root = _compose(source, where)
    entry = next(
        (node for node in _items(root) if _scalar(_get(node, "id")).strip() == entry_id),
        None,
    )
    questions = _get(entry, "questions")
    if not isinstance(questions, MappingNode) or questions.flow_style or not questions.value:
        raise ContentError([f"{where}: entry {entry_id!r} has no `questions:` block to add to"])
    quoted = _quoted(text)
    value = _get(questions, language)
    if value is None:  # the first question in this language: a new `xx: ["..."]` line after the last one
        indent = " " * questions.value[0][0].start_mark.column
        return _insert_line(
            source, _after_line(source, _last_leaf(questions)), f"{indent}{language}: [{quoted}]"
        )
    if isinstance(value, SequenceNode) and value.flow_style:
        at = value.value[-1].end_mark.index if value.value else value.start_mark.index + 1
        piece = f", {quoted}" if value.value else quoted
        return source[:at] + piece + source[at:], _line_at(source, at)
    if isinstance(value, SequenceNode) and value.value:
        indent = " " * value.start_mark.column  # the column of its first `-`
        return _insert_line(source, _after_line(source, _last_leaf(value)), f"{indent}- {quoted}")
    span = source[value.start_mark.index : value.end_mark.index]
    if isinstance(value, ScalarNode) and value.style in (None, "'", '"') and span and "\n" not in span:
        # one question as a string becomes a flow list of two (plain text is quoted: `?` or `,` end it there)
        first = span if value.style else _quoted(value.value)
        at = value.start_mark.index
        return source[:at] + f"[{first}, {quoted}]" + source[value.end_mark.index :], _line_at(source, at)
    raise ContentError(
        [f"{where}:{value.start_mark.line + 1}: questions.{language} of {entry_id!r} is not a list to add to"]
    )


def insert_example(source: str, intent: str, text: str, where: str = "") -> tuple[str, int]:
    """Return `source` with `- text` after the last example of intent `intent`, and its line."""
    root = _compose(source, where)
    block = next(
        (node for node in _items(_get(root, "nlu")) if _scalar(_get(node, "intent")).strip() == intent),
        None,
    )
    examples = _get(block, "examples")
    if not isinstance(examples, ScalarNode) or examples.style != "|":
        raise ContentError([f"{where}: intent {intent!r} has no `examples: |` block to add to"])
    body = source.find("\n", examples.start_mark.index) + 1  # the line after the `|`
    last: tuple[int, int] | None = None  # start and end of the last line with an example
    start = body
    while 0 < start < examples.end_mark.index:
        end = source.find("\n", start, examples.end_mark.index)
        end = examples.end_mark.index if end == -1 else end
        if source[start:end].strip():
            last = (start, end)
        start = end + 1
    if last is None:
        raise ContentError([f"{where}: intent {intent!r} has no examples to add to"])
    line = source[last[0] : last[1]]
    indent = line[: len(line) - len(line.lstrip())]
    return _insert_line(source, _after_line(source, last[1]), f"{indent}- {text}")


def _compose(source: str, where: str) -> Node | None:
    try:
        return yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ContentError([f"{where}: YAML error: {exc}"]) from exc
    except RecursionError as exc:
        raise ContentError([f"{where}: YAML error: nested too deeply to read"]) from exc


def _items(node: Node | None) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else []


def _get(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    return next((value for name, value in node.value if _scalar(name) == key), None)


def _scalar(node: Node | None) -> str:
    return node.value if isinstance(node, ScalarNode) else ""


def _last_leaf(node: Node) -> int:
    """Where the last scalar (or flow collection) inside a block collection ends."""
    while isinstance(node, SequenceNode | MappingNode) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return int(node.end_mark.index)


def _after_line(source: str, index: int) -> int:
    """The start of the line after the one that `index` (an end position) is on."""
    if index > 0 and source[index - 1] == "\n":  # a block text ends with its line break
        return index
    found = source.find("\n", index)
    return len(source) if found == -1 else found + 1


def _insert_line(source: str, at: int, line: str) -> tuple[str, int]:
    newline = "\r\n" if "\r\n" in source else "\n"
    before = source[:at]
    if before and not before.endswith("\n"):  # the last line of a file without a final line break
        before += newline
    return before + line + newline + source[at:], _line_at(before, len(before))


def _line_at(source: str, index: int) -> int:
    return source.count("\n", 0, index) + 1


def _quoted(text: str) -> str:
    """Return `text` as a one-line double-quoted YAML scalar (escapes done by PyYAML's own emitter)."""
    dumped = yaml.safe_dump(text, default_style='"', allow_unicode=True, width=float("inf"))
    return str(dumped).rstrip("\n")


def _same(a: str, b: str) -> bool:
    return tidy(a).casefold() == tidy(b).casefold()


# What YAML can hold (its printable set): control characters and lone surrogates cannot be written.
_UNWRITABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _checked_text(text: str) -> str:
    text = tidy(text)
    if not text:
        raise ContentError(["the text is empty"])
    if (bad := _UNWRITABLE.search(text)) is not None:
        raise ContentError([f"the text holds a control character ({ord(bad.group()):#06x}): remove it"])
    if len(text) > MAX_TEXT:
        raise ContentError([f"the text is longer than {MAX_TEXT} characters: a question is shorter"])
    return text


# --- checking and writing ------------------------------------------------------------------------


def read_file(path: Path) -> str:
    return read_content_file(path)  # bytes decoded: line breaks stay as they are; size limit checked


def check_edit(
    settings: Settings, path: Path, changed: str, read_back: Callable[[KnowledgeBase, IntentSet], bool]
) -> None:
    """Run `kb check` over copies of both folders with `path` changed; raise ContentError if it fails."""
    kb_folder = settings.resolve(settings.kb.path)
    intents_folder = settings.resolve(settings.intents.path)
    with tempfile.TemporaryDirectory(prefix="supportbot-edit-") as scratch:
        kb_copy = _copy(kb_folder, Path(scratch) / "kb", path, changed)
        intents_copy = _copy(intents_folder, Path(scratch) / "intents", path, changed)
        trial = settings.model_copy(
            update={
                "kb": settings.kb.model_copy(update={"path": kb_copy}),
                "intents": settings.intents.model_copy(update={"path": intents_copy}),
            }
        )
        problems = [
            problem.replace(str(kb_copy), str(kb_folder)).replace(str(intents_copy), str(intents_folder))
            for problem in check_content(trial).problems
        ]
        if problems:
            raise ContentError(problems)
        kb = load_knowledge_base(kb_copy, settings.kb.languages)
        if not read_back(kb, load_intents(intents_copy)):
            raise ContentError(
                [f"{path}: the text would not be read back as written (Rasa [text](entity) markup?)"]
            )


def _copy(folder: Path, scratch: Path, changed_path: Path, changed: str) -> Path:
    """Copy the content files of `folder` into `scratch`, `changed_path` with the changed text."""
    try:
        files = content_files(folder)
    except ContentError:
        return folder  # missing: the check reports it as it would for the real folder
    scratch.mkdir(parents=True)
    for file in files:
        if file.resolve() == changed_path.resolve():
            (scratch / file.name).write_bytes(changed.encode("utf-8"))
        else:
            shutil.copyfile(file, scratch / file.name)
    if (
        folder.is_dir()
        and changed_path.parent.resolve() == folder.resolve()
        and all(f.resolve() != changed_path.resolve() for f in files)
    ):
        (scratch / changed_path.name).write_bytes(changed.encode("utf-8"))  # a new file of this folder
    return scratch / folder.name if folder.is_file() else scratch


def replace_file(path: Path, original: str, changed: str) -> None:
    """Write `changed` over `path` atomically, unless the file no longer holds `original`."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(changed.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        if not path.exists():  # a new file: created only if nobody made it meanwhile
            if original:
                raise ChangedMeanwhile(f"{path} was removed while the edit was checked; nothing written")
            os.chmod(temporary, 0o644)
            try:
                os.link(temporary, path)  # fails if it exists by now
            except FileExistsError as exc:
                raise ChangedMeanwhile(f"{path} was created meanwhile; nothing written, try again") from exc
            return
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        if read_file(path) != original:  # edited by someone else since we read it: theirs wins
            raise ChangedMeanwhile(f"{path} changed while the edit was checked; nothing written, try again")
        os.replace(temporary, path)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(temporary)

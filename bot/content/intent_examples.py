"""Intents' examples (the Rasa NLU files in intents/) edited as text, like KB entries: the lines of one
intent's `examples: |` block are replaced, everything else in the file stays byte for byte. Its version is a
hash of those lines. An intent spread over several blocks is edited in its first one (the others stay).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from bot.config import Settings
from bot.content.edit import EDIT_LOCK, _compose, _get, _scalar, check_edit, read_file, replace_file
from bot.content.entries import version_of
from bot.content.intents import IntentSet
from bot.content.knowledge import KnowledgeBase
from bot.content.yamlfile import content_files
from bot.errors import ContentError, SupportBotError


class StaleIntent(SupportBotError):
    """The intent's examples are no longer the version the edit started from."""

    def __init__(self, message: str, current: str) -> None:
        super().__init__(message)
        self.current = current


@dataclass(frozen=True)
class ExamplesBlock:
    """Where one intent's examples are in its file: the lines after `examples: |`."""

    intent: str
    file: Path
    start: int
    end: int
    text: str
    line: int  # the first example's

    @property
    def version(self) -> str:
        return version_of(self.text)

    @property
    def examples(self) -> list[str]:
        return [line.strip()[2:].strip() for line in self.text.splitlines() if line.strip().startswith("- ")]


def blocks_in(source: str, path: Path) -> list[ExamplesBlock]:
    """The first `examples: |` block of each intent in a Rasa NLU file."""
    root = _compose(source, str(path))
    items = _get(root, "nlu")
    found: dict[str, ExamplesBlock] = {}
    for item in items.value if isinstance(items, SequenceNode) else []:
        name = _scalar(_get(item, "intent")).strip()
        examples = _get(item, "examples")
        if not isinstance(item, MappingNode) or not name or name in found:
            continue
        if not isinstance(examples, ScalarNode) or examples.style != "|":
            continue
        start = source.find("\n", examples.start_mark.index) + 1
        end = examples.end_mark.index
        while end > start and source[end - 1] == "\n" and source[start:end].endswith("\n\n"):
            end -= 1  # the blank lines after the block are the file's
        found[name] = ExamplesBlock(
            name, path, start, end, source[start:end], source.count("\n", 0, start) + 1
        )
    return list(found.values())


def read_blocks(settings: Settings) -> list[ExamplesBlock]:
    blocks: list[ExamplesBlock] = []
    seen: set[str] = set()
    for path in content_files(settings.resolve(settings.intents.path)):
        for block in blocks_in(read_file(path), path):
            if block.intent not in seen:
                seen.add(block.intent)
                blocks.append(block)
    return blocks


def save_examples(
    settings: Settings, intent: str, examples: list[str], version: str | None
) -> tuple[str, str]:
    """Set the examples of `intent`'s first block; return its text before and after."""
    wanted = [" ".join(example.split()) for example in examples if example.strip()]
    if not wanted:
        raise ContentError([f"intent {intent!r} needs at least one example"])
    if any(example.startswith(("#", "- ")) for example in wanted):
        raise ContentError([f"intent {intent!r}: an example cannot start with '#' or '- '"])
    with EDIT_LOCK:
        block = next((b for b in read_blocks(settings) if b.intent == intent), None)
        if block is None:
            raise ContentError([f"no intent {intent!r} with an `examples: |` block"])
        if version is not None and block.version != version:
            raise StaleIntent(f"the examples of {intent!r} changed since you loaded them", block.text)
        first = next((line for line in block.text.splitlines() if line.strip()), "    - x")
        indent = first[: len(first) - len(first.lstrip())]
        text = "".join(f"{indent}- {example}\n" for example in wanted)
        original = read_file(block.file)
        changed = original[: block.start] + text + original[block.end :]

        def read_back(_: KnowledgeBase, intents: IntentSet) -> bool:
            found = intents.get(intent)
            return found is not None and all(example in found.examples for example in wanted)

        check_edit(settings, block.file, changed, read_back)
        replace_file(block.file, original, changed)
        return block.text, text

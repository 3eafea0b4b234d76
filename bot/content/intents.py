"""Conversational intents (greet, thanks, human_request...) in Rasa NLU YAML format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.content.yamlfile import content_files, line_of, load_yaml
from bot.errors import ContentError

OOS_INTENT = "oos"  # examples of what the bot must not answer; used for calibration only
_EXAMPLE_LINE = re.compile(r"^\s*-\s+(.*\S)\s*$")


@dataclass(frozen=True)
class Intent:
    name: str
    examples: tuple[str, ...]
    source: str = ""


@dataclass
class IntentSet:
    intents: list[Intent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def get(self, name: str) -> Intent | None:
        return next((i for i in self.intents if i.name == name), None)

    @property
    def conversational(self) -> list[Intent]:
        """Return the intents the bot acts on (everything except the oos examples)."""
        return [i for i in self.intents if i.name != OOS_INTENT]


def _strip_rasa_markup(example: str) -> str:
    # Rasa entity annotations: [Berlin](city) -> Berlin
    return re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", example).strip()


def load_intents(folder: Path) -> IntentSet:
    """Load intents/*.yml; the same example under two intents is a problem."""
    result = IntentSet()
    merged: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    example_owner: dict[str, tuple[str, str]] = {}
    try:
        files = content_files(folder)
    except ContentError as exc:
        result.problems.extend(exc.problems)
        return result
    for path in files:
        try:
            document = load_yaml(path)
        except ContentError as exc:
            result.problems.extend(exc.problems)
            continue
        if document is None:
            continue
        if not isinstance(document, dict) or "nlu" not in document:
            result.problems.append(f'{path}:1: expected Rasa NLU format: `version: "3.1"` and an `nlu:` list')
            continue
        items = document.get("nlu") or []
        if not isinstance(items, list):
            result.problems.append(f"{path}:{line_of(document)}: `nlu:` must be a list of `- intent:` items")
            continue
        for item in items:
            where = f"{path}:{line_of(item)}"
            if not isinstance(item, dict) or "intent" not in item:
                continue  # synonyms, regexes and lookups are Rasa features we ignore
            name = str(item["intent"]).strip()
            block = item.get("examples")
            if not isinstance(block, str):
                result.problems.append(
                    f"{where}: intent {name!r}: `examples: |` must be a block of `- ` lines"
                )
                continue
            examples: list[str] = []
            for offset, line in enumerate(block.splitlines()):
                if not line.strip():
                    continue
                match = _EXAMPLE_LINE.match(line)
                ex_where = f"{path}:{line_of(item) + 2 + offset}"
                if not match:
                    result.problems.append(
                        f"{ex_where}: intent {name!r}: example must start with '- ': {line!r}"
                    )
                    continue
                text = _strip_rasa_markup(match.group(1))
                key = text.casefold()
                owner = example_owner.get(key)
                if owner and owner[0] != name:
                    result.problems.append(
                        f"{ex_where}: example {text!r} is under intent {name!r} and also under "
                        f"{owner[0]!r} at {owner[1]}"
                    )
                    continue
                example_owner[key] = (name, ex_where)
                examples.append(text)
            if not examples:
                result.problems.append(f"{where}: intent {name!r} has no examples")
            merged.setdefault(name, []).extend(examples)
            sources.setdefault(name, where)
    for name, examples in merged.items():
        unique = tuple(dict.fromkeys(examples))
        result.intents.append(Intent(name=name, examples=unique, source=sources[name]))
    return result

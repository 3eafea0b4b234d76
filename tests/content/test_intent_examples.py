"""Intents' examples edited as text (bot/content/intent_examples.py): one intent's block changes, the rest of
the Rasa NLU file stays byte for byte; a stale version or a save `kb check` refuses writes nothing."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings
from bot.content.intent_examples import StaleIntent, read_blocks, save_examples
from bot.errors import ContentError
from tests.support.paths import REPO


def test_an_intents_examples_are_saved_in_place(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    shutil.copytree(REPO / "kb", tmp_path / "kb")
    shutil.copytree(REPO / "intents", tmp_path / "intents")
    settings = make_settings(kb={"path": str(tmp_path / "kb")}, intents={"path": str(tmp_path / "intents")})
    path = tmp_path / "intents" / "conversation.yml"
    original = path.read_text(encoding="utf-8")
    greet = next(block for block in read_blocks(settings) if block.intent == "greet")
    assert (greet.file, greet.line, greet.examples[:2]) == (path, 5, ["hello", "hi"])

    before, after = save_examples(settings, "greet", [*greet.examples, "  hiya   there "], greet.version)
    assert before == greet.text and after == greet.text + "    - hiya there\n"
    assert path.read_text(encoding="utf-8") == original.replace(greet.text, after)
    saved = next(block for block in read_blocks(settings) if block.intent == "greet")
    assert saved.examples[-1] == "hiya there" and saved.version != greet.version

    edited = path.read_bytes()
    with pytest.raises(StaleIntent):
        save_examples(settings, "greet", ["hello"], greet.version)
    with pytest.raises(ContentError, match="also under"):  # thanks' example under greet: kb check refuses
        save_examples(settings, "greet", [*saved.examples, "thanks"], saved.version)
    assert path.read_bytes() == edited

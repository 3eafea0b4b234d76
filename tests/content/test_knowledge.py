"""KnowledgeBase.get: constant-time look-ups that follow changes to the entries list."""

from __future__ import annotations

from bot.content.knowledge import KBEntry, KnowledgeBase


def entry(entry_id: str, answer: str = "a") -> KBEntry:
    return KBEntry(entry_id, {"en": [f"question {entry_id}"]}, {"en": answer})


def test_get_follows_appends_replacements_and_removals() -> None:
    kb = KnowledgeBase([entry("a"), entry("b")])
    assert kb.get("b") is kb.entries[1] and kb.get("missing") is None
    kb.entries.append(entry("c"))
    assert kb.get("c") is kb.entries[2]
    kb.entries[0] = entry("a", "new answer")
    assert kb.get("a") is kb.entries[0] and kb.entries[0].answer["en"] == "new answer"
    del kb.entries[0]
    assert kb.get("a") is None and kb.get("b") is kb.entries[0] and kb.get("c") is kb.entries[1]

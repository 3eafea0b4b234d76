"""Try a customer's message against the knowledge base as it is, or with an entry's unsaved draft.

With a draft, a matcher is built for this one try: the running one's KB with the draft in place of the
saved entry (or added), the same intents, encoder and thresholds; only the draft's new sentences are
embedded (the others come from the sentence cache) and the classifier head is refitted without being
cached. The confusion warning is `kb check`'s: an entry is hard to tell from another when a quarter or
more of its questions are closer to the other entry's questions than to its own other questions.
CPU-bound: call these in the service's executor.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from bot.content.entries import EntryFields
from bot.content.knowledge import KBEntry, KnowledgeBase
from bot.nlu.index import SemanticIndex
from bot.nlu.language import detect_language
from bot.nlu.matcher import Matcher, index_items, train_head
from bot.nlu.policy import Decision

MIN_CONFUSED_SHARE = 0.25  # as bot/nlu/calibration.py's confusable_entries


@dataclass(frozen=True)
class Trial:
    decision: Decision
    language: str
    entry: KBEntry | None  # the entry answered with (or the clarification's first), if any
    warnings: list[str]


def with_draft(matcher: Matcher, draft: EntryFields) -> Matcher:
    """A matcher like `matcher` whose KB has `draft` in place of the entry with its id (or added)."""
    fields = draft.normalised()
    entry = KBEntry(
        id=draft.id,
        questions=fields["questions"],
        answer=fields["answer"],
        tags=tuple(fields["tags"]),
        handoff=fields["handoff"],
        source="(draft)",
        action=fields["action"],
        title=fields["title"],
    )
    entries = [entry if e.id == draft.id else e for e in matcher.kb.entries]
    if matcher.kb.get(draft.id) is None:
        entries.append(entry)
    kb = KnowledgeBase(entries=entries)
    settings = matcher.settings
    items = index_items(kb, matcher.intents, settings.policy.answer_evidence, matcher.head is not None)
    cache_dir = settings.resolve(settings.embedding.cache_dir)
    index = SemanticIndex.build(matcher.encoder, items, cache_dir, progress=False)
    head = train_head(index, None, "") if matcher.head is not None else None
    return Matcher(settings, matcher.encoder, kb, matcher.intents, index, matcher.thresholds, head)


def try_message(matcher: Matcher, text: str, language: str | None, draft_id: str | None) -> Trial:
    """What the bot would do with `text` (in `language`, else the detected one) on this matcher's KB."""
    kb_settings = matcher.settings.kb
    if language is None:
        detected = detect_language(text)[0]
        language = detected if detected in kb_settings.languages else kb_settings.default_language
    decision = matcher.understand(text)
    label = decision.label if decision.kind in ("answer", "clarify") else None
    if label is None and decision.options:
        label = decision.options[0]
    entry = matcher.kb.get(label) if label else None
    warnings = confusion_warnings(matcher, draft_id) if draft_id else []
    return Trial(decision, language, entry, warnings)


def confusion_warnings(matcher: Matcher, entry_id: str) -> list[str]:
    """`kb check`'s warning for `entry_id` when its questions are too close to another entry's."""
    items = matcher.index.items
    vectors = matcher.index.vectors
    own = [
        i for i, item in enumerate(items) if item.kind == "kb" and item.label == entry_id and not item.variant
    ]
    if len(own) < 2:
        return []
    sims = vectors[own] @ vectors.T
    for row, i in enumerate(
        own
    ):  # a question is not its own neighbour, nor is its spelling without diacritics
        sims[row, i] = -np.inf
        if i + 1 < len(items) and items[i + 1].variant and items[i + 1].label == entry_id:
            sims[row, i + 1] = -np.inf
    nearest = [items[int(j)] for j in np.argmax(sims, axis=1)]
    closer = Counter(item.label for item in nearest if item.kind == "kb" and item.label != entry_id)
    if not closer:
        return []
    other, confused = closer.most_common(1)[0]
    if confused / len(own) < MIN_CONFUSED_SHARE:
        return []
    entry = matcher.kb.get(entry_id)
    where = entry.source if entry is not None else "(draft)"
    return [
        f"{where}: entry {entry_id!r} is hard to tell from {other!r}: {confused} of {len(own)} of its "
        f"questions are closer to {other!r}; merge them or make the questions more distinct"
    ]

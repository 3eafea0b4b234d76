"""The bundled generic out-of-scope set: what no support bot should answer, in en, ru, pl and uk.

Calibration scores these messages with the KB's own model and weighs them as out-of-scope traffic, so a
KB without editor-written out-of-scope examples still has something to weigh against answering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bot.content.intents import OOS_INTENT, load_intents
from bot.nlu.calibration import Record
from bot.nlu.index import embed_with_cache
from bot.nlu.normalize import has_words

if TYPE_CHECKING:
    from bot.nlu.matcher import Matcher

REFERENCE_DIR = Path(__file__).parent / "out_of_scope"
# A generic message this close (cosine) to one of the KB's own questions is something the KB covers
# (a phone shop does answer "recommend me a good phone"): it is left out of calibration.
KB_CLAIM = 0.92


@dataclass(frozen=True)
class ReferenceMessage:
    text: str
    lang: str


@cache
def generic_out_of_scope() -> tuple[ReferenceMessage, ...]:
    """Every bundled out-of-scope message, with its language (the file name)."""
    found: list[ReferenceMessage] = []
    for path in sorted(REFERENCE_DIR.glob("*.yml")):
        intents = load_intents(path)
        for intent in intents.intents:
            if intent.name == OOS_INTENT:
                found += [ReferenceMessage(text, path.stem) for text in intent.examples]
    return tuple(found)


def fingerprint() -> str:
    """Hash of the bundled set (a calibration made with another set is stale)."""
    digest = hashlib.sha256()
    for message in generic_out_of_scope():
        digest.update(f"{message.lang}\0{message.text}\n".encode())
    return digest.hexdigest()[:16]


def reference_records(
    matcher: Matcher, messages: Iterable[ReferenceMessage] | None = None, source: str = "generic"
) -> list[Record]:
    """Score the generic out-of-scope messages (or `messages`) with `matcher` as live messages (gold: out
    of scope; `source` names where they come from).

    Messages the KB itself claims (closer than KB_CLAIM to one of its questions) are left out.
    """
    messages = list(generic_out_of_scope() if messages is None else messages)
    prepared = []
    for message in messages:
        cleaned = matcher.clean(message.text)
        if not has_words(cleaned):
            continue
        readings = matcher.readings(cleaned)
        prepared.append((message, readings, matcher.message_parts(cleaned, readings)))
    cache_dir = matcher.settings.resolve(matcher.settings.embedding.cache_dir)
    texts = [part for _, _, parts in prepared for part in parts]
    vectors = embed_with_cache(matcher.encoder, texts, cache_dir)  # once per model, then from the cache
    questions = np.array([not item.evidence and item.kind == "kb" for item in matcher.index.items])
    kb_vectors = matcher.index.vectors[questions]
    records: list[Record] = []
    start = 0
    for message, readings, parts in prepared:
        rows = vectors[start : start + len(parts)]
        start += len(parts)
        if len(kb_vectors) and float((kb_vectors @ rows.T).max()) >= KB_CLAIM:
            continue
        records.append(Record(OOS_INTENT, matcher.rank(rows, readings), message.lang or None, source=source))
    return records

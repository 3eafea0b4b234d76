"""Understand one message: normalise, embed, search the KB and intents, decide."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bot.config import Settings
from bot.errors import ContentError
from bot.intents import IntentSet, load_intents
from bot.knowledge import KnowledgeBase, load_knowledge_base
from bot.nlu.encoders import Encoder, Thresholds, default_thresholds, load_encoder
from bot.nlu.human_request import is_human_request
from bot.nlu.index import Candidate, IndexItem, SemanticIndex
from bot.nlu.language import detect_language
from bot.nlu.normalize import has_words, normalize_for_matching, split_long
from bot.nlu.policy import Decision, decide


def index_items(kb: KnowledgeBase, intents: IntentSet) -> list[IndexItem]:
    """List every sentence the index holds: KB questions and all intent examples (oos included)."""
    items = [
        IndexItem(entry.id, "kb", question, lang)
        for entry in kb.entries
        for lang, questions in entry.questions.items()
        for question in questions
    ]
    for intent in intents.intents:
        for example in intent.examples:
            items.append(IndexItem(intent.name, "intent", example, detect_language(example)[0]))
    return items


def load_thresholds(settings: Settings, encoder: Encoder) -> Thresholds:
    """Config values win; then the calibration file for this model; then the back end's default."""
    base = default_thresholds(encoder)
    values = {"answer": base.answer, "clarify": base.clarify, "margin": base.margin}
    if settings.policy.calibration_file is not None:
        path = settings.resolve(settings.policy.calibration_file)
        if path.exists():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if isinstance(data, dict) and data.get("model_id") == encoder.model_id:
                for key in values:
                    if isinstance(data.get(key), int | float):
                        values[key] = float(data[key])
    for key, configured in (
        ("answer", settings.policy.answer_threshold),
        ("clarify", settings.policy.clarify_threshold),
        ("margin", settings.policy.clarify_margin),
    ):
        if configured is not None:
            values[key] = configured
    return Thresholds(**values)


@dataclass
class Matcher:
    """The intent layer: holds the KB, the intents, the encoder and the index built from them."""

    settings: Settings
    encoder: Encoder
    kb: KnowledgeBase
    intents: IntentSet
    index: SemanticIndex
    thresholds: Thresholds

    @classmethod
    def load(cls, settings: Settings, encoder: Encoder | None = None, progress: bool = True) -> Matcher:
        """Load content and build (or reuse) the index; raise ContentError naming file:line."""
        kb, intents = load_content(settings)
        encoder = encoder or load_encoder(settings.embedding.model, settings.embedding.threads)
        cache_dir: Path = settings.resolve(settings.embedding.cache_dir)
        index = SemanticIndex.build(encoder, index_items(kb, intents), cache_dir, progress=progress)
        return cls(settings, encoder, kb, intents, index, load_thresholds(settings, encoder))

    def embed_message(self, text: str) -> np.ndarray:
        """Embed a message, split into parts so the model never reads more than it can."""
        parts = split_long(text)
        capped = []
        for part in parts:
            while len(part) > 20 and self.encoder.token_count(part) > self.settings.embedding.max_tokens:
                part = part[: len(part) * 3 // 4]
            capped.append(part)
        return self.encoder.encode(capped)

    def candidates(self, text: str) -> list[Candidate]:
        cleaned = normalize_for_matching(text[: self.settings.policy.max_message_chars])
        if not has_words(cleaned):
            return []
        return self.index.search(self.embed_message(cleaned))

    def understand(self, text: str) -> Decision:
        """Decide what to do with one customer message (CPU-bound: call it off the event loop)."""
        if not text.strip():
            return Decision("fallback", reason="empty")
        if is_human_request(text):
            return Decision("handoff", "human_request", 1.0, "explicit_request")
        candidates = self.candidates(text)
        if not candidates:
            return Decision("fallback", reason="no_text")
        return decide(candidates, self.thresholds, dict(self.settings.intents.actions))


def load_content(settings: Settings) -> tuple[KnowledgeBase, IntentSet]:
    """Load kb/ and intents/; raise ContentError with every problem found."""
    kb = load_knowledge_base(settings.resolve(settings.kb.path), settings.kb.languages)
    intents = load_intents(settings.resolve(settings.intents.path))
    problems = kb.problems + intents.problems
    if problems:
        raise ContentError(problems)
    return kb, intents

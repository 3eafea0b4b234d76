"""Understand one message: normalise, embed, search the KB and intents, decide."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings
from bot.content.intents import OOS_INTENT, IntentSet, load_intents
from bot.content.knowledge import KnowledgeBase, load_knowledge_base
from bot.errors import ContentError
from bot.nlu import thresholds
from bot.nlu.classifier import DEFAULT_L2, LabelColumns, SoftmaxHead, blend, head_cache_key
from bot.nlu.encoders import Encoder, Thresholds, configured_encoder
from bot.nlu.human_request import is_human_request
from bot.nlu.index import EXACT_LIMIT, Candidate, IndexItem, SemanticIndex, cache_key
from bot.nlu.language import detect_language
from bot.nlu.lexical import LexicalIndex
from bot.nlu.normalize import fold_diacritics, has_words, normalize_for_matching, split_long
from bot.nlu.policy import Decision, decide
from bot.nlu.sentiment import Sentiment, load_examples
from bot.nlu.thresholds import load_thresholds
from bot.nlu.translit import looks_latin, to_cyrillic

log = logging.getLogger(__name__)


# An answer is evidence for its entry up to this many characters (cut at a sentence end): its opening
# says what the entry is about; the details after it only blur the vector.
EVIDENCE_CHARS = 300


# Answers are evidence for entries with fewer written questions than this. Entries with more do not need
# them, and on the full development sets they cost out-of-scope recall (dev2 0.690 -> 0.660, held-out 0.692
# -> 0.675; `supportbot eval --test eval/dev2_test.csv`), although in-scope accuracy and precision rose.
EVIDENCE_BELOW = 3


def evidence_text(answer: str) -> str:
    """The part of an answer indexed as evidence: its first sentences, up to EVIDENCE_CHARS."""
    text = " ".join(answer.split())
    if len(text) <= EVIDENCE_CHARS:
        return text
    cut = max(text.rfind(mark, 0, EVIDENCE_CHARS) for mark in (". ", "! ", "? ", "; "))
    return text[: cut + 1] if cut > EVIDENCE_CHARS // 3 else text[:EVIDENCE_CHARS]


# Conversational intents that may open or close a message holding a real question.
SMALL_TALK = frozenset({"greet", "thanks", "goodbye", "compliment"})
_CLAUSE_END = re.compile(r"[.!?;,:\n]+|\s+-\s+")


def split_clauses(text: str) -> list[str]:
    """Split a message at punctuation; without any, peel off its first word (often the greeting)."""
    clauses = [c.strip() for c in _CLAUSE_END.split(text) if c.strip()]
    if len(clauses) < 2:
        words = text.split()
        clauses = [words[0], " ".join(words[1:])] if len(words) > 1 else clauses
    return clauses


def index_items(
    kb: KnowledgeBase, intents: IntentSet, answers: bool = True, classifier: bool = True
) -> list[IndexItem]:
    """List every sentence the index holds: KB questions, their answers as evidence, and all intent
    examples (oos included, unless most entries are thin and the classifier head is on: calibration is
    anchored then, bot/nlu/thresholds.py).

    The answers make an entry with one or two written questions learnable: cross-validation holds such a
    question out, and without its answer the entry would vanish from the model (every record then looks
    out of scope, and calibration refuses everything).
    """
    items = []
    for entry in kb.entries:
        for lang, questions in entry.questions.items():
            for question in questions:
                items.append(IndexItem(entry.id, "kb", question, lang))
                folded = fold_diacritics(question)
                if folded != question:  # customers often type Polish (Czech, German...) without diacritics
                    items.append(IndexItem(entry.id, "kb", folded, lang, variant=True))
        if answers and sum(len(q) for q in entry.questions.values()) < EVIDENCE_BELOW:
            for lang, answer in entry.answer.items():
                if answer.strip():
                    items.append(IndexItem(entry.id, "kb", evidence_text(answer), lang, evidence=True))
    anchored = classifier and thresholds.is_thin(kb)
    for intent in intents.intents:
        if anchored and intent.name == OOS_INTENT:
            continue  # out-weighs one-question entries; it sets the gate instead (thresholds._measure_thin)
        for example in intent.examples:
            items.append(IndexItem(intent.name, "intent", example, detect_language(example)[0]))
    return items


def train_head(index: SemanticIndex, cache_dir: Path | None, key: str, l2: float = DEFAULT_L2) -> SoftmaxHead:
    """Fit the classifier head on every indexed sentence (or load it from the cache)."""
    path = cache_dir / f"{head_cache_key(key, l2)}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        head = SoftmaxHead.load(path)
        if head is not None:
            return head
    classes = sorted({(item.kind, item.label) for item in index.items})
    ids = {c: i for i, c in enumerate(classes)}
    targets = np.array([ids[(item.kind, item.label)] for item in index.items])
    head = SoftmaxHead.fit(index.vectors, classes, targets, l2)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        head.save(path)
    return head


def translit_languages(text: str) -> list[str]:
    """Which Cyrillic readings of a Latin-script message are worth scoring."""
    lang, confidence = detect_language(text)
    if lang in ("ru", "uk") and confidence >= 0.6:
        return [lang]
    if lang in ("en", "pl") and confidence >= 0.6:
        return []
    return ["ru", "uk"]


@dataclass
class Matcher:
    """The intent layer: holds the KB, the intents, the encoder and the index built from them."""

    settings: Settings
    encoder: Encoder
    kb: KnowledgeBase
    intents: IntentSet
    index: SemanticIndex
    thresholds: Thresholds
    head: SoftmaxHead | None = None
    cache_size: int = 4096  # repeated identical questions skip the model
    _cache: OrderedDict[str, list[Candidate]] = field(default_factory=OrderedDict, repr=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    lexical: LexicalIndex | None = field(default=None, repr=False)
    _columns: LabelColumns | None = field(default=None, repr=False)
    sentiment: Sentiment | None = field(default=None, repr=False)  # strong negative wording (Code Red)

    def __post_init__(self) -> None:
        """Build the lexical index over the same sentences (it only takes part beside the head)."""
        if self.head is not None and self.settings.policy.lexical and self.lexical is None:
            self.lexical = LexicalIndex([item.text for item in self.index.items])
        if self.head is not None:
            self._columns = LabelColumns.of(
                np.array([self.head.positions[(item.kind, item.label)] for item in self.index.items]),
                len(self.head.classes),
            )

    @classmethod
    def load(
        cls,
        settings: Settings,
        encoder: Encoder | None = None,
        progress: bool = True,
        calibrate: bool = True,
    ) -> Matcher:
        """Load content and build (or reuse) the index; raise ContentError naming file:line.

        With `calibrate` (and policy.auto_calibrate) a stale calibration is redone and written; callers
        that pick thresholds themselves or need none (`kb calibrate`, `eval`, `kb check`) pass False.
        """
        kb, intents = load_content(settings)
        matcher = cls.of_content(settings, kb, intents, encoder, progress)
        matcher.sentiment = matcher.load_sentiment(settings.resolve(settings.embedding.cache_dir))
        if calibrate and settings.policy.auto_calibrate and matcher.calibration_is_stale():
            matcher.calibrate()
        elif calibrate:
            thresholds.log_stored_warnings(settings)
        return matcher

    def load_sentiment(self, cache_dir: Path | None) -> Sentiment | None:
        """The strong-negative examples (flags.sentiment_path), embedded; None when flags are off or there are none."""
        flags = self.settings.flags
        if not flags.enabled:
            return None
        path = flags.sentiment_path
        if path is None:
            path = self.settings.resolve(self.settings.intents.path) / "sentiment"
            if not path.is_dir():
                log.info("no %s: Code Red reads no negative wording", path)
                return None
        negative, calm = load_examples(self.settings.resolve(path))
        clean = [self.clean(text) for text in negative], [self.clean(text) for text in calm]
        return Sentiment.build(self.encoder, *clean, cache_dir=cache_dir)

    def with_content(self, kb: KnowledgeBase, intents: IntentSet) -> Matcher | None:
        """This matcher over new content that indexes the very same sentences (an answer, a title, tags or a
        handoff flag changed): the index, head and thresholds stay, nothing is embedded again. None when a
        question or an example changed (build a new matcher then)."""

        def sentences(k: KnowledgeBase, i: IntentSet) -> tuple[str, list[tuple[str, tuple[str, ...]]]]:
            return k.fingerprint(), [(intent.name, intent.examples) for intent in i.intents]

        if sentences(kb, intents) != sentences(self.kb, self.intents):
            return None
        return replace(self, kb=kb, intents=intents)

    @classmethod
    def of_content(
        cls,
        settings: Settings,
        kb: KnowledgeBase,
        intents: IntentSet,
        encoder: Encoder | None = None,
        progress: bool = True,
    ) -> Matcher:
        """Build the index (and head) over given content, with the stored or default thresholds."""
        encoder = encoder or configured_encoder(settings.embedding)
        cache_dir: Path = settings.resolve(settings.embedding.cache_dir)
        items = index_items(kb, intents, settings.policy.answer_evidence, settings.policy.classifier)
        index = SemanticIndex.build(encoder, items, cache_dir, progress=progress)
        head = train_head(index, cache_dir, cache_key(encoder, items)) if settings.policy.classifier else None
        return cls(settings, encoder, kb, intents, index, load_thresholds(settings, encoder), head)

    def calibration_is_stale(self) -> bool:
        """True when the calibration file is missing or was measured on other content or another model."""
        return thresholds.is_stale(self)

    def content_fingerprint(self) -> str:
        """Hash of what calibration depends on (bot/nlu/thresholds.py)."""
        return thresholds.content_fingerprint(self)

    def calibrate(self, wrong_answer_cost: float | None = None) -> dict[str, Any]:
        """Pick thresholds on this content, write the calibration file and use them (bot/nlu/thresholds.py).

        The operating point is `policy.wrong_answer_cost` and `policy.oos_share` unless a cost is given.
        """
        return thresholds.calibrate(self, wrong_answer_cost)

    @staticmethod
    def readings(cleaned: str) -> list[str]:
        """The ways to read a message: as written, plus Cyrillic for Russian or Ukrainian typed in Latin."""
        if not looks_latin(cleaned):
            return [cleaned]
        return [cleaned] + [to_cyrillic(cleaned, lang) for lang in translit_languages(cleaned)]

    def embed_message(self, text: str, readings: list[str] | None = None) -> np.ndarray:
        """Embed a message, split into parts so the model never reads more than it can.

        Russian or Ukrainian typed in Latin letters is also read transliterated back to Cyrillic;
        the best-scoring reading wins in `rank`.
        """
        return self.encoder.encode(self.message_parts(text, readings))

    def message_parts(self, text: str, readings: list[str] | None = None) -> list[str]:
        """The texts the model reads for one message: the parts of each of its readings, capped."""
        return [
            self._cap(part) for reading in readings or self.readings(text) for part in split_long(reading)
        ]

    def _cap(self, part: str) -> str:
        limit = self.settings.embedding.max_tokens
        # Every token covers at least one character of the NFKC-normalised text (plus the prefix and
        # the special tokens): a part this short cannot be too long, so skip the tokenizer pass.
        if 2 * len(unicodedata.normalize("NFKC", part)) + 16 <= limit:
            return part
        while len(part) > 20 and self.encoder.token_count(part) > limit:
            part = part[: len(part) * 3 // 4]
        return part

    def candidates(self, text: str) -> list[Candidate]:
        """Return ranked candidates for a message (cached by its normalised text)."""
        cleaned = self.clean(text)
        if not has_words(cleaned):
            return []
        cached = self._cached(cleaned)
        if cached is not None:
            return cached
        readings = self.readings(cleaned)
        found = self.rank(self.embed_message(cleaned, readings), readings)
        self._remember(cleaned, found)
        return found

    def forget_messages(self) -> None:
        """Empty the cache of messages seen (after the head or lexical signal changed; between bench phases)."""
        with self._cache_lock:
            self._cache.clear()

    def clean(self, text: str) -> str:
        """The text the intent layer reads of a message: its first max_message_chars, normalised."""
        return normalize_for_matching(text[: self.settings.policy.max_message_chars])

    def _cached(self, cleaned: str) -> list[Candidate] | None:
        with self._cache_lock:
            cached = self._cache.get(cleaned)
            if cached is not None:
                self._cache.move_to_end(cleaned)
            return cached

    def _remember(self, cleaned: str, found: list[Candidate]) -> None:
        with self._cache_lock:
            self._cache[cleaned] = found
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def rank(self, vectors: np.ndarray, readings: list[str] | None = None) -> list[Candidate]:
        """Rank labels for the parts of one message: classifier probability, plus best cosine per label.

        With the head, each label's best cosine is exact, as cross-validation computes it, so the
        calibrated thresholds mean the same live: the message against every indexed sentence up to
        EXACT_LIMIT sentences (a fraction of a millisecond); beyond, the labels the neighbour search
        reached, with the ranked labels' cosines made exact. Without the head, the search ranks. With the
        lexical signal on, `readings` (the message's texts) are also matched letter by letter.
        """
        if self.head is None or self._columns is None:
            return self.index.search(vectors)
        columns = self._columns
        sentence_sims = None  # each indexed sentence's best cosine over the parts, when all were scored
        if len(self.index.items) <= EXACT_LIMIT:
            sentence_sims = (self.index.vectors @ vectors.T).max(axis=1)
            best_sim = columns.best(sentence_sims, -np.inf)
        else:
            best_sim = np.full(columns.count, -np.inf, dtype=np.float32)
            for near in self.index.search(vectors):
                best_sim[self.head.positions[(near.kind, near.label)]] = near.similarity
        best_lexical = None
        if self.lexical is not None and readings:
            best_lexical = columns.best(self.lexical.similarities(readings).max(axis=0), 0.0)
        probs = blend(self.head.predict(vectors).max(axis=0), best_sim, best_lexical)
        ranked = []
        for k in np.argsort(-probs)[:10]:
            rows = columns.rows(int(k))
            if not len(rows):
                continue
            if sentence_sims is not None:
                sims = sentence_sims[rows]
            else:
                sims = (self.index.vectors[rows] @ vectors.T).max(axis=1)
            best = int(np.argmax(sims))
            item = self.index.items[int(rows[best])]
            ranked.append(
                Candidate(item.label, item.kind, float(probs[k]), item.text, item.lang, float(sims[best]))
            )
        return ranked

    def understand(self, text: str) -> Decision:
        """Decide what to do with one customer message (CPU-bound: call it off the event loop)."""
        return self.understand_many([text])[0]

    def understand_many(self, texts: Sequence[str]) -> list[Decision]:
        """Decide for several messages at once, with one model call for all of them.

        Each decision is the one `understand` gives for that text alone: the model embeds every text of
        a batch independently (bit for bit the same vectors), it only streams its weights once per batch,
        which makes a busy bot's messages about 10% cheaper.
        """
        decisions: list[Decision | None] = [None] * len(texts)
        waiting: dict[str, list[int]] = {}  # normalised text -> the messages that need its candidates
        for i, text in enumerate(texts):
            if not text.strip():
                decisions[i] = Decision("fallback", reason="empty")
            elif is_human_request(text):
                decisions[i] = Decision("handoff", "human_request", 1.0, "explicit_request")
            else:
                cleaned = self.clean(text)
                cached = self._cached(cleaned) if has_words(cleaned) else []
                if cached is not None:
                    decisions[i] = self._with_negativity(self.decide(cached), cleaned, None)
                else:
                    waiting.setdefault(cleaned, []).append(i)
        if waiting:
            readings = [self.readings(cleaned) for cleaned in waiting]
            parts = [self.message_parts(c, r) for c, r in zip(waiting, readings, strict=True)]
            vectors = self.encoder.encode([part for message in parts for part in message])
            start = 0
            for (cleaned, positions), message, reading in zip(waiting.items(), parts, readings, strict=True):
                found = self.rank(vectors[start : start + len(message)], reading)
                start += len(message)
                self._remember(cleaned, found)
                for i in positions:
                    decisions[i] = self._with_negativity(
                        self.decide(found), cleaned, vectors[start - len(message) : start]
                    )
        done = [d for d in decisions if d is not None]
        return [self._beyond_small_talk(text, d) for text, d in zip(texts, done, strict=True)]

    def _beyond_small_talk(self, text: str, decision: Decision) -> Decision:
        """A greeting or thanks that comes with a real question: decide on the question.

        "privet, gde moi zakaz 12345? uzhe nedelyu zhdu" reads as a greeting as a whole; its clauses
        without the small talk read as the order question, and that is what the customer wants answered.
        """
        if decision.kind != "respond" or decision.label not in SMALL_TALK or len(text.split()) < 3:
            return decision
        clauses = split_clauses(text)
        verdicts = [self.decide(self.candidates(clause)) for clause in clauses]
        rest = [
            clause
            for clause, verdict in zip(clauses, verdicts, strict=True)
            if not (verdict.kind == "respond" and verdict.label in SMALL_TALK)
        ]
        if not rest or len(rest) == len(clauses):
            return decision
        beyond = self.decide(self.candidates(" ".join(rest)))
        if beyond.kind in ("answer", "clarify", "handoff") or (
            beyond.kind == "respond" and beyond.label not in SMALL_TALK
        ):
            return replace(
                beyond, reason=f"{beyond.reason}+after_{decision.label}", negativity=decision.negativity
            )
        return decision

    def _with_negativity(self, decision: Decision, cleaned: str, vectors: np.ndarray | None) -> Decision:
        """The decision with the message's strong-negative score, when it was (or is now) measured."""
        if self.sentiment is None:
            return decision
        score = self.sentiment.cached(cleaned)
        if score is None and vectors is not None and len(vectors):
            score = self.sentiment.negativity(vectors)
            self.sentiment.remember(cleaned, score)
        return replace(decision, negativity=score) if score is not None else decision

    def decide(self, candidates: list[Candidate], thresholds: Thresholds | None = None) -> Decision:
        """Apply the policy to ranked candidates (thresholds: the matcher's unless given)."""
        if not candidates:
            return Decision("fallback", reason="no_text")
        return decide(candidates, thresholds or self.thresholds, dict(self.settings.intents.actions))


def load_content(settings: Settings) -> tuple[KnowledgeBase, IntentSet]:
    """Load kb/ and intents/; raise ContentError with every problem found."""
    kb = load_knowledge_base(settings.resolve(settings.kb.path), settings.kb.languages)
    intents = load_intents(settings.resolve(settings.intents.path))
    problems = kb.problems + intents.problems
    if problems:
        raise ContentError(problems)
    return kb, intents

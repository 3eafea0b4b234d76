"""`supportbot eval`: run labelled messages through the live decision policy and report quality."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bot.config import Settings
from bot.content.intents import OOS_INTENT, Intent, IntentSet
from bot.content.knowledge import KBEntry, KnowledgeBase
from bot.errors import ContentError
from bot.nlu.calibration import Record, is_correct, record_weights, search_thresholds, utility
from bot.nlu.classifier import DEFAULT_L2, L2_CHOICES
from bot.nlu.encoders import Encoder, Thresholds, configured_encoder
from bot.nlu.human_request import is_human_request
from bot.nlu.index import cache_key
from bot.nlu.language import detect_language
from bot.nlu.matcher import Matcher, load_content, train_head
from bot.nlu.normalize import has_words
from bot.nlu.policy import Decision
from bot.nlu.threads import limit_blas_threads
from bot.nlu.thresholds import measure


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    lang: str | None = None


def load_csv(path: Path, oos_label: str) -> list[Example]:
    """Read a CSV with a header holding `text` and `intent` (and optionally `lang`)."""
    try:
        # utf-8-sig: a file saved by a spreadsheet, or downloaded from the console, starts with a BOM
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"text", "intent"} - set(reader.fieldnames or [])
            if missing:
                raise ContentError([f"{path}:1: CSV header lacks {', '.join(sorted(missing))}"])
            rows = []
            for number, row in enumerate(reader, start=2):
                text, intent = (row.get("text") or "").strip(), (row.get("intent") or "").strip()
                if not text or not intent:
                    raise ContentError([f"{path}:{number}: empty text or intent"])
                rows.append(
                    Example(text, OOS_INTENT if intent == oos_label else intent, row.get("lang") or None)
                )
            return rows
    except OSError as exc:
        raise ContentError([f"{path}: {exc}"]) from exc


def load_clinc(path: Path) -> tuple[list[Example], list[Example], list[Example]]:
    """Read CLINC150 JSON: train+oos_train, val+oos_val, test+oos_test (English)."""
    data = json.loads(path.read_text(encoding="utf-8"))

    def split(*names: str) -> list[Example]:
        return [
            Example(t, OOS_INTENT if i == "oos" else i, "en") for name in names for t, i in data.get(name, [])
        ]

    return split("train", "oos_train"), split("val", "oos_val"), split("test", "oos_test")


@dataclass(frozen=True)
class Shape:
    """The knowledge-base shape to evaluate in: what an editor would have written.

    `shots`: keep this many questions per entry (a seeded sample of training examples per intent; for
    the configured KB its first questions); `oos_train`: keep the out-of-scope training examples.
    Whether the bundled generic out-of-scope set takes part is `policy.default_oos`.
    """

    shots: int | None = None
    seed: int = 0
    oos_train: bool = True

    def sample(self, train: Sequence[Example]) -> list[Example]:
        """The training examples this shape keeps (seeded, per intent, order kept)."""
        kept = [e for e in train if self.oos_train or e.intent != OOS_INTENT]
        if self.shots is None:
            return kept
        rng = np.random.default_rng(self.seed)
        by_intent: dict[str, list[int]] = defaultdict(list)
        for i, example in enumerate(kept):
            if example.intent != OOS_INTENT:
                by_intent[example.intent].append(i)
        chosen = {
            int(i)
            for rows in by_intent.values()
            for i in rng.choice(rows, min(self.shots, len(rows)), replace=False)
        }
        return [e for i, e in enumerate(kept) if e.intent == OOS_INTENT or i in chosen]

    def reduce(self, kb: KnowledgeBase, intents: IntentSet) -> tuple[KnowledgeBase, IntentSet]:
        """The configured content cut to this shape: first `shots` questions per entry, oos kept or not."""
        if self.shots is not None:
            entries = []
            for entry in kb.entries:
                left, questions = self.shots, {}
                for lang, written in entry.questions.items():
                    if left > 0 and written:
                        questions[lang] = written[:left]
                        left -= len(questions[lang])
                entries.append(replace(entry, questions=questions))
            kb = KnowledgeBase(entries=entries)
        if not self.oos_train:
            intents = IntentSet([i for i in intents.intents if i.name != OOS_INTENT])
        return kb, intents

    def summary(self, default_oos: bool) -> dict[str, Any]:
        return {
            "shots": self.shots,
            "seed": self.seed,
            "oos_train": self.oos_train,
            "default_oos": default_oos,
        }


def matcher_from_examples(
    settings: Settings, encoder: Encoder, train: Sequence[Example], progress: bool
) -> Matcher:
    """Turn training examples into KB entries (one per intent) plus the oos examples."""
    grouped: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    oos: list[str] = []
    for example in train:
        if example.intent == OOS_INTENT:
            oos.append(example.text)
            continue
        lang = example.lang or detect_language(example.text)[0] or settings.kb.default_language
        grouped[example.intent][lang].append(example.text)
    kb = KnowledgeBase(
        entries=[
            KBEntry(intent, {k: list(v) for k, v in questions.items()}, {}, source="train")
            for intent, questions in grouped.items()
        ]
    )
    intents = IntentSet([Intent(OOS_INTENT, tuple(dict.fromkeys(oos)))] if oos else [])
    return Matcher.of_content(settings, kb, intents, encoder, progress)


def _records(
    matcher: Matcher, examples: Sequence[Example], desc: str, progress: bool
) -> tuple[list[Record], list[float]]:
    records, latencies = [], []
    for example in tqdm(examples, desc=desc, file=sys.stderr, disable=not progress, unit="msg"):
        started = time.perf_counter()
        candidates = matcher.candidates(example.text)
        latencies.append((time.perf_counter() - started) * 1000)
        records.append(Record(example.intent, candidates, example.lang))
    return records, latencies


def report(
    matcher: Matcher,
    examples: Sequence[Example],
    records: Sequence[Record],
    latencies: Sequence[float],
    wrong_answer_cost: float = 2.0,
    oos_share: float = 0.2,
) -> dict[str, Any]:
    """Compute the metrics of the live policy (rules included) on scored examples.

    `utility` is what calibration maximises (bot/nlu/calibration.py), with out-of-scope examples weighed
    to `oos_share` of the traffic: one figure to compare operating points by.
    """
    decisions: list[Decision] = []
    for example, record in zip(examples, records, strict=True):
        if not example.text.strip():
            decisions.append(Decision("fallback", reason="empty"))
        elif is_human_request(example.text):
            decisions.append(Decision("handoff", "human_request", 1.0, "explicit_request"))
        else:
            decisions.append(matcher.decide(record.candidates))
    in_scope = [
        (e, r, d) for e, r, d in zip(examples, records, decisions, strict=True) if e.intent != OOS_INTENT
    ]
    oos = [(e, d) for e, d in zip(examples, decisions, strict=True) if e.intent == OOS_INTENT]
    rejected = [(e, d) for e, d in zip(examples, decisions, strict=True) if d.kind in ("fallback", "handoff")]
    answered = [(e, d) for e, d in zip(examples, decisions, strict=True) if d.kind in ("answer", "respond")]
    per_language: dict[str, list[bool]] = defaultdict(list)
    for example, _, decision in in_scope:
        per_language[example.lang or "?"].append(is_correct(decision, example.intent))

    def share(values: Sequence[bool]) -> float | None:
        return round(float(np.mean(values)), 4) if values else None

    gold = [Record(e.intent, []) for e in examples]
    weights = record_weights(gold, oos_share)
    utilities = [utility(d, e.intent, wrong_answer_cost) for e, d in zip(examples, decisions, strict=True)]
    return {
        "utility": round(float(np.dot(weights, utilities) / weights.sum()), 4) if examples else None,
        "in_scope_accuracy": share([is_correct(d, e.intent) for e, _, d in in_scope]),
        "oos_recall": share([d.kind in ("fallback", "handoff") for _, d in oos]),
        "oos_precision": share([e.intent == OOS_INTENT for e, _ in rejected]),
        "answer_precision": share([d.label == e.intent for e, d in answered]),
        "top3_recall": share(
            [e.intent in [c.label for c in r.candidates if c.kind == "kb"][:3] for e, r, _ in in_scope]
        ),
        "clarify_rate": share([d.kind == "clarify" for d in decisions]),
        "answer_rate": share([d.kind in ("answer", "respond") for d in decisions]),
        "per_language": {lang: share(values) for lang, values in sorted(per_language.items())},
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2) if latencies else None,
        "model": matcher.encoder.model_id,
        "thresholds": {
            "answer": round(matcher.thresholds.answer, 4),
            "clarify": round(matcher.thresholds.clarify, 4),
            "margin": round(matcher.thresholds.margin, 4),
            "min_similarity": round(matcher.thresholds.min_similarity, 4),
            "intent": None if matcher.thresholds.intent is None else round(matcher.thresholds.intent, 4),
        },
        "classifier": matcher.head is not None,
        "counts": {"in_scope": len(in_scope), "oos": len(oos), "intents": len(matcher.kb.entries)},
    }


@dataclass(frozen=True)
class Tuning:
    """What `--val` picked: the head's L2 penalty, the lexical signal on or off, and the thresholds."""

    l2: float
    lexical: bool
    thresholds: Thresholds
    utility: float


def _embedded(
    matcher: Matcher, examples: Sequence[Example], desc: str, progress: bool
) -> list[tuple[np.ndarray, list[str]]]:
    """Embed each example once, as the live path does (parts, transliterated readings)."""
    out: list[tuple[np.ndarray, list[str]]] = []
    for example in tqdm(examples, desc=desc, file=sys.stderr, disable=not progress, unit="msg"):
        cleaned = matcher.clean(example.text)
        if not has_words(cleaned):
            out.append((np.zeros((0, matcher.encoder.dim), dtype=np.float32), []))
            continue
        readings = matcher.readings(cleaned)
        out.append((matcher.embed_message(cleaned, readings), readings))
    return out


def tune_on_validation(
    matcher: Matcher,
    val: Sequence[Example],
    wrong_answer_cost: float,
    oos_share: float,
    progress: bool,
) -> Tuning:
    """Pick the head's L2 and whether to use the lexical signal by the best utility on the validation set.

    Each choice gets its own thresholds (the same search `kb calibrate` runs); the matcher is left with
    the winner. The test set is never looked at.
    """
    embedded = _embedded(matcher, val, "embedding val", progress)
    cache = matcher.settings.resolve(matcher.settings.embedding.cache_dir)
    key = cache_key(matcher.encoder, matcher.index.items)
    lexical_index = matcher.lexical
    actions = dict(matcher.settings.intents.actions)
    best: Tuning | None = None
    for l2 in L2_CHOICES:
        matcher.head = train_head(matcher.index, cache, key, l2)
        for lexical in (False, True) if lexical_index is not None else (False,):
            matcher.lexical = lexical_index if lexical else None
            records = [
                Record(e.intent, matcher.rank(vectors, readings) if len(vectors) else [], e.lang)
                for e, (vectors, readings) in zip(val, embedded, strict=True)
            ]
            thresholds, score = search_thresholds(
                records, actions, matcher.thresholds, wrong_answer_cost, oos_share
            )
            if best is None or score > best.utility:
                best = Tuning(l2, lexical, thresholds, score)
    assert best is not None
    matcher.head = train_head(matcher.index, cache, key, best.l2)
    matcher.lexical = lexical_index if best.lexical else None
    matcher.thresholds = best.thresholds
    matcher.forget_messages()
    return best


def evaluate(
    settings: Settings,
    test: Sequence[Example],
    train: Sequence[Example] | None = None,
    val: Sequence[Example] | None = None,
    progress: bool = True,
    wrong_answer_cost: float = 2.0,
    oos_share: float = 0.2,
    shape: Shape | None = None,
) -> dict[str, Any]:
    """Build the intent layer from `train` (or the configured KB) in `shape`, calibrate, and score `test`.

    Without `val` the thresholds come from the same calibration a deployment runs (cross-validation over
    the training content plus, with policy.default_oos, the bundled generic out-of-scope set). With `val`
    (and the classifier head on) the head's L2 and the lexical signal are chosen on it too.
    BLAS runs single-threaded throughout, as in the service (its products are small; threads only spin).
    """
    with limit_blas_threads():
        return _evaluate(settings, test, train, val, progress, wrong_answer_cost, oos_share, shape or Shape())


def build_matcher(
    settings: Settings, train: Sequence[Example] | None, shape: Shape, progress: bool
) -> Matcher:
    """The intent layer an editor with content of this shape would run."""
    encoder = configured_encoder(settings.embedding)
    if train:
        return matcher_from_examples(settings, encoder, shape.sample(train), progress)
    kb, intents = shape.reduce(*load_content(settings))
    return Matcher.of_content(settings, kb, intents, encoder, progress)


def _evaluate(
    settings: Settings,
    test: Sequence[Example],
    train: Sequence[Example] | None,
    val: Sequence[Example] | None,
    progress: bool,
    wrong_answer_cost: float,
    oos_share: float,
    shape: Shape,
) -> dict[str, Any]:
    matcher = build_matcher(settings, train, shape, progress)
    tuning: Tuning | None = None
    calibration: dict[str, Any] | None = None
    if val and matcher.head is not None:
        tuning = tune_on_validation(matcher, val, wrong_answer_cost, oos_share, progress)
        source = "val"
    elif val:
        val_records, _ = _records(matcher, val, "scoring val", progress)
        source = "val"
        matcher.thresholds, _ = search_thresholds(
            val_records, dict(settings.intents.actions), matcher.thresholds, wrong_answer_cost, oos_share
        )
    else:
        found = measure(matcher, wrong_answer_cost, oos_share)
        matcher.thresholds = found.thresholds
        source = {
            "defaults": "calibration (defaults: degenerate)",
            "anchored": "calibration (anchored: thin KB)",
        }.get(found.state, "calibration")
        calibration = {
            "expected": asdict(found.expected),
            "fallback": found.fallback,
            "warnings": found.warnings,
            "measured_on": found.measured_on,
            "state": found.state,
        }
    records, latencies = _records(matcher, test, "scoring test", progress)
    result = report(matcher, test, records, latencies, wrong_answer_cost, oos_share)
    result["thresholds_from"] = source
    result["oos_share"] = oos_share
    result["head_l2"] = (tuning.l2 if tuning else DEFAULT_L2) if matcher.head is not None else None
    result["lexical"] = matcher.lexical is not None
    result["shape"] = shape.summary(settings.policy.default_oos)
    result["calibration"] = calibration
    return result

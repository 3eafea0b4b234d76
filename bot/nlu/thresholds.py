"""Calibrated thresholds: measure them on the content, refuse degenerate ones, store and load them."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from bot.config import Settings
from bot.content.intents import OOS_INTENT, IntentSet
from bot.content.knowledge import KnowledgeBase
from bot.nlu import reference
from bot.nlu.calibration import (
    REPEATS,
    Expected,
    Record,
    cross_validate,
    expected_figures,
    generic_share_for,
    search_thresholds,
)
from bot.nlu.encoders import Encoder, Thresholds, default_thresholds

if TYPE_CHECKING:
    from bot.nlu.matcher import Matcher

log = logging.getLogger(__name__)

VERSION = "calibration-v3"  # bump when what calibration measures changes: older files are stale
THIN_QUESTIONS = 3  # an entry with fewer written questions than this is thin ...
THIN_SHARE = 0.3  # ... and a KB where this share of entries is thin gets a warning
FEW_OOS = 20  # fewer editor-written out-of-scope examples than this: a warning
# Thresholds that would answer fewer covered questions, or decline fewer out-of-scope messages, than
# this share are degenerate ("refuse all" / "answer all"): the model's defaults are used instead.
DEGENERATE = 0.15
# A KB where this share of entries is thin is calibrated by anchoring (`_measure_thin`; it needs the
# classifier head, whose blended score the rules read), not by search:
# cross-validation holds out an entry's only question, and tidy questions held out against the answers
# score far higher than customers' messages (demo KB, one question an entry: the search expected an answer
# rate of 0.33, live it was 0.01).
ANCHOR_SHARE = 0.5
# ... the out-of-scope gate declines messages less like the KB than policy.anchor_quantile (0.45) of the
# out-of-scope sets (bundled generic plus the editor's). A prior measured across knowledge bases: the
# quantile with the best mean utility (cost 2, out-of-scope share 0.2) over two development KBs with one
# question an entry, the demo shop (eval/demo_test.csv and dev2_test.csv) and CLINC150 (docs/quality.md).
# ... with these fixed, uncalibrated rules: answer or act on an intent only when the blended score gives
# the label a majority of the probability; otherwise offer the entries within ANCHOR_MARGIN of the top.
ANCHOR_MAJORITY = 0.5
ANCHOR_MARGIN = 0.2
# what `kb check` and `kb calibrate` say instead of expected figures on an anchored KB
ANCHORED_EXPECTED = "not measurable: most entries are too thin to measure on (thresholds anchored, see above)"


@dataclass
class Calibration:
    """What calibration found, what it expects live, and what an editor should know about it."""

    thresholds: Thresholds
    expected: Expected
    measured_on: str
    warnings: list[str] = field(default_factory=list)
    fallback: str | None = None  # why the defaults are used instead of what the search found
    records: list[Record] = field(default_factory=list, repr=False)
    state: str = "calibrated"  # calibrated (searched) | anchored (thin KB) | defaults


def is_thin(kb: KnowledgeBase) -> bool:
    """True when most entries have fewer than THIN_QUESTIONS questions (calibration anchors then)."""
    thin = [e for e in kb.entries if sum(len(q) for q in e.questions.values()) < THIN_QUESTIONS]
    return bool(kb.entries) and len(thin) / len(kb.entries) >= ANCHOR_SHARE


def editor_oos_examples(intents: IntentSet) -> int:
    intent = intents.get(OOS_INTENT)
    return len(intent.examples) if intent else 0


def shape_warnings(kb: KnowledgeBase, intents: IntentSet, default_oos: bool = True) -> list[str]:
    """Plain-words warnings about a KB shape that makes thresholds less reliable, with what to do."""
    warnings = []
    thin = [e for e in kb.entries if sum(len(q) for q in e.questions.values()) < THIN_QUESTIONS]
    if kb.entries and len(thin) / len(kb.entries) >= THIN_SHARE:
        names = ", ".join(e.id for e in thin[:5]) + (", ..." if len(thin) > 5 else "")
        warnings.append(
            f"{len(thin)} of {len(kb.entries)} KB entries have fewer than {THIN_QUESTIONS} questions "
            f"({names}): the bot learns them from that question and the answer alone and misses more "
            "rewordings; add two or three other ways customers ask to each"
        )
    editor = editor_oos_examples(intents)
    if editor < FEW_OOS:
        if default_oos:
            warnings.append(
                f"{editor} out-of-scope examples in intents/ (intent {OOS_INTENT!r}): the bot judges what "
                "it has no entry for from the bundled generic set only; add 20 or more messages your "
                "customers send that the KB does not answer (e.g. questions about products you do not "
                "sell, services you do not offer)"
            )
        else:
            warnings.append(
                f"{editor} out-of-scope examples and policy.default_oos is off: nothing tells the bot what "
                f"not to answer; add examples under intent {OOS_INTENT!r} in intents/ or turn "
                "policy.default_oos on"
            )
    return warnings


def measure(
    matcher: Matcher, wrong_answer_cost: float | None = None, oos_share: float | None = None
) -> Calibration:
    """Cross-validate the content, add the generic out-of-scope set, search thresholds, judge them."""
    policy = matcher.settings.policy
    cost = policy.wrong_answer_cost if wrong_answer_cost is None else wrong_answer_cost
    share = policy.oos_share if oos_share is None else oos_share
    actions = dict(matcher.settings.intents.actions)
    base = default_thresholds(matcher.encoder, matcher.head is not None)
    if matcher.head is not None and is_thin(matcher.kb):
        return _measure_thin(matcher, base, cost, share)
    records = cross_validate(matcher.index, use_head=matcher.head is not None, lexical=matcher.lexical)
    g = generic_share_for(editor_oos_examples(matcher.intents))
    # scored only when they weigh something: 100+ editor examples leave them out of the search anyway
    generic = reference.reference_records(matcher) if policy.default_oos and records and g > 0 else []
    pooled = records + generic
    found, _ = search_thresholds(pooled, actions, base, cost, share, g)
    expected = expected_figures(pooled, actions, found, cost, share, g)
    fallback = _degenerate(expected) if records else "too little content to cross-validate"
    thresholds = found
    if fallback is not None:
        thresholds = base
        expected = expected_figures(pooled, actions, base, cost, share, g)
    warnings = shape_warnings(matcher.kb, matcher.intents, policy.default_oos)
    if fallback is not None:
        warnings.append(
            f"calibration: {fallback}; the model's default thresholds are used instead ({_short(base)}). "
            "Add questions to thin entries and out-of-scope examples, then run `supportbot kb calibrate`"
        )
    measured_on = (
        f"{len(records) // REPEATS} KB questions and intent examples (5-fold cross-validation repeated "
        f"{REPEATS} times) and {len(generic)} generic out-of-scope messages"
    )
    state = "defaults" if fallback is not None else "calibrated"
    return Calibration(thresholds, expected, measured_on, warnings, fallback, pooled, state)


def _measure_thin(matcher: Matcher, base: Thresholds, cost: float, share: float) -> Calibration:
    """Thresholds for a KB of mostly thin entries, anchored on the out-of-scope sets (policy.anchor_quantile).

    The editor's out-of-scope examples are not a class of the model here (bot/nlu/matcher.py index_items):
    126 of them against one or two questions an entry took the top spot for half the in-scope messages of
    the demo set; they set the gate together with the generic set. The expected figures replay the
    thresholds over the cross-validated questions, which do not look like live messages on such a KB (the
    warning says so).
    """
    policy = matcher.settings.policy
    actions = dict(matcher.settings.intents.actions)
    intent = matcher.intents.get(OOS_INTENT)
    editor = [reference.ReferenceMessage(text, "") for text in (intent.examples if intent else ())]
    negatives = reference.reference_records(matcher, editor, source="intent") if editor else []
    if policy.default_oos:
        negatives += reference.reference_records(matcher)
    records = cross_validate(matcher.index, use_head=matcher.head is not None, lexical=matcher.lexical)
    pooled = records + negatives
    g = generic_share_for(len(editor))
    warnings = shape_warnings(matcher.kb, matcher.intents, policy.default_oos)
    sims = [r.candidates[0].similarity for r in negatives if r.candidates]
    measured_on = (
        f"{len(records) // REPEATS} KB questions and intent examples (cross-validated) and "
        f"{len(negatives)} out-of-scope messages ({len(editor)} the editor's)"
    )
    if not sims or not records:
        fallback = "no out-of-scope evidence to anchor a thin knowledge base on"
        warnings.append(f"calibration: {fallback}; the model's default thresholds are used ({_short(base)})")
        expected = expected_figures(pooled, actions, base, cost, share, g)
        return Calibration(base, expected, measured_on, warnings, fallback, pooled, state="defaults")
    found = Thresholds(
        answer=ANCHOR_MAJORITY,
        clarify=0.0,
        margin=ANCHOR_MARGIN,
        min_similarity=float(np.quantile(sims, policy.anchor_quantile)),
        intent=ANCHOR_MAJORITY,
    )
    expected = expected_figures(pooled, actions, found, cost, share, g)
    warnings.append(
        "calibration: most KB entries have one or two questions, too few to measure how customers' "
        f"messages score, so the thresholds are anchored instead: the bot declines messages less like the KB "
        f"than {policy.anchor_quantile:.0%} of the out-of-scope examples, answers only when one entry clearly wins "
        "and otherwise offers the closest entries as choices (the expected figures, measured on the KB's own "
        "questions, do not hold for such a KB). "
        "Add two or three ways customers ask to each entry, then run `supportbot kb calibrate`"
    )
    return Calibration(found, expected, measured_on, warnings, None, pooled, state="anchored")


def _degenerate(expected: Expected) -> str | None:
    if expected.answer_rate < DEGENERATE:
        return (
            f"the best thresholds for this content would refuse almost everything "
            f"(answer {expected.answer_rate:.0%} of the questions the KB covers)"
        )
    if expected.oos_recall is None:
        return "there is no out-of-scope evidence, so the search would answer everything"
    if expected.oos_recall < DEGENERATE:
        return (
            f"the best thresholds for this content would answer almost everything "
            f"(decline {expected.oos_recall:.0%} of the messages it has no entry for)"
        )
    return None


def _short(t: Thresholds) -> str:
    return f"answer {t.answer:.3f}, clarify {t.clarify:.3f}, margin {t.margin:.3f}, min_similarity {t.min_similarity:.3f}"


def content_fingerprint(matcher: Matcher) -> str:
    """Hash of what calibration depends on: content (answers too), model, head, operating point, sets."""
    digest = hashlib.sha256(f"{VERSION}\0{matcher.kb.fingerprint()}".encode())
    for entry in matcher.kb.entries:
        digest.update("\0".join((entry.id, *sorted(entry.answer.values()), "\n")).encode())
    for intent in matcher.intents.intents:
        digest.update("\0".join((intent.name, *intent.examples, "\n")).encode())
    policy = matcher.settings.policy
    generic = reference.fingerprint() if policy.default_oos else "-"
    digest.update(
        f"{matcher.encoder.model_id}|{matcher.head is not None}|{policy.wrong_answer_cost}|{policy.oos_share}"
        f"|{policy.answer_evidence}|{policy.anchor_quantile}|{generic}".encode()
    )
    return digest.hexdigest()


def calibrate(matcher: Matcher, wrong_answer_cost: float | None = None) -> dict[str, Any]:
    """Measure, write the calibration file (when configured), log the warnings, use the thresholds."""
    found = measure(matcher, wrong_answer_cost)
    t = found.thresholds
    data: dict[str, Any] = {
        "model_id": matcher.encoder.model_id,
        "answer": round(t.answer, 4),
        "clarify": round(t.clarify, 4),
        "margin": round(t.margin, 4),
        "min_similarity": round(t.min_similarity, 4),
        "intent": None if t.intent is None else round(t.intent, 4),
        "state": found.state,
        "classifier": matcher.head is not None,
        "kb_fingerprint": content_fingerprint(matcher)[:16],
        "measured_on": found.measured_on,
        "mean_utility": found.expected.utility,
        "wrong_answer_cost": matcher.settings.policy.wrong_answer_cost
        if wrong_answer_cost is None
        else wrong_answer_cost,
        "oos_share": matcher.settings.policy.oos_share,
        "expected": asdict(found.expected),
        "fallback": found.fallback,
        "warnings": found.warnings,
    }
    settings = matcher.settings
    if settings.policy.calibration_file is not None:
        path = settings.resolve(settings.policy.calibration_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        tmp.replace(path)
    log.info("thresholds calibrated on %s: %s; expected: %s", found.measured_on, t, found.expected.summary())
    for warning in found.warnings:
        log.warning("%s", warning)
    matcher.thresholds = _with_config(settings, t)
    return data


def read_calibration(settings: Settings) -> dict[str, Any] | None:
    """The calibration file's content, or None when there is none (or it is unreadable)."""
    if settings.policy.calibration_file is None:
        return None
    try:
        data = yaml.safe_load(settings.resolve(settings.policy.calibration_file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def log_stored_warnings(settings: Settings) -> None:
    """Repeat the calibration file's warnings in the log (a start that did not recalibrate)."""
    data = read_calibration(settings)
    for warning in (data or {}).get("warnings") or []:
        log.warning("%s", warning)


def is_stale(matcher: Matcher) -> bool:
    """True when the calibration file is missing or was measured on other content or another model."""
    if matcher.settings.policy.calibration_file is None:
        return False
    data = read_calibration(matcher.settings)
    return data is None or data.get("kb_fingerprint") != content_fingerprint(matcher)[:16]


def load_thresholds(settings: Settings, encoder: Encoder) -> Thresholds:
    """Config values win; then the calibration file for this model; then the back end's default."""
    base = default_thresholds(encoder, settings.policy.classifier)
    data = read_calibration(settings)
    if (
        data is not None
        and data.get("model_id") == encoder.model_id
        and bool(data.get("classifier", False)) == settings.policy.classifier
    ):
        values = {key: data.get(key) for key in ("answer", "clarify", "margin", "min_similarity")}
        intent = data.get("intent")
        base = Thresholds(
            **{k: float(v) if isinstance(v, int | float) else getattr(base, k) for k, v in values.items()},
            intent=float(intent) if isinstance(intent, int | float) else None,
        )
    return _with_config(settings, base)


def _with_config(settings: Settings, t: Thresholds) -> Thresholds:
    policy = settings.policy
    return Thresholds(
        t.answer if policy.answer_threshold is None else policy.answer_threshold,
        t.clarify if policy.clarify_threshold is None else policy.clarify_threshold,
        t.margin if policy.clarify_margin is None else policy.clarify_margin,
        t.min_similarity if policy.min_similarity is None else policy.min_similarity,
        t.intent,
    )

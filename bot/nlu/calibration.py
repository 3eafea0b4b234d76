"""Pick answer/clarify/margin/similarity thresholds from data, never by guessing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bot.content.intents import OOS_INTENT
from bot.nlu.classifier import LabelColumns, SoftmaxHead, blend
from bot.nlu.encoders import Thresholds
from bot.nlu.index import Candidate, SemanticIndex
from bot.nlu.lexical import LexicalIndex
from bot.nlu.normalize import fold_diacritics
from bot.nlu.policy import MAX_OPTIONS, Decision
from bot.nlu.threads import limit_blas_threads

# Shuffled k-fold splits pooled by cross_validate (calibration, `kb check`, eval without --val).
REPEATS = 3


@dataclass(frozen=True)
class Record:
    """One labelled message with its ranked candidates (gold OOS_INTENT = must not be answered)."""

    gold: str
    candidates: list[Candidate]
    lang: str | None = None
    source: str = "kb"  # kb: a KB question; intent: an intent example (the editor's oos too); generic


def is_correct(decision: Decision, gold: str) -> bool:
    """Return True when the decision's top names the gold label (for out-of-scope: not answered)."""
    if gold == OOS_INTENT:
        return decision.kind in ("fallback", "handoff") and decision.label != "human_request"
    if decision.kind in ("answer", "respond", "clarify", "handoff"):
        return decision.label == gold
    return False


def utility(decision: Decision, gold: str, wrong_answer_cost: float) -> float:
    """Score one decision: a wrong answer costs more than an honest 'I don't know'."""
    if gold == OOS_INTENT:
        if decision.kind in ("fallback", "handoff"):
            return 1.0
        return -0.3 if decision.kind == "clarify" else -wrong_answer_cost
    if decision.kind in ("answer", "respond", "handoff"):
        if decision.kind == "handoff" and decision.label is None:
            return 0.0
        return 1.0 if decision.label == gold else -wrong_answer_cost
    if decision.kind == "clarify":
        return 0.6 if gold in decision.options else -0.3
    return 0.0


def score_vectors(
    vectors: np.ndarray,
    index: SemanticIndex,
    head: SoftmaxHead | None,
    exclude: np.ndarray | None = None,
    lexical: np.ndarray | None = None,
) -> list[list[Candidate]]:
    """Rank labels for each vector: classifier probability (if a head) blended with best cosine per label.

    `exclude` lists index items no row may match (the held-out fold in cross-validation); `lexical`
    holds each row's lexical similarity to every index item (used with a head).
    """
    items = index.items
    keys = head.classes if head is not None else sorted({(item.kind, item.label) for item in items})
    key_ids = {key: i for i, key in enumerate(keys)}
    columns = LabelColumns.of(np.array([key_ids[(item.kind, item.label)] for item in items]), len(keys))
    ranked: list[list[Candidate]] = []
    for start in range(0, len(vectors), 256):
        block = slice(start, start + 256)
        sims = vectors[block] @ index.vectors.T
        if exclude is not None:
            sims[:, exclude] = -np.inf
        best_sim = columns.best(sims, -np.inf)
        score = best_sim
        if head is not None:
            best_lexical = None
            if lexical is not None:
                similar = lexical[block]
                if exclude is not None:
                    similar = similar.copy()
                    similar[:, exclude] = 0.0
                best_lexical = columns.best(similar, 0.0)
            score = blend(head.predict(vectors[block]), best_sim, best_lexical)
        for row_score, row_sim in zip(score, best_sim, strict=True):
            order = np.argsort(-row_score)[:10]
            ranked.append(
                [
                    Candidate(keys[k][1], keys[k][0], float(row_score[k]), "", None, float(row_sim[k]))
                    for k in order
                    if np.isfinite(row_sim[k])
                ]
            )
    return ranked


def cross_validate(
    index: SemanticIndex,
    use_head: bool,
    folds: int = 5,
    seed: int = 0,
    lexical: LexicalIndex | None = None,
    repeats: int = REPEATS,
) -> list[Record]:
    """Score every written sentence by a model that never saw it, nor any variant of it (k-fold).

    The k-fold split is repeated `repeats` times with different shuffles and the records pooled: which
    sentences happen to share a fold moved the thresholds picked from one split a lot (on the demo KB,
    one split against another: clarify 0.07 or 0.18, development-set in-scope accuracy 0.79 or 0.86).
    """
    items = index.items
    if len(items) < folds * 2:
        return []
    records: list[Record] = []
    with limit_blas_threads():  # small products: BLAS threads only spin
        for repeat in range(repeats):
            records += _one_split(index, use_head, folds, seed + repeat, lexical)
    return records


def _one_split(
    index: SemanticIndex, use_head: bool, folds: int, seed: int, lexical: LexicalIndex | None
) -> list[Record]:
    items = index.items
    groups: dict[tuple[str, str, str], int] = {}
    group_of = np.array(
        [
            groups.setdefault((it.kind, it.label, fold_diacritics(it.text).casefold()), len(groups))
            for it in items
        ]
    )
    fold_of = (np.random.default_rng(seed).permutation(len(groups)) % folds)[group_of]
    fold_of[[i for i, it in enumerate(items) if it.evidence]] = -1  # answers are always known
    classes = sorted({(item.kind, item.label) for item in items})
    class_ids = {key: i for i, key in enumerate(classes)}
    targets = np.array([class_ids[(item.kind, item.label)] for item in items])
    records: list[Record] = []
    for fold in range(folds):
        held = np.flatnonzero(fold_of == fold)
        if not len(held):
            continue
        head = None
        if use_head:
            train = np.flatnonzero(fold_of != fold)
            head = SoftmaxHead.fit(index.vectors[train], classes, targets[train])
        scored = [int(i) for i in held if not items[i].variant and not items[i].evidence]
        rows = np.array(scored, dtype=np.int64)
        similar = lexical.row_similarities(rows) if lexical is not None and use_head else None
        ranked = score_vectors(index.vectors[scored], index, head, exclude=held, lexical=similar)
        for i, candidates in zip(scored, ranked, strict=True):
            records.append(Record(items[i].label, candidates, items[i].lang, items[i].kind))
    return records


def _features(records: Sequence[Record], intent_actions: Mapping[str, str]) -> dict[str, np.ndarray]:
    n = len(records)
    f = {
        "s1": np.full(n, -np.inf),
        "sim1": np.full(n, -np.inf),
        "kb2": np.full(n, -np.inf),
        "kb3": np.full(n, -np.inf),
        "oos_top": np.zeros(n, bool),
        "intent_top": np.zeros(n, bool),
        "handoff_top": np.zeros(n, bool),
        "top_gold": np.zeros(n, bool),
        "gold_oos": np.zeros(n, bool),
        "gold_rank": np.full(n, -1),
    }
    for i, record in enumerate(records):
        f["gold_oos"][i] = record.gold == OOS_INTENT
        if not record.candidates:
            continue
        top = record.candidates[0]
        f["s1"][i], f["sim1"][i] = top.score, top.similarity
        f["oos_top"][i] = top.kind == "intent" and top.label == OOS_INTENT
        f["intent_top"][i] = top.kind == "intent"
        f["handoff_top"][i] = top.kind == "intent" and intent_actions.get(top.label) == "handoff"
        f["top_gold"][i] = top.label == record.gold
        kb = [c for c in record.candidates if c.kind == "kb"][:MAX_OPTIONS]
        if len(kb) > 1:
            f["kb2"][i] = kb[1].score
        if len(kb) > 2:
            f["kb3"][i] = kb[2].score
        for rank, c in enumerate(kb):
            if c.label == record.gold:
                f["gold_rank"][i] = rank
    return f


def _utility_grid(
    f: dict[str, np.ndarray],
    answer: float,
    clarify: float,
    margins: np.ndarray,
    min_sims: np.ndarray,
    wrong: float,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Mean utility for one answer and clarify threshold and every margin x min_similarity (rows x columns).

    Each record's decision is one of five exclusive kinds; its utility per kind is fixed (or depends on the
    margin alone), so the grid is a sum of masked per-record utilities: the same values a loop over
    `policy.decide` gives (tests/nlu/test_calibration.py), for the whole grid in a few array operations.
    Searched thresholds have no intent gate of their own (only anchored ones do, and those are not
    searched), so the policy's fall-through from a weak intent to the KB candidates is not replayed here.
    """
    s1, gold_oos, rank = f["s1"], f["gold_oos"], f["gold_rank"]
    u_fallback = np.where(gold_oos, 1.0, 0.0)
    # intents: handoff actions count as a correct refusal for out-of-scope gold
    u_intent = np.where(
        gold_oos, np.where(f["handoff_top"], 1.0, -wrong), np.where(f["top_gold"], 1.0, -wrong)
    )
    u_answer = np.where(gold_oos, -wrong, np.where(f["top_gold"], 1.0, -wrong))
    in_single = (rank == 0) | ((rank == 1) & (f["kb2"] >= clarify))
    u_single = np.where(gold_oos, -0.3, np.where(in_single, 0.6, -0.3))
    n_close = 1 + (f["kb2"] >= s1 - margins[:, None]) + (f["kb3"] >= s1 - margins[:, None])  # margins x n
    u_multi = np.where(gold_oos, -0.3, np.where((rank >= 0) & (rank < n_close), 0.6, -0.3))
    close = n_close >= 2
    fallback = (f["oos_top"] | (s1 < clarify)) | (f["sim1"] < min_sims[:, None])  # min_sims x n
    intent = ~fallback & f["intent_top"]
    kb = (~fallback & ~f["intent_top"])[None, :, :]
    multi = kb & close[:, None, :]
    sure = s1 >= answer
    u = (
        (fallback * u_fallback + intent * u_intent)[None, :, :]
        + multi * u_multi[:, None, :]
        + (kb & ~close[:, None, :] & sure) * u_answer
        + (kb & ~close[:, None, :] & ~sure) * u_single
    )
    if weights is not None:
        return (u * weights).sum(axis=-1) / weights.sum()
    return u.mean(axis=-1)


def generic_share_for(editor_oos_examples: int) -> float:
    """How much of the out-of-scope weight the bundled generic set gets beside the editor's examples.

    The editor's own examples describe this business's near misses best: the generic set takes all of it
    when the editor wrote none, and none from a hundred examples on.
    """
    return max(0.0, 1.0 - editor_oos_examples / 100)


def record_weights(
    records: Sequence[Record], oos_share: float = 0.2, generic_share: float | None = None
) -> np.ndarray:
    """Weigh records so out-of-scope ones make up `oos_share` of the traffic.

    A KB's own questions hold few out-of-scope examples, but customers ask plenty the KB does not cover.
    Out-of-scope weight is split between the editor's examples and the generic set (`generic_share` of it
    to the generic set); a group that is empty leaves its share to the other.
    """
    weights = np.ones(len(records))
    gold_oos = np.array([r.gold == OOS_INTENT for r in records], dtype=bool)
    generic = np.array([r.source == "generic" for r in records], dtype=bool)
    n_in = int((~gold_oos).sum())
    if not gold_oos.any() or n_in == 0 or oos_share <= 0:
        return weights
    total = oos_share / (1 - oos_share) * n_in
    editor = gold_oos & ~generic
    groups = [(editor, 1.0 - (generic_share or 0.0)), (generic & gold_oos, generic_share or 0.0)]
    if not editor.any() or not (generic & gold_oos).any():
        groups = [(gold_oos, 1.0)]
    for mask, share in groups:
        weights[mask] = total * share / mask.sum()
    return weights


def search_thresholds(
    records: Sequence[Record],
    intent_actions: Mapping[str, str],
    base: Thresholds,
    wrong_answer_cost: float = 2.0,
    oos_share: float = 0.2,
    generic_share: float | None = None,
) -> tuple[Thresholds, float]:
    """Grid-search the thresholds that maximise mean utility on `records`, weighted by record_weights."""
    scored = [r for r in records if r.candidates]
    if not scored:
        return base, 0.0
    weights = record_weights(scored, oos_share, generic_share)
    if not weights.any():
        return base, 0.0
    # records that weigh nothing must not move the grid either (its levels are quantiles of the scores)
    scored = [r for r, w in zip(scored, weights, strict=True) if w > 0]
    weights = weights[weights > 0]
    f = _features(scored, intent_actions)
    s1 = f["s1"]
    sims = f["sim1"]
    # answer and clarify thresholds both from the score quantiles (clarify <= answer), so the
    # out-of-scope cut can land anywhere, not only a fixed step below the answer threshold
    levels = np.unique(
        np.round(
            np.concatenate(
                [np.quantile(s1, np.linspace(0.0, 0.99, 34)), np.linspace(s1.min(), s1.max(), 41)]
            ),
            4,
        )
    )
    margins = np.array([0.0, 0.01, 0.02, 0.05, 0.1]) * (float(np.ptp(s1)) or 1.0)
    min_sims = np.unique(np.round(np.concatenate([[0.0], np.quantile(sims, np.linspace(0.0, 0.5, 12))]), 4))
    best, best_score = base, -np.inf
    for answer in levels:
        for clarify in levels[levels <= answer][::-1][:16]:
            grid = _utility_grid(
                f, float(answer), float(clarify), margins, min_sims, wrong_answer_cost, weights
            )
            if grid.max() <= best_score + 1e-9:
                continue
            for (m, s), score in np.ndenumerate(
                grid
            ):  # in the order a loop over margins, then min_sims, takes
                if score > best_score + 1e-9:
                    t = Thresholds(float(answer), float(clarify), float(margins[m]), float(min_sims[s]))
                    best, best_score = t, float(score)
    return best, best_score


@dataclass(frozen=True)
class Expected:
    """What thresholds do on held-out records: the figures an editor should expect live."""

    answer_rate: float  # questions the KB covers that get a direct answer
    in_scope_accuracy: float  # ... that get the right answer (or the right entry among options)
    answer_precision: float  # direct answers that are right (out-of-scope traffic weighted in)
    oos_recall: float | None  # out-of-scope messages declined (None: no out-of-scope evidence)
    utility: float

    def summary(self) -> str:
        oos = "no out-of-scope evidence" if self.oos_recall is None else f"declines {self.oos_recall:.0%} of "
        oos += "" if self.oos_recall is None else "messages it has no entry for"
        return (
            f"answers {self.answer_rate:.0%} of the questions the KB covers directly, "
            f"{self.answer_precision:.0%} of its answers right, the right entry answered or offered for "
            f"{self.in_scope_accuracy:.0%}; {oos}"
        )


def expected_figures(
    records: Sequence[Record],
    intent_actions: Mapping[str, str],
    thresholds: Thresholds,
    wrong_answer_cost: float = 2.0,
    oos_share: float = 0.2,
    generic_share: float | None = None,
) -> Expected:
    """Replay the live policy with `thresholds` over held-out records and summarise it."""
    from bot.nlu.policy import decide

    scored = [r for r in records if r.candidates]
    weights = record_weights(scored, oos_share, generic_share)
    answered = right = in_scope = answered_in = correct_in = oos = declined = 0.0
    total_utility = 0.0
    for record, weight in zip(scored, weights, strict=True):
        decision = decide(record.candidates, thresholds, dict(intent_actions))
        total_utility += weight * utility(decision, record.gold, wrong_answer_cost)
        is_answer = decision.kind in ("answer", "respond")
        if record.gold == OOS_INTENT:
            oos += weight
            declined += weight * (decision.kind in ("fallback", "handoff"))
            answered += weight * is_answer
        else:
            in_scope += weight
            answered_in += weight * is_answer
            correct_in += weight * is_correct(decision, record.gold)
            answered += weight * is_answer
            right += weight * (is_answer and decision.label == record.gold)

    def share(part: float, whole: float) -> float:
        return round(float(part / whole), 4) if whole else 0.0

    return Expected(
        answer_rate=share(answered_in, in_scope),
        in_scope_accuracy=share(correct_in, in_scope),
        answer_precision=share(right, answered),
        oos_recall=share(declined, oos) if oos else None,
        utility=round(float(total_utility / weights.sum()), 4) if len(weights) else 0.0,
    )


@dataclass(frozen=True)
class Confusion:
    """Two KB entries whose questions the model cannot tell apart well."""

    first: str
    second: str
    confused: int  # held-out questions of `first` ranked under `second`
    total: int


def confusable_entries(records: Sequence[Record], min_share: float = 0.25) -> list[Confusion]:
    """Find KB entries whose held-out questions land on another entry at least `min_share` of the time."""
    totals: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for record in records:
        kb = [c for c in record.candidates if c.kind == "kb"]
        if not kb or record.gold == OOS_INTENT or not any(c.label == record.gold for c in kb):
            continue
        totals[record.gold] = totals.get(record.gold, 0) + 1
        if kb[0].label != record.gold:
            key = (record.gold, kb[0].label)
            pairs[key] = pairs.get(key, 0) + 1
    found = [
        Confusion(a, b, count, totals[a]) for (a, b), count in pairs.items() if count / totals[a] >= min_share
    ]
    return sorted(found, key=lambda c: c.confused / c.total, reverse=True)

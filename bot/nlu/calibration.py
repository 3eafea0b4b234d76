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
        scored = [int(i) for i in held if not items[i].variant]
        rows = np.array(scored, dtype=np.int64)
        similar = lexical.row_similarities(rows) if lexical is not None and use_head else None
        ranked = score_vectors(index.vectors[scored], index, head, exclude=held, lexical=similar)
        for i, candidates in zip(scored, ranked, strict=True):
            records.append(Record(items[i].label, candidates, items[i].lang))
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


def _vectorised_utility(
    f: dict[str, np.ndarray], t: Thresholds, wrong: float, weights: np.ndarray | None = None
) -> float:
    """Mean utility of policy.decide over all records for thresholds `t`, without a Python loop."""
    fallback = f["oos_top"] | (f["s1"] < t.clarify) | (f["sim1"] < t.min_similarity)
    intent = ~fallback & f["intent_top"]
    kb = ~fallback & ~f["intent_top"]
    n_close = 1 + (f["kb2"] >= f["s1"] - t.margin) + (f["kb3"] >= f["s1"] - t.margin)
    multi = kb & (n_close >= 2)
    answer = kb & ~multi & (f["s1"] >= t.answer)
    single = kb & ~multi & ~answer
    gold_oos, rank = f["gold_oos"], f["gold_rank"]
    u = np.zeros(len(fallback))
    u[fallback & gold_oos] = 1.0
    # intents: handoff actions count as a correct refusal for out-of-scope gold
    u[intent & gold_oos & f["handoff_top"]] = 1.0
    u[intent & gold_oos & ~f["handoff_top"]] = -wrong
    u[intent & ~gold_oos] = np.where(f["top_gold"][intent & ~gold_oos], 1.0, -wrong)
    u[answer & gold_oos] = -wrong
    u[answer & ~gold_oos] = np.where(f["top_gold"][answer & ~gold_oos], 1.0, -wrong)
    in_multi = (rank >= 0) & (rank < n_close)
    in_single = (rank == 0) | ((rank == 1) & (f["kb2"] >= t.clarify))
    u[multi] = np.where(gold_oos[multi], -0.3, np.where(in_multi[multi], 0.6, -0.3))
    u[single] = np.where(gold_oos[single], -0.3, np.where(in_single[single], 0.6, -0.3))
    if weights is not None:
        return float((u * weights).sum() / weights.sum())
    return float(u.mean())


def search_thresholds(
    records: Sequence[Record],
    intent_actions: Mapping[str, str],
    base: Thresholds,
    wrong_answer_cost: float = 2.0,
    oos_share: float = 0.2,
) -> tuple[Thresholds, float]:
    """Grid-search the thresholds that maximise mean utility on `records`.

    Out-of-scope examples are weighted to make up at least `oos_share` of the traffic: a KB's own
    questions hold few of them, but real customers ask plenty of things the KB does not cover.
    """
    scored = [r for r in records if r.candidates]
    if not scored:
        return base, 0.0
    f = _features(scored, intent_actions)
    weights = np.ones(len(scored))
    oos_count = int(f["gold_oos"].sum())
    if 0 < oos_count and oos_count / len(scored) < oos_share:
        weights[f["gold_oos"]] = oos_share * (len(scored) - oos_count) / ((1 - oos_share) * oos_count)
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
            for margin in margins:
                for min_sim in min_sims:
                    t = Thresholds(float(answer), float(clarify), float(margin), float(min_sim))
                    score = _vectorised_utility(f, t, wrong_answer_cost, weights)
                    if score > best_score + 1e-9:
                        best, best_score = t, score
    return best, best_score


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

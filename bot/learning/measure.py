"""Measure the two similarity thresholds of the suggestions on labelled data: the KB's own content.

Questions: every KB question in every language, labelled with its entry; single-link grouping at each
candidate threshold is scored by pairwise precision (pairs put together that belong together) and
recall (pairs that belong together and were put together). `learning.question_similarity` is the
threshold with the best F1 among those with precision at least `min_precision` (two subjects merged into
one suggestion cost an editor more than one subject split in two).

Answers: for each entry, its answer in one language against the same entry's answer in another (the same
content, worded differently: the "says the same" side) and against the answer of the entry whose questions
are closest to its own, in the same language (a near neighbour saying something else). The threshold
that separates them best (balanced accuracy) is `learning.answer_similarity`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bot.learning.grouping import measure
from bot.learning.suggestions import embed
from bot.nlu.matcher import Matcher


def measure_thresholds(matcher: Matcher, min_precision: float = 0.95) -> dict[str, Any]:
    kb = matcher.kb
    texts = [q for e in kb.entries for qs in e.questions.values() for q in qs]
    labels = [e.id for e in kb.entries for qs in e.questions.values() for _ in qs]
    vectors = embed(matcher, texts)
    candidates = [round(t, 2) for t in np.arange(0.80, 0.975, 0.01)]
    scores = measure(vectors, labels, candidates)
    good = [s for s in scores if s.precision >= min_precision] or scores
    best = max(good, key=lambda s: (s.f1, s.threshold))
    question_table = [
        {"threshold": s.threshold, "precision": round(s.precision, 4), "recall": round(s.recall, 4),
         "f1": round(s.f1, 4), "groups": s.groups}
        for s in scores
    ]  # fmt: skip
    same, other = _answer_similarities(matcher, vectors, labels)
    answer_threshold, balanced = _separate(same, other)
    return {
        "model": matcher.encoder.model_id,
        "questions": {
            "texts": len(texts),
            "entries": len(kb.entries),
            "min_precision": min_precision,
            "best": best.threshold,
            "table": question_table,
        },
        "answers": {
            "same_entry_pairs": len(same),
            "neighbour_pairs": len(other),
            "same_entry_cosine_p10": round(float(np.percentile(same, 10)), 4) if same else None,
            "neighbour_cosine_p90": round(float(np.percentile(other, 90)), 4) if other else None,
            "best": answer_threshold,
            "balanced_accuracy": round(balanced, 4),
        },
    }


def _answer_similarities(
    matcher: Matcher, question_vectors: np.ndarray, labels: list[str]
) -> tuple[list[float], list[float]]:
    kb = matcher.kb
    ids = [e.id for e in kb.entries]
    centroids = np.vstack(
        [question_vectors[[i for i, lab in enumerate(labels) if lab == e]].mean(0) for e in ids]
    )
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    near = centroids @ centroids.T
    np.fill_diagonal(near, -1)
    same: list[float] = []
    other: list[float] = []
    for position, entry in enumerate(kb.entries):
        neighbour = kb.entries[int(np.argmax(near[position]))]
        languages = sorted(entry.answer)
        vectors = embed(matcher, [entry.answer[lang] for lang in languages])
        sims = vectors @ vectors.T
        same += [float(sims[i, j]) for i in range(len(languages)) for j in range(i + 1, len(languages))]
        shared = [lang for lang in languages if neighbour.answer.get(lang)]
        theirs = embed(matcher, [neighbour.answer[lang] for lang in shared])
        other += [float(v) for v in np.sum(vectors[[languages.index(x) for x in shared]] * theirs, axis=1)]
    return same, other


def _separate(same: list[float], other: list[float]) -> tuple[float, float]:
    best, best_score = 0.9, 0.0
    for threshold in np.arange(0.70, 0.99, 0.005):
        score = (np.mean(np.array(same) >= threshold) + np.mean(np.array(other) < threshold)) / 2
        if score > best_score:
            best, best_score = round(float(threshold), 3), float(score)
    return best, best_score

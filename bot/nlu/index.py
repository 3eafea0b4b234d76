"""A faiss index over KB questions and intent examples; sentence embeddings are cached on disk per model."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from bot.nlu.encoders import Encoder

_BATCH = 32


@dataclass(frozen=True)
class IndexItem:
    """One indexed sentence: a KB question (kind kb) or an intent example (kind intent)."""

    label: str
    kind: str
    text: str
    lang: str | None = None
    variant: bool = False  # generated from a written sentence (e.g. without diacritics), not written


@dataclass(frozen=True)
class Candidate:
    """The best score one label got for a message, with the sentence that matched."""

    label: str
    kind: str
    score: float  # what the policy thresholds: classifier probability, or cosine without a head
    matched: str
    lang: str | None = None
    similarity: float = 0.0  # cosine to the closest indexed sentence of this label


def cache_key(encoder: Encoder, items: Sequence[IndexItem]) -> str:
    digest = hashlib.sha256(f"{encoder.model_id}\0{encoder.dim}".encode())
    for item in items:
        digest.update(f"\0{item.kind}\0{item.label}\0{item.lang}\0{item.text}".encode())
    return digest.hexdigest()[:24]


# Up to this many sentences the search is exact (under a millisecond); beyond, an HNSW graph.
EXACT_LIMIT = 20_000
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 128


def make_faiss_index(dim: int, count: int) -> faiss.Index:
    """Exact inner product for KB-sized indexes, HNSW (approximate, inner product) for very large ones."""
    if count <= EXACT_LIMIT:
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 64
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


class SemanticIndex:
    """Inner-product search (vectors are L2-normalised, so scores are cosines)."""

    def __init__(self, items: Sequence[IndexItem], vectors: np.ndarray) -> None:
        self.items = list(items)
        self.dim = int(vectors.shape[1]) if vectors.size else 0
        self._index = make_faiss_index(max(self.dim, 1), len(self.items))
        if len(self.items):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.vectors = vectors

    @classmethod
    def build(
        cls, encoder: Encoder, items: Sequence[IndexItem], cache_dir: Path | None, progress: bool = True
    ) -> SemanticIndex:
        """Embed the items, reusing every sentence this model embedded before (an edit re-embeds only it)."""
        cache = SentenceCache(cache_dir, encoder) if cache_dir is not None else None
        texts = [item.text for item in items]
        missing = list(dict.fromkeys(t for t in texts if cache is None or t not in cache))
        fresh: dict[str, np.ndarray] = {}
        bar = tqdm(
            total=len(missing),
            desc=f"embedding {len(missing)} new sentences",
            unit="s",
            file=sys.stderr,
            disable=not progress or not missing,
        )
        for start in range(0, len(missing), _BATCH):
            batch = missing[start : start + _BATCH]
            fresh.update(zip(batch, encoder.encode(batch), strict=True))
            bar.update(len(batch))
        bar.close()
        if cache is not None and fresh:
            cache.add(fresh)
        rows = (
            [fresh[t] if t in fresh else cache[t] for t in texts]
            if cache is not None
            else [fresh[t] for t in texts]
        )
        vectors = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, encoder.dim), dtype=np.float32)
        return cls(items, vectors)

    def search(self, queries: np.ndarray, per_query: int = 64) -> list[Candidate]:
        """Return one candidate per label (its best score over all queries), best first."""
        if not self.items or queries.size == 0:
            return []
        k = min(per_query, len(self.items))
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        best: dict[tuple[str, str], Candidate] = {}
        for row_scores, row_ids in zip(scores, ids, strict=True):
            for score, idx in zip(row_scores, row_ids, strict=True):
                if idx < 0:
                    continue
                item = self.items[idx]
                key = (item.kind, item.label)
                if key not in best or score > best[key].score:
                    best[key] = Candidate(
                        item.label, item.kind, float(score), item.text, item.lang, float(score)
                    )
        return sorted(best.values(), key=lambda c: c.score, reverse=True)


class SentenceCache:
    """Embeddings of every sentence one model has embedded, on disk: `<model>.npy` rows + `<model>.txt` keys.

    Keyed by a hash of the text, so an edited KB re-embeds only the sentences that changed, and many
    KBs (tests, `eval`) share one cache. Writes go to a temporary file and are renamed into place.
    """

    def __init__(self, cache_dir: Path, encoder: Encoder) -> None:
        model = hashlib.sha256(f"{encoder.model_id}\0{encoder.dim}".encode()).hexdigest()[:16]
        self.dir = cache_dir
        self.rows_path = cache_dir / f"sentences-{model}.npy"
        self.keys_path = cache_dir / f"sentences-{model}.txt"
        self.dim = encoder.dim
        self._rows = np.zeros((0, encoder.dim), dtype=np.float32)
        self._where: dict[str, int] = {}
        try:
            keys = self.keys_path.read_text(encoding="ascii").split()
            rows = np.load(self.rows_path)
            if rows.shape == (len(keys), encoder.dim):
                self._rows = rows
                self._where = {k: i for i, k in enumerate(keys)}
        except (OSError, ValueError):
            pass  # no cache yet, or a damaged one: start empty

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and self._key(text) in self._where

    def __getitem__(self, text: str) -> np.ndarray:
        return self._rows[self._where[self._key(text)]]

    def add(self, vectors: dict[str, np.ndarray]) -> None:
        keyed = {self._key(t): v for t, v in vectors.items()}
        new = {k: v for k, v in keyed.items() if k not in self._where}
        if not new:
            return
        start = len(self._rows)
        self._rows = np.vstack([self._rows, np.asarray(list(new.values()), dtype=np.float32)])
        for offset, key in enumerate(new):
            self._where[key] = start + offset
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = list(self._where)  # insertion order is row order: rows are only ever appended
        suffix = f".{os.getpid()}.tmp"
        rows_tmp = self.rows_path.with_name(self.rows_path.name + suffix)
        keys_tmp = self.keys_path.with_name(self.keys_path.name + suffix)
        with rows_tmp.open("wb") as handle:
            np.save(handle, self._rows)
        keys_tmp.write_text("\n".join(keys), encoding="ascii")
        rows_tmp.replace(self.rows_path)
        keys_tmp.replace(self.keys_path)

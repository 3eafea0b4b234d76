"""A faiss index over KB questions and intent examples; sentence embeddings are cached on disk per model."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import faiss
import numpy as np
from tqdm import tqdm

from bot.nlu.encoders import Encoder

log = logging.getLogger(__name__)
_BATCH = 32


@dataclass(frozen=True)
class IndexItem:
    """One indexed sentence: a KB question (kind kb) or an intent example (kind intent)."""

    label: str
    kind: str
    text: str
    lang: str | None = None
    variant: bool = False  # generated from a written sentence (e.g. without diacritics), not written
    # an entry's answer, indexed as evidence for the entry: never held out in cross-validation and
    # never scored as a question (an entry with one question still has it when that one is held out)
    evidence: bool = False


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
        digest.update(f"\0{item.kind}\0{item.label}\0{item.lang}\0{item.evidence}\0{item.text}".encode())
    return digest.hexdigest()[:24]


# Up to this many sentences the search is exact (a KB of a few thousand sentences: well under a
# millisecond); beyond, an inverted file over 4-bit product-quantised codes, re-ranked exactly.
EXACT_LIMIT = 20_000
# One query scans 1/IVF_PROBE_SHARE of the inverted lists. On the bench's uniform random vectors (the
# worst case: no clusters to exploit) a third finds the exact nearest neighbour for 98-99.5% of queries
# from 25k to 1M vectors (a quarter: 96-99%); real embeddings cluster, so they fare better.
IVF_PROBE_SHARE = 3
# Candidates per requested result that are re-scored with the exact vectors: the 4-bit codes only
# shortlist, so scores the policy thresholds stay exact cosines.
REFINE_FACTOR = 8
_TRAIN_PER_LIST = 64  # k-means sample per inverted list (faiss wants >= 39): keeps training to seconds


def _ivf_lists(count: int) -> int:
    """About sqrt(count) lists, a power of two, at least 39 training vectors each."""
    lists = 2 ** round(math.log2(max(count, 1)) / 2)
    return int(max(1, min(lists, count // 39)))


def _pq_spec(dim: int) -> str:
    """4-bit PQ, one sub-quantiser per 4 dimensions (2 or 1 when the dimension does not divide)."""
    per = next(step for step in (4, 2, 1) if dim % step == 0)
    return f"PQ{dim // per}x4fs"


def build_faiss_index(vectors: np.ndarray, exact_limit: int = EXACT_LIMIT) -> faiss.Index:
    """Return a filled inner-product index: exact up to `exact_limit` vectors, IVF + PQ + re-rank beyond.

    HNSW graphs were the large-index choice before; over 1M random 384-d vectors one (M 48, SQ8 codes)
    took 16 minutes to build and, at efSearch 512, found the nearest neighbour for 94% of queries in
    5.6 ms. The inverted file trains in seconds, and its 4-bit codes are scanned with SIMD fast enough
    to probe a third of the lists (1M: ~1 ms, 99%).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dim = vectors.shape
    if count <= exact_limit:
        exact = faiss.IndexFlatIP(dim)
        exact.add(vectors)
        return exact
    lists = _ivf_lists(count)
    index = faiss.index_factory(dim, f"IVF{lists},{_pq_spec(dim)},RFlat", faiss.METRIC_INNER_PRODUCT)
    sample = min(count, _TRAIN_PER_LIST * lists)
    rows = np.sort(np.random.default_rng(0).choice(count, sample, replace=False))
    index.train(vectors[rows])
    index.add(vectors)
    faiss.extract_index_ivf(index).nprobe = max(1, lists // IVF_PROBE_SHARE)
    cast(faiss.IndexRefine, faiss.downcast_index(index)).k_factor = REFINE_FACTOR
    return index


def describe_index(index: faiss.Index) -> str:
    """The index structure and its search parameters, for `bench` output."""
    if not isinstance(index, faiss.IndexRefine):
        return type(index).__name__
    ivf = faiss.extract_index_ivf(index)
    base = faiss.downcast_index(index.base_index)
    codes = f"PQ{base.M}x{base.nbits}fs" if isinstance(base, faiss.IndexIVFFastScan) else type(base).__name__
    return f"IVF{ivf.nlist},{codes},RFlat nprobe={ivf.nprobe} k_factor={index.k_factor:g}"


def search_index(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Search on the calling thread only.

    faiss parallelises even a single query (the exact scan, the re-ranking) over its OpenMP threads; on
    a busy two-core machine each search then waits for a descheduled thread: one query over 20k exact
    vectors took 24 ms instead of 0.8 ms. The bot's searches are small and already run in several
    executor threads, so one thread each is faster. The OpenMP setting is per thread, and restored.
    """
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    finally:
        faiss.omp_set_num_threads(previous)


class SemanticIndex:
    """Inner-product search (vectors are L2-normalised, so scores are cosines)."""

    def __init__(
        self, items: Sequence[IndexItem], vectors: np.ndarray, exact_limit: int = EXACT_LIMIT
    ) -> None:
        self.items = list(items)
        self.dim = int(vectors.shape[1]) if vectors.size else 0
        self._index = build_faiss_index(vectors.reshape(len(self.items), max(self.dim, 1)), exact_limit)
        self.vectors = vectors

    @classmethod
    def build(
        cls, encoder: Encoder, items: Sequence[IndexItem], cache_dir: Path | None, progress: bool = True
    ) -> SemanticIndex:
        """Embed the items, reusing every sentence this model embedded before (an edit re-embeds only it)."""
        return cls(items, embed_with_cache(encoder, [item.text for item in items], cache_dir, progress))

    def search(self, queries: np.ndarray, per_query: int = 64) -> list[Candidate]:
        """Return one candidate per label (its best score over all queries), best first."""
        if not self.items or queries.size == 0:
            return []
        k = min(per_query, len(self.items))
        scores, ids = search_index(self._index, queries, k)
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


def embed_with_cache(
    encoder: Encoder, texts: Sequence[str], cache_dir: Path | None, progress: bool = False
) -> np.ndarray:
    """Embed `texts` (rows in order), reusing every sentence this model embedded before in `cache_dir`."""
    cache = SentenceCache(cache_dir, encoder) if cache_dir is not None else None
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
    return np.vstack(rows).astype(np.float32) if rows else np.zeros((0, encoder.dim), dtype=np.float32)


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

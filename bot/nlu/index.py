"""A faiss index over KB questions and intent examples, cached on disk per content and model."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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


class SemanticIndex:
    """Exact inner-product search (vectors are L2-normalised, so scores are cosines)."""

    def __init__(self, items: Sequence[IndexItem], vectors: np.ndarray) -> None:
        self.items = list(items)
        self.dim = int(vectors.shape[1]) if vectors.size else 0
        self._index = faiss.IndexFlatIP(max(self.dim, 1))
        if len(self.items):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.vectors = vectors

    @classmethod
    def build(
        cls, encoder: Encoder, items: Sequence[IndexItem], cache_dir: Path | None, progress: bool = True
    ) -> SemanticIndex:
        """Load the cached index for exactly these items and this model, or embed and cache it."""
        key = cache_key(encoder, items)
        if cache_dir is not None:
            cached = cls._load(cache_dir, key, encoder, len(items))
            if cached is not None:
                return cls(items, cached)
        texts = [item.text for item in items]
        chunks = []
        bar = tqdm(
            total=len(texts),
            desc=f"embedding {len(texts)} sentences",
            unit="s",
            file=sys.stderr,
            disable=not progress,
        )
        for start in range(0, len(texts), _BATCH):
            chunks.append(encoder.encode(texts[start : start + _BATCH]))
            bar.update(min(_BATCH, len(texts) - start))
        bar.close()
        vectors = np.vstack(chunks) if chunks else np.zeros((0, encoder.dim), dtype=np.float32)
        index = cls(items, vectors)
        if cache_dir is not None:
            index._save(cache_dir, key, encoder)
        return index

    @staticmethod
    def _load(cache_dir: Path, key: str, encoder: Encoder, count: int) -> np.ndarray | None:
        meta_path = cache_dir / f"{key}.json"
        index_path = cache_dir / f"{key}.faiss"
        if not (meta_path.exists() and index_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta["model_id"] != encoder.model_id or meta["dim"] != encoder.dim or meta["count"] != count:
                return None  # an index built by another model is never reused
            flat = faiss.read_index(str(index_path))
            if flat.ntotal != count:
                return None
            return np.asarray(flat.reconstruct_n(0, count), dtype=np.float32)
        except (OSError, ValueError, KeyError, RuntimeError):
            return None

    def _save(self, cache_dir: Path, key: str, encoder: Encoder) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f"{key}.faiss.tmp"
        faiss.write_index(self._index, str(tmp))
        tmp.replace(cache_dir / f"{key}.faiss")
        meta = {
            "model_id": encoder.model_id,
            "dim": encoder.dim,
            "count": len(self.items),
            "items": [asdict(item) for item in self.items[:3]],
        }
        (cache_dir / f"{key}.json").write_text(json.dumps(meta, ensure_ascii=False))

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

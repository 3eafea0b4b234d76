"""A lexical signal beside the embeddings: TF-IDF over character n-grams of each word.

e5 knows what "a delivery question" looks like but blurs rare keywords ("BLIK", "PayPo", "faktura",
"NIP", "paczkomat"): the sentences around them look alike. Character n-grams inside word boundaries
(as scikit-learn's `char_wb`) match those words exactly, survive typos and inflection, and cost a sparse
product per message. Texts are case- and diacritic-folded, so "faktura" meets "FAKTURĘ".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import sparse

from bot.nlu.normalize import fold_diacritics

NGRAMS = (3, 5)


def _grams(text: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    low, high = NGRAMS
    for word in fold_diacritics(text).casefold().split():
        padded = f" {word} "
        for n in range(low, high + 1):
            if len(padded) < n:
                break
            counts.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    return counts


class LexicalIndex:
    """Rows: the indexed sentences as L2-normalised TF-IDF vectors (sublinear tf, smoothed idf)."""

    def __init__(self, texts: Sequence[str]) -> None:
        grams = [_grams(t) for t in texts]
        document_frequency: Counter[str] = Counter()
        for counts in grams:
            document_frequency.update(counts.keys())
        self.vocabulary = {gram: i for i, gram in enumerate(sorted(document_frequency))}
        n = len(texts)
        self.idf = np.array(
            [math.log((1 + n) / (1 + document_frequency[g])) + 1 for g in sorted(document_frequency)],
            dtype=np.float32,
        )
        self.matrix = self._vectors(grams)  # rows x vocabulary, CSR
        self._transposed = self.matrix.T.tocsr()

    def _vectors(self, grams: Iterable[Counter[str]]) -> sparse.csr_matrix:
        indptr, indices, data = [0], [], []
        for counts in grams:
            row = {self.vocabulary[g]: c for g, c in counts.items() if g in self.vocabulary}
            columns = np.fromiter(row.keys(), dtype=np.int32, count=len(row))
            weights = (1 + np.log(np.fromiter(row.values(), dtype=np.float32, count=len(row)))) * self.idf[
                columns
            ]
            norm = float(np.linalg.norm(weights)) or 1.0
            indices.extend(columns.tolist())
            data.extend((weights / norm).tolist())
            indptr.append(len(indices))
        return sparse.csr_matrix(
            (np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int32), indptr),
            shape=(len(indptr) - 1, len(self.vocabulary)),
        )

    def similarities(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine of each text (a reading of one message) to every row: texts x rows, dense."""
        if not texts or not self.vocabulary:
            return np.zeros((len(texts), self.matrix.shape[0]), dtype=np.float32)
        queries = self._vectors(_grams(t) for t in texts)
        return np.asarray((queries @ self._transposed).toarray(), dtype=np.float32)

    def row_similarities(self, rows: np.ndarray) -> np.ndarray:
        """Cosine of the given indexed rows to every row (for cross-validation): len(rows) x rows."""
        return np.asarray((self.matrix[rows] @ self._transposed).toarray(), dtype=np.float32)

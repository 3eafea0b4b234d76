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
    grams: list[str] = []
    low, high = NGRAMS
    for word in fold_diacritics(text).casefold().split():
        padded = f" {word} "
        for n in range(low, min(high, len(padded)) + 1):
            grams.extend([padded[i : i + n] for i in range(len(padded) - n + 1)])
    return Counter(grams)  # counted in order of first appearance, as the rows are built


class LexicalIndex:
    """Rows: the indexed sentences as L2-normalised TF-IDF vectors (sublinear tf, smoothed idf)."""

    def __init__(self, texts: Sequence[str]) -> None:
        grams = [_grams(t) for t in texts]
        document_frequency: Counter[str] = Counter()
        for counts in grams:
            document_frequency.update(counts.keys())
        vocabulary = sorted(document_frequency)
        self.vocabulary = {gram: i for i, gram in enumerate(vocabulary)}
        n = len(texts)
        self.idf = np.array(
            [math.log((1 + n) / (1 + document_frequency[g])) + 1 for g in vocabulary], dtype=np.float32
        )
        self.matrix = self._vectors(grams)  # rows x vocabulary, CSR
        self._transposed = self.matrix.T.tocsr()

    def _row(self, counts: Counter[str]) -> tuple[np.ndarray, np.ndarray]:
        """One text's TF-IDF vector: its vocabulary columns (in order of first appearance) and weights."""
        row = {self.vocabulary[g]: c for g, c in counts.items() if g in self.vocabulary}
        columns = np.fromiter(row.keys(), dtype=np.int32, count=len(row))
        weights = (1 + np.log(np.fromiter(row.values(), dtype=np.float32, count=len(row)))) * self.idf[
            columns
        ]
        norm = float(np.linalg.norm(weights)) or 1.0
        return columns, weights / norm

    def _vectors(self, grams: Iterable[Counter[str]]) -> sparse.csr_matrix:
        indptr, indices, data = [0], [], []
        for counts in grams:
            columns, weights = self._row(counts)
            indices.extend(columns.tolist())
            data.extend(weights.tolist())
            indptr.append(len(indices))
        return sparse.csr_matrix(
            (np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int32), indptr),
            shape=(len(indptr) - 1, len(self.vocabulary)),
        )

    def similarities(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine of each text (a reading of one message) to every row: texts x rows, dense.

        The sparse product `query @ matrix.T` without building sparse matrices for a few short texts:
        each row's sum gets the same float32 products added in the same order (the query's columns as
        stored, each column's rows as stored), so the result is bit for bit scipy's (tests/test_lexical.py).
        """
        result = np.zeros((len(texts), self.matrix.shape[0]), dtype=np.float32)
        if not texts or not self.vocabulary:
            return result
        starts, rows, values = self._transposed.indptr, self._transposed.indices, self._transposed.data
        for out, text in zip(result, texts, strict=True):
            columns, weights = self._row(_grams(text))
            first, lengths = starts[columns], starts[columns + 1] - starts[columns]
            if not lengths.sum():
                continue
            # positions of every stored entry of those columns, column after column
            positions = np.repeat(first - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
            np.add.at(out, rows[positions], np.repeat(weights, lengths) * values[positions])
        return result

    def row_similarities(self, rows: np.ndarray) -> np.ndarray:
        """Cosine of the given indexed rows to every row (for cross-validation): len(rows) x rows."""
        return np.asarray((self.matrix[rows] @ self._transposed).toarray(), dtype=np.float32)

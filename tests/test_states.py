from __future__ import annotations

import pytest

from bot.states import ALLOWED, InvalidTransition, State, check_transition


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("bot", "waiting"),
        ("waiting", "with_agent"),
        ("with_agent", "resolved"),
        ("resolved", "bot"),
        ("waiting", "bot"),
        ("with_agent", "waiting"),
    ],
)
def test_allowed_transitions(source: str, target: str) -> None:
    assert check_transition(source, target) == State(target)


@pytest.mark.parametrize(
    ("source", "target"),
    [("bot", "with_agent"), ("resolved", "with_agent"), ("resolved", "waiting"), ("bot", "bot")],
)
def test_forbidden_transitions_name_both_states(source: str, target: str) -> None:
    with pytest.raises(InvalidTransition, match=f"from {source} to {target}"):
        check_transition(source, target)


def test_unknown_state_is_rejected() -> None:
    with pytest.raises(InvalidTransition, match="unknown"):
        check_transition("bot", "limbo")


def test_every_state_has_a_way_out() -> None:
    assert all(ALLOWED[state] for state in State)

"""The conversation state machine: bot -> waiting -> with_agent -> resolved (-> bot)."""

from __future__ import annotations

from enum import StrEnum

from bot.errors import SupportBotError


class State(StrEnum):
    BOT = "bot"  # the bot answers
    WAITING = "waiting"  # queued for a human
    WITH_AGENT = "with_agent"  # a human is answering
    RESOLVED = "resolved"  # closed; the customer's next message starts with the bot again


ALLOWED: dict[State, frozenset[State]] = {
    State.BOT: frozenset({State.WAITING, State.RESOLVED}),
    State.WAITING: frozenset({State.WITH_AGENT, State.BOT, State.RESOLVED}),
    State.WITH_AGENT: frozenset({State.WAITING, State.WITH_AGENT, State.RESOLVED}),
    State.RESOLVED: frozenset({State.BOT}),
}

# While a human owns the conversation, customer messages go to them, not to the bot.
HUMAN_STATES = frozenset({State.WAITING, State.WITH_AGENT})


class InvalidTransition(SupportBotError):
    """A state change the machine does not allow (e.g. resolved -> with_agent)."""


def check_transition(current: str, target: str) -> State:
    """Return the target state, or raise InvalidTransition naming both states."""
    try:
        source, destination = State(current), State(target)
    except ValueError as exc:
        raise InvalidTransition(f"unknown conversation state: {exc}") from exc
    if destination not in ALLOWED[source]:
        allowed = ", ".join(sorted(ALLOWED[source]))
        raise InvalidTransition(
            f"cannot move a conversation from {source} to {destination} (allowed: {allowed})"
        )
    return destination

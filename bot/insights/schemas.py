"""The bodies the insights API answers with: the support lead's numbers, the misses, how answers land,
and what an addition to the content changed (the file and line, as the editor knows them)."""

from __future__ import annotations

from pydantic import Field

from bot.web.body import Body


class Window(Body):
    """The time the figures cover: the last `days` days, from `since` to `until`."""

    days: int
    since: str
    until: str


# --- GET /api/v1/stats (bot/insights/stats.py) -----------------------------------------------------


class DecisionsOut(Body):
    total: int
    counts: dict[str, int] = Field(description="answer / clarify / fallback / handoff")
    rates: dict[str, float | None]


class HandoffsOut(Body):
    total: int
    conversations: int
    reasons: dict[str, int]


class WaitsOut(Body):
    answered: int
    unanswered: int
    median_seconds: float | None
    p90_seconds: float | None


class FeedbackOut(Body):
    up: int
    down: int
    up_share: float | None


class CsatOut(Body):
    count: int
    average: float | None
    satisfied_share: float | None
    scores: dict[str, int]


class NpsOut(Body):
    count: int
    promoters: int = Field(description="answers 9-10")
    passives: int = Field(description="answers 7-8")
    detractors: int = Field(description="answers 0-6")
    score: float | None = Field(description="% promoters - % detractors (-100..100); null without answers")


class CodeRedOut(Body):
    count: int = Field(description="conversations flagged as likely unhappy in the window")
    resolved: int
    resolved_share: float | None
    signals: dict[str, int] = Field(description="flags by signal (a conversation can have several)")


class AgentNumbersOut(Body):
    login: str
    name: str
    resolved: int
    csat_count: int
    csat_average: float | None


class StatsOut(Window):
    conversations: int
    by_channel: dict[str, int]
    by_language: dict[str, int]
    customer_messages: int
    decisions: DecisionsOut
    intents: dict[str, int]
    complaints: int
    compliments: int
    handoffs: HandoffsOut
    wait: WaitsOut
    sla_breaches: int
    resolved: int
    feedback: FeedbackOut
    csat: CsatOut
    nps: NpsOut
    code_red: CodeRedOut
    kudos: int = Field(description="compliments and top ratings with a comment in the window")
    agents: list[AgentNumbersOut]


# --- the misses and the answers ---------------------------------------------------------------------


class HandledOut(Body):
    action: str = Field(description="question / out_of_scope")
    entry: str | None
    by: str
    at: str


class MissOut(Body):
    """A question the bot missed, how often, what it made of it last time, and what was done since."""

    text: str
    count: int
    kind: str
    kinds: list[str]
    reason: str
    closest_entry: str | None
    score: float
    language: str | None
    last_seen: str
    handled: HandledOut | None


class MissesOut(Window):
    misses: list[MissOut]


class DownVotedOut(Body):
    question: str
    at: str


class EntryAnswersOut(Body):
    """One KB entry's answers over the window: how often, the votes, the handoffs after them."""

    entry: str
    title: str | None
    in_service: bool
    answered: int
    up: int
    down: int
    down_share: float | None
    handed_off: int
    handed_off_share: float | None
    recent_down: list[DownVotedOut]


class AnswersOut(Window):
    answers: list[EntryAnswersOut]


# --- the content ------------------------------------------------------------------------------------


class QuestionAddedOut(Body):
    entry: str
    language: str
    text: str
    file: str
    line: int
    applied: bool = Field(
        description="In service now (201); false (202): written, not in service, see status"
    )
    status: str = Field(description='"in service", or why the written file is not in service yet')


class ExampleAddedOut(Body):
    intent: str
    text: str
    file: str
    line: int
    applied: bool = Field(
        description="In service now (201); false (202): written, not in service, see status"
    )
    status: str = Field(description='"in service", or why the written file is not in service yet')

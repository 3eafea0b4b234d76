"""The decision policy: answer, ask to clarify, admit a miss, or hand off to a person."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from bot.content.intents import OOS_INTENT
from bot.nlu.encoders import Thresholds
from bot.nlu.index import Candidate

DecisionKind = Literal["answer", "clarify", "fallback", "handoff", "respond"]
MAX_OPTIONS = 3


@dataclass(frozen=True)
class Decision:
    """What the bot does with one message, and why (scores kept for the agent and for eval)."""

    kind: DecisionKind
    label: str | None = None  # KB entry id (answer) or intent name (respond / handoff)
    score: float = 0.0
    reason: str = ""
    options: tuple[str, ...] = ()  # entry ids offered when clarifying
    candidates: tuple[Candidate, ...] = field(default=(), repr=False)
    negativity: float | None = None  # strong negative wording (bot/nlu/sentiment.py); None: not measured

    @property
    def public_kind(self) -> str:
        """Return the kind as reported to clients: a canned intent reply is an answer."""
        return "answer" if self.kind == "respond" else self.kind

    def summary(self) -> dict[str, object]:
        return {
            "decision": self.public_kind,
            "kind": self.kind,
            "label": self.label,
            "score": round(self.score, 4),
            "reason": self.reason,
            "negativity": self.negativity,
            "options": list(self.options),
            "candidates": [
                {
                    "label": c.label,
                    "kind": c.kind,
                    "score": round(c.score, 4),
                    "similarity": round(c.similarity, 4),
                    "matched": c.matched,
                }
                for c in self.candidates[:5]
            ],
        }


def decide(candidates: list[Candidate], thresholds: Thresholds, intent_actions: dict[str, str]) -> Decision:
    """Turn ranked candidates (best first) into a decision.

    Kept in step with calibration._utility_grid, which replays this logic over many thresholds
    (all but the intent gate of anchored thresholds, which are never searched).
    """
    if not candidates:
        return Decision("fallback", reason="no_text")
    top_list = tuple(candidates[:8])
    top = candidates[0]
    if top.kind == "intent" and top.label == OOS_INTENT:
        return Decision("fallback", None, top.score, "out_of_scope", candidates=top_list)
    if top.score < thresholds.clarify or top.similarity < thresholds.min_similarity:
        return Decision("fallback", None, top.score, "low_confidence", candidates=top_list)
    if top.kind == "intent":
        if top.score < thresholds.intent_gate:
            # a weak small-talk guess must not hide a KB entry: with a gate of its own (thin knowledge
            # bases, bot/nlu/thresholds.py), the KB candidates decide instead
            entries = [c for c in candidates if c.kind == "kb"]
            if thresholds.intent is None or not entries:
                return Decision("fallback", None, top.score, "low_confidence", candidates=top_list)
            return replace(decide(entries, thresholds, intent_actions), candidates=top_list)
        kind: DecisionKind = "handoff" if intent_actions.get(top.label, "respond") == "handoff" else "respond"
        return Decision(kind, top.label, top.score, "intent", candidates=top_list)
    kb = [c for c in candidates if c.kind == "kb"][:MAX_OPTIONS]
    close = [c for c in kb if c.score >= top.score - thresholds.margin]
    if len(close) >= 2:
        return Decision(
            "clarify",
            top.label,
            top.score,
            "close_candidates",
            options=tuple(c.label for c in close),
            candidates=top_list,
        )
    if top.score >= thresholds.answer:
        return Decision("answer", top.label, top.score, "confident", candidates=top_list)
    options = [top.label] + [c.label for c in kb[1:2] if c.score >= thresholds.clarify]
    return Decision("clarify", top.label, top.score, "unsure", options=tuple(options), candidates=top_list)

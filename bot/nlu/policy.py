"""The decision policy: answer, ask to clarify, admit a miss, or hand off to a person."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.intents import OOS_INTENT
from bot.nlu.encoders import Thresholds
from bot.nlu.index import Candidate

DecisionKind = Literal["answer", "clarify", "fallback", "handoff", "respond"]


@dataclass(frozen=True)
class Decision:
    """What the bot does with one message, and why (scores kept for the agent and for eval)."""

    kind: DecisionKind
    label: str | None = None  # KB entry id (answer) or intent name (respond / handoff)
    score: float = 0.0
    reason: str = ""
    options: tuple[str, ...] = ()  # entry ids offered when clarifying
    candidates: tuple[Candidate, ...] = field(default=(), repr=False)

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
            "options": list(self.options),
            "candidates": [
                {"label": c.label, "kind": c.kind, "score": round(c.score, 4), "matched": c.matched}
                for c in self.candidates[:5]
            ],
        }


def decide(
    candidates: list[Candidate],
    thresholds: Thresholds,
    intent_actions: dict[str, str],
    max_options: int = 3,
) -> Decision:
    """Turn ranked candidates into a decision; thresholds come from config or calibration."""
    top = tuple(candidates[:8])
    kb = [c for c in candidates if c.kind == "kb"]
    intents = [c for c in candidates if c.kind == "intent"]
    best_kb = kb[0] if kb else None
    best_intent = intents[0] if intents else None
    if (
        best_intent
        and best_intent.score >= thresholds.clarify
        and (best_kb is None or best_intent.score > best_kb.score)
    ):
        if best_intent.label == OOS_INTENT:
            return Decision("fallback", None, best_intent.score, "out_of_scope", candidates=top)
        action = intent_actions.get(best_intent.label, "respond")
        kind: DecisionKind = "handoff" if action == "handoff" else "respond"
        return Decision(kind, best_intent.label, best_intent.score, "intent", candidates=top)
    if best_kb is None or best_kb.score < thresholds.clarify:
        score = best_kb.score if best_kb else 0.0
        return Decision("fallback", None, score, "low_confidence", candidates=top)
    close = [c for c in kb[:max_options] if c.score >= best_kb.score - thresholds.margin]
    if len(close) >= 2:
        return Decision(
            "clarify",
            best_kb.label,
            best_kb.score,
            "close_candidates",
            options=tuple(c.label for c in close),
            candidates=top,
        )
    if best_kb.score >= thresholds.answer:
        return Decision("answer", best_kb.label, best_kb.score, "confident", candidates=top)
    options = [best_kb.label] + [c.label for c in kb[1:2] if c.score >= thresholds.clarify]
    return Decision("clarify", best_kb.label, best_kb.score, "unsure", options=tuple(options), candidates=top)

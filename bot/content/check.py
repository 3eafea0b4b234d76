"""`supportbot kb check`: everything wrong with kb/ and intents/, each with file:line."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import Settings
from bot.content.intents import load_intents
from bot.content.knowledge import load_knowledge_base


@dataclass
class ContentReport:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    entries: int = 0
    intents: int = 0
    examples: int = 0


def check_content(settings: Settings) -> ContentReport:
    """Load both content folders and collect every problem and warning."""
    kb = load_knowledge_base(settings.resolve(settings.kb.path), settings.kb.languages)
    intents = load_intents(settings.resolve(settings.intents.path))
    report = ContentReport(problems=kb.problems + intents.problems, warnings=list(kb.warnings))
    report.entries = len(kb.entries)
    report.intents = len(intents.intents)
    report.examples = sum(len(i.examples) for i in intents.intents)
    questions: dict[str, str] = {}
    for entry in kb.entries:
        for lang, texts in entry.questions.items():
            for text in texts:
                key = text.casefold()
                if key in questions and questions[key] != entry.id:
                    report.problems.append(
                        f"{entry.source}: question {text!r} ({lang}) is also under entry {questions[key]!r}"
                    )
                questions.setdefault(key, entry.id)
    known = set(settings.intents.actions)  # what each intent does; custom action names are checked below
    for intent in intents.conversational:
        if intent.name not in known:
            report.warnings.append(
                f"{intent.source}: intent {intent.name!r} has no action in config.yaml intents.actions "
                "(the bot will reply with a fallback)"
            )
    for name in known:
        if intents.get(name) is None:
            report.warnings.append(
                f"config.yaml intents.actions names {name!r}, but no intents file defines it"
            )
    from bot.actions.check import check_actions  # imports rasa-sdk only when content is checked

    action_problems, action_warnings = check_actions(settings, kb, intents)
    report.problems.extend(action_problems)
    report.warnings.extend(action_warnings)
    if not report.problems:
        from bot.nlu.thresholds import shape_warnings

        report.warnings.extend(shape_warnings(kb, intents, settings.policy.default_oos))
    return report


def similarity_warnings(settings: Settings) -> tuple[list[str], str]:
    """Warn about confusable entries and about what calibration expects (needs the encoder and index).

    Runs the calibration a deployment runs (without writing it): entries whose held-out questions land
    on another entry and a degenerate result replaced by the defaults; plus the figures to expect live.
    """
    from bot.nlu.calibration import confusable_entries
    from bot.nlu.matcher import Matcher
    from bot.nlu.thresholds import ANCHORED_EXPECTED, measure

    matcher = Matcher.load(settings, progress=False, calibrate=False)
    found = measure(matcher)
    warnings = []
    for confusion in confusable_entries([r for r in found.records if r.source != "generic"]):
        first = matcher.kb.get(confusion.first)
        where = first.source if first else ""
        warnings.append(
            f"{where}: entry {confusion.first!r} is hard to tell from {confusion.second!r}: "
            f"{confusion.confused / confusion.total:.0%} of its questions, each held out, are closer to "
            f"{confusion.second!r}; "
            "merge them or make the questions more distinct"
        )
    warnings += [w for w in found.warnings if w.startswith("calibration:")]
    if found.state == "anchored":
        return (
            warnings,
            ANCHORED_EXPECTED,
        )
    return warnings, found.expected.summary()

"""Calibration that holds on the knowledge bases people write: one question an entry, no oos examples."""

from __future__ import annotations

import numpy as np
import pytest

from bot.content.intents import OOS_INTENT, Intent, IntentSet
from bot.content.knowledge import KBEntry, KnowledgeBase
from bot.nlu.calibration import Record, generic_share_for, record_weights
from bot.nlu.index import Candidate
from bot.nlu.matcher import Matcher, index_items, load_content, split_clauses
from bot.nlu.reference import generic_out_of_scope
from bot.nlu.thresholds import measure, shape_warnings
from bot.quality.evaluation import Shape


def _record(gold: str, source: str = "kb") -> Record:
    return Record(gold, [Candidate("a", "kb", 0.5, "", None, 0.9)], None, source)


def test_out_of_scope_weight_is_the_configured_share_split_between_editor_and_generic() -> None:
    records = (
        [_record("a")] * 80 + [_record(OOS_INTENT, "intent")] * 5 + [_record(OOS_INTENT, "generic")] * 50
    )
    weights = record_weights(records, oos_share=0.2, generic_share=0.3)
    gold_oos = np.array([r.gold == OOS_INTENT for r in records])
    generic = np.array([r.source == "generic" for r in records])
    assert weights[gold_oos].sum() / weights.sum() == pytest.approx(0.2)
    assert weights[generic].sum() / weights[gold_oos].sum() == pytest.approx(0.3)


def test_an_empty_out_of_scope_group_leaves_its_share_to_the_other() -> None:
    records = [_record("a")] * 80 + [_record(OOS_INTENT, "generic")] * 10
    weights = record_weights(records, oos_share=0.2, generic_share=0.1)
    assert weights[80:].sum() / weights.sum() == pytest.approx(0.2)


def test_the_generic_set_counts_less_as_the_editor_writes_more() -> None:
    assert generic_share_for(0) == 1.0
    assert generic_share_for(50) == pytest.approx(0.5)
    assert generic_share_for(500) == 0.0


def test_the_bundled_generic_set_covers_four_languages() -> None:
    messages = generic_out_of_scope()
    counts = {lang: sum(m.lang == lang for m in messages) for lang in ("en", "ru", "pl", "uk")}
    assert all(count >= 100 for count in counts.values()), counts


def test_answers_are_evidence_for_thin_entries_never_questions() -> None:
    thin = KBEntry("refund", {"en": ["How do I get a refund?"]}, {"en": "Refunds take 5 days."})
    kb = KnowledgeBase([thin])
    items = index_items(kb, IntentSet())
    assert [(i.text, i.evidence) for i in items] == [
        ("How do I get a refund?", False),
        ("Refunds take 5 days.", True),
    ]
    assert [i.evidence for i in index_items(kb, IntentSet(), answers=False)] == [False]
    rich = KBEntry("e", {"en": ["a?", "b?"], "ru": ["в?"]}, {"en": "an answer"})
    assert not any(i.evidence for i in index_items(KnowledgeBase([rich]), IntentSet()))


def test_shape_warnings_name_thin_entries_and_missing_out_of_scope_examples() -> None:
    thin = KnowledgeBase([KBEntry(f"e{i}", {"en": [f"question {i}"]}, {"en": "answer"}) for i in range(5)])
    warnings = shape_warnings(thin, IntentSet(), default_oos=True)
    assert any("5 of 5 KB entries have fewer than 3 questions" in w for w in warnings)
    assert any("0 out-of-scope examples" in w and "add 20 or more" in w for w in warnings)
    off = shape_warnings(thin, IntentSet(), default_oos=False)
    assert any("nothing tells the bot what not to answer" in w for w in off)
    rich = KnowledgeBase([KBEntry("e", {"en": ["a", "b", "c"]}, {"en": "x"})])
    oos = IntentSet([Intent(OOS_INTENT, tuple(f"other {i}" for i in range(30)))])
    assert shape_warnings(rich, oos) == []


def test_clauses_split_at_punctuation_or_after_the_first_word() -> None:
    assert split_clauses("privet, gde moi zakaz 12345? uzhe nedelyu zhdu") == [
        "privet",
        "gde moi zakaz 12345",
        "uzhe nedelyu zhdu",
    ]
    assert split_clauses("hello where is my order") == ["hello", "where is my order"]


@pytest.fixture(scope="module")
def demo_one_question(request: pytest.FixtureRequest, encoder, index_cache) -> Matcher:  # type: ignore[no-untyped-def]
    from bot.config import load_settings
    from tests.support.paths import REPO

    settings = load_settings(
        REPO / "config.yaml",
        embedding={"cache_dir": str(index_cache)},
        policy={"calibration_file": None},
    )
    kb, intents = Shape(shots=1, oos_train=False).reduce(*load_content(settings))
    return Matcher.of_content(settings, kb, intents, encoder, progress=False)


def _with_policy(matcher: Matcher, **policy: object) -> Matcher:
    """The same content, index and head under a copy of the settings with these policy values."""
    settings = matcher.settings.model_copy(deep=True)
    for key, value in policy.items():
        setattr(settings.policy, key, value)
    return Matcher(
        settings,
        matcher.encoder,
        matcher.kb,
        matcher.intents,
        matcher.index,
        matcher.thresholds,
        matcher.head,
    )


def test_one_question_per_entry_anchors_the_thresholds_and_offers_the_closest_entries(
    demo_one_question: Matcher,
) -> None:
    found = measure(demo_one_question)
    assert found.state == "anchored" and found.fallback is None, found.warnings
    assert found.thresholds.intent is not None and found.thresholds.min_similarity > 0.5
    assert any("fewer than 3 questions" in w for w in found.warnings)
    assert any("anchored" in w and "kb calibrate" in w for w in found.warnings)
    demo_one_question.thresholds = found.thresholds
    assert demo_one_question.understand("tell me a joke about cats").kind == "fallback"
    # rewordings nobody wrote into the KB: most get their entry answered or offered, not a refusal
    rewordings = [
        ("hi, my order still hasnt arrived, where is it??", "order_status"),
        ("ile kosztuje wysylka do domu", "delivery_cost"),
        ("how many days do i have to send stuff back", "return_policy"),
        ("zabyl parol ne mogu voiti", "password_reset"),
        ("can i pay with cash when the courier comes", "payment_cash_on_delivery"),
        ("do you have a gift card for my sister", "gift_cards"),
    ]
    found_entry = []
    for text, entry in rewordings:
        decision = demo_one_question.understand(text)
        found_entry.append(
            decision.kind in ("answer", "clarify") and entry in (decision.label, *decision.options)
        )
    assert sum(found_entry) >= 4, list(zip(rewordings, found_entry, strict=True))


def test_a_thin_kb_keeps_the_editors_out_of_scope_examples_out_of_the_model() -> None:
    thin = KnowledgeBase([KBEntry(f"e{i}", {"en": [f"question {i}"]}, {"en": "answer"}) for i in range(4)])
    full = KnowledgeBase(
        [KBEntry(f"e{i}", {"en": [f"question {i}", "a", "b"]}, {"en": "x"}) for i in range(4)]
    )
    intents = IntentSet([Intent(OOS_INTENT, ("what is the weather",)), Intent("greet", ("hello",))])
    assert {i.label for i in index_items(thin, intents) if i.kind == "intent"} == {"greet"}
    assert {i.label for i in index_items(full, intents) if i.kind == "intent"} == {"greet", OOS_INTENT}
    # without the classifier head nothing is anchored (the rules read its blended score): oos stays a class
    without_head = index_items(thin, intents, classifier=False)
    assert {i.label for i in without_head if i.kind == "intent"} == {"greet", OOS_INTENT}


def test_without_any_out_of_scope_evidence_the_defaults_are_used_and_said(demo_one_question: Matcher) -> None:
    matcher = _with_policy(demo_one_question, default_oos=False)
    found = measure(matcher)
    assert found.fallback is not None and "no out-of-scope evidence" in found.fallback
    assert any(w.startswith("calibration:") and "default thresholds" in w for w in found.warnings)


def test_the_anchored_calibration_is_written_reloaded_and_reported(
    demo_one_question: Matcher, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from bot.nlu.thresholds import load_thresholds
    from bot.web.health import calibration_health

    matcher = _with_policy(demo_one_question, calibration_file=tmp_path / "calibration.yaml")
    settings = matcher.settings
    data = matcher.calibrate()
    assert data["state"] == "anchored" and data["intent"] == 0.5
    reloaded = load_thresholds(settings, matcher.encoder)  # what a restart uses: the intent gate survives
    assert reloaded.intent == 0.5
    assert reloaded.min_similarity == pytest.approx(matcher.thresholds.min_similarity, abs=1e-4)
    health = calibration_health(settings)
    assert health["state"] == "anchored" and any("anchored" in w for w in health["warnings"])  # type: ignore[union-attr]
    assert not matcher.calibration_is_stale()

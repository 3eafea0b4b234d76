"""Suggested KB entries from what agents answered: group the pairs by meaning, propose what is missing.

The pairs of resolved conversations (bot/learning/pairs.py) are grouped by meaning: each pair is its
question's and its answer's embeddings side by side (the bot's own encoder), grouped single-link at
`learning.similarity` (`learning.cross_language_similarity` for two pairs in different languages,
bot/learning/grouping.py): questions alone group poorly across languages with the
bundled model, what the agents answered tells subjects apart far better (bot/learning/measure.py). A group
from at least `learning.min_conversations` distinct conversations becomes a suggestion unless the bot
already answers most of its questions, or an editor accepted or dismissed it (a dismissed group comes back
only when a conversation it did not have joins it). The agents' answer closest to all the others in a
language (the medoid) is the draft answer in that language.

The kind: when the questions lead to an existing entry (the entry the intent layer ranks first for most
of them) and the agents' answers say what that entry says (cosine of the draft answers to the entry's
answers, per language, on average at least `learning.answer_similarity`), the suggestion is to add the
questions to that entry (`add_questions`): the bot had the answer but not the wording. Otherwise it is a
new entry (`new_entry`): close questions with a different answer ("gift wrapping" next to "gift cards")
are a new subject.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.config import LearningSettings
from bot.learning.grouping import medoid, single_link
from bot.learning.pairs import History, Pair, canned_patterns, pair_up
from bot.learning.placeholders import PLACEHOLDER, placeholders_in
from bot.nlu.matcher import Matcher
from bot.nlu.policy import Decision

NEW_ENTRY = "new_entry"
ADD_QUESTIONS = "add_questions"
_BATCH = 64  # texts per model call
_MAX_EMBEDDED_CHARS = 400


@dataclass
class Suggestion:
    """One proposed change to the KB and the conversations it was learned from."""

    id: str
    kind: str  # new_entry / add_questions
    entry: str | None  # the existing entry (add_questions); the proposed id (new_entry)
    title: str
    questions: list[tuple[str, str]]  # (language, text), personal data as placeholders
    answer: dict[str, str]  # language -> draft answer (new_entry) or the agents' answer (add_questions)
    conversations: list[int]
    closest_entry: str | None = None
    answer_similarity: float | None = None
    missing_languages: list[str] = field(default_factory=list)  # kb.languages with no agent answer

    @property
    def placeholders(self) -> list[str]:
        texts = [*self.answer.values(), *(text for _, text in self.questions)]
        return list(dict.fromkeys(p for text in texts for p in placeholders_in(text)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "entry": self.entry,
            "title": self.title,
            "questions": [{"language": lang, "text": text} for lang, text in self.questions],
            "answer": dict(self.answer),
            "conversations": list(self.conversations),
            "closest_entry": self.closest_entry,
            "answer_similarity": self.answer_similarity,
            "missing_languages": list(self.missing_languages),
            "placeholders": self.placeholders,
        }


def suggestion_id(conversations: Sequence[int]) -> str:
    """A group's id: the same conversations give the same id, one more gives another."""
    return hashlib.sha256(",".join(map(str, sorted(conversations))).encode()).hexdigest()[:12]


def decide_all(matcher: Matcher, texts: Sequence[str]) -> dict[str, Decision]:
    """The intent layer's decision for each distinct text, a batch of texts per model call."""
    unique = list(dict.fromkeys(texts))
    decisions: dict[str, Decision] = {}
    for start in range(0, len(unique), _BATCH):
        batch = unique[start : start + _BATCH]
        decisions.update(zip(batch, matcher.understand_many(batch), strict=True))
    return decisions


class _Vectors:
    """The embeddings of texts already seen (per model), so listing the suggestions again costs no model calls."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, matcher: Matcher, texts: Sequence[str]) -> np.ndarray:
        model = matcher.encoder.model_id
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if (model, t) not in self._seen))
        if missing:
            vectors = [
                matcher.encoder.encode(missing[i : i + _BATCH]) for i in range(0, len(missing), _BATCH)
            ]
            with self._lock:
                for text, vector in zip(missing, np.vstack(vectors), strict=True):
                    self._seen[(model, text)] = vector
                while len(self._seen) > self.size:
                    self._seen.popitem(last=False)
        with self._lock:
            found = [self._seen.get((model, t)) for t in texts]
        present = [v for v in found if v is not None]
        if len(present) < len(texts):  # pushed out meanwhile by a very large batch: embed directly
            return matcher.encoder.encode(list(texts))
        return np.vstack(present) if present else np.zeros((0, matcher.encoder.dim), dtype=np.float32)


_VECTORS = _Vectors()


def embed(matcher: Matcher, texts: Sequence[str]) -> np.ndarray:
    """Embed texts as the bot reads them (normalised; placeholders and personal data left out)."""
    cleaned = [matcher.clean(PLACEHOLDER.sub(" ", text))[:_MAX_EMBEDDED_CHARS] or text for text in texts]
    return _VECTORS.get(matcher, cleaned)


def pair_vectors(questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """One unit vector per pair: question and answer side by side, so a cosine is the mean of both."""
    return np.hstack([questions, answers]) / np.sqrt(2)


def build_suggestions(
    matcher: Matcher, history: History, settings: LearningSettings, remembered: Sequence[set[int]] = ()
) -> list[Suggestion]:
    """Every suggestion the history gives (CPU-bound: call it off the event loop), largest group first."""
    languages = matcher.settings.kb.languages
    decisions = decide_all(matcher, [turn.text for turn in history.turns])
    canned = canned_patterns(
        [text for response in matcher.settings.console.canned_responses for text in response.text.values()]
    )
    pairs = pair_up(history, decisions, languages, canned)
    if not pairs:
        return []
    decisions.update(decide_all(matcher, [p.raw_question for p in pairs if p.raw_question not in decisions]))
    vectors = embed(matcher, [p.raw_question for p in pairs])
    answer_vectors = embed(matcher, [p.answer for p in pairs])
    found = []
    languages = [p.question_language for p in pairs]
    for group in single_link(
        pair_vectors(vectors, answer_vectors),
        settings.similarity,
        languages,
        settings.cross_language_similarity,
    ):
        members = [pairs[i] for i in group]
        conversations = sorted({p.conversation_id for p in members})
        if len(conversations) < settings.min_conversations:
            continue
        if any(set(conversations) <= seen for seen in remembered):
            continue  # accepted or dismissed, and no new conversation since
        group_decisions = [decisions[p.raw_question] for p in members]
        answered = sum(d.kind == "answer" for d in group_decisions)
        if answered * 2 > len(members):
            continue  # the bot answers these questions now
        found.append(_suggest(matcher, members, vectors[group], group_decisions, conversations, settings))
    return sorted(found, key=lambda s: (-len(s.conversations), s.conversations))


def _suggest(
    matcher: Matcher,
    members: list[Pair],
    question_vectors: np.ndarray,
    group_decisions: list[Decision],
    conversations: list[int],
    settings: LearningSettings,
) -> Suggestion:
    kb_settings = matcher.settings.kb
    answers = _draft_answers(matcher, members)
    closest = _closest_entry(group_decisions)
    similarity = _answer_similarity(matcher, closest, answers) if closest else None
    kind = ADD_QUESTIONS if similarity is not None and similarity >= settings.answer_similarity else NEW_ENTRY
    existing = {q.casefold() for e in matcher.kb.entries for qs in e.questions.values() for q in qs}
    questions: dict[str, tuple[str, str]] = {}
    for pair in members:
        key = " ".join(pair.question.casefold().split())
        if key not in existing and key not in questions:
            questions[key] = (pair.question_language, " ".join(pair.question.split()))
    titled = [p for p in members if p.question_language == kb_settings.default_language] or members
    title_at = medoid(question_vectors[[members.index(p) for p in titled]])
    title = " ".join(titled[title_at].question.split())
    id_ = suggestion_id(conversations)
    entry = closest if kind == ADD_QUESTIONS else _new_id(matcher, members, id_)
    return Suggestion(
        id=id_,
        kind=kind,
        entry=entry,
        title=title,
        questions=list(questions.values()),
        answer=answers,
        conversations=conversations,
        closest_entry=closest,
        answer_similarity=None if similarity is None else round(similarity, 4),
        missing_languages=[lang for lang in kb_settings.languages if lang not in answers],
    )


def _draft_answers(matcher: Matcher, members: list[Pair]) -> dict[str, str]:
    """Per language, the agents' answer most like the others in that language (the medoid)."""
    by_language: dict[str, list[str]] = {}
    for pair in members:
        by_language.setdefault(pair.answer_language, []).append(pair.answer)
    drafts = {}
    for language in sorted(by_language):
        texts = list(dict.fromkeys(by_language[language]))
        drafts[language] = texts[medoid(embed(matcher, texts))] if len(texts) > 1 else texts[0]
    return drafts


def _closest_entry(decisions: list[Decision]) -> str | None:
    """The entry the intent layer ranks first (among entries) for most of the questions."""
    tops = [next((c.label for c in d.candidates if c.kind == "kb"), None) for d in decisions]
    counted = Counter(t for t in tops if t is not None)
    return counted.most_common(1)[0][0] if counted else None


def _answer_similarity(matcher: Matcher, entry_id: str, drafts: dict[str, str]) -> float | None:
    """Mean cosine of the agents' draft answers to the entry's answers in the same languages."""
    entry = matcher.kb.get(entry_id)
    if entry is None:
        return None
    shared = [lang for lang in drafts if entry.answer.get(lang)]
    if not shared:
        shared_pairs = [
            (drafts[lang], entry.answer_in(lang, matcher.settings.kb.default_language)) for lang in drafts
        ]
    else:
        shared_pairs = [(drafts[lang], entry.answer[lang]) for lang in shared]
    ours = embed(matcher, [a for a, _ in shared_pairs])
    theirs = embed(matcher, [b for _, b in shared_pairs])
    return float(np.mean(np.sum(ours * theirs, axis=1)))


def _new_id(matcher: Matcher, members: list[Pair], id_: str) -> str:
    """An id for a new entry: from an English question's words when there is one, else from the group."""
    english = next((p.question for p in members if p.question_language == "en"), "")
    words = re.findall(r"[a-z0-9]+", PLACEHOLDER.sub(" ", english.casefold()))
    base = "_".join(w for w in words if len(w) > 2)[:40].strip("_") or f"suggested_{id_[:6]}"
    candidate, n = base, 2
    while matcher.kb.get(candidate) is not None:
        candidate, n = f"{base}_{n}", n + 1
    return candidate

"""How the bot's answers land, per knowledge-base entry (GET /api/v1/answers, the console's Answers table).

An answer is the bot replying with an entry: to a customer's message it decided to answer with it (a
stored decision `answer` of kind `answer`, on a message the bot handled, not one written to a person),
or to a press of the entry's button under a clarifying question (a `clarification_chosen` event). Per
entry, over the window:

- `answered`: the answers given with it;
- `up`, `down`: the 👍/👎 pressed under it (`answer_feedback` events); `down_share` = down / (up + down);
- `handed_off`: the answers after which the conversation was queued for a person (a `queued` event) before
  the bot's next answer in that conversation (with any entry; none: up to now); `handed_off_share` =
  handed_off / answered. It counts whatever led there: a 👎 and "talk to a person", "a person, please"
  straight away, but also a new question the bot then missed twice;
- `recent_down`: the questions behind the 3 latest 👎, newest first: the text the customer wrote that got
  the answer (for a clarification choice, the customer's last message written before the press).

Every entry of the knowledge base in service is listed, unused ones with zeros, and so is an entry answered
in the window that is no longer in it; votes naming any other id are left out (a button's payload is only
what the client sent). Worst first: most 👎, then the highest handed-off share, then the most answered.
Counting is done in SQL (one grouped query per figure; window functions and correlated subqueries, the same
on SQLite and PostgreSQL); only the three questions per entry come back as rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, and_, case, exists, func, or_, select, union_all
from sqlalchemy.orm import aliased

from bot.insights.stats import FOR_AGENT, share
from bot.storage.database import Database
from bot.storage.models import Event, Message, as_utc

RECENT_DOWN = 3
COLUMNS = (
    "entry",
    "title",
    "in_service",
    "answered",
    "up",
    "down",
    "down_share",
    "handed_off",
    "handed_off_share",
    *(f"down_question_{n}" for n in range(1, RECENT_DOWN + 1)),
)


@dataclass(frozen=True)
class DownVoted:
    """A customer's question whose answer got 👎, and when the 👎 came."""

    question: str
    at: datetime


@dataclass
class EntryAnswers:
    """One entry's answers over the window: how often, the votes under them, the handoffs after them."""

    entry: str
    title: str | None  # the entry's first question; None when it is no longer in the knowledge base
    answered: int = 0
    up: int = 0
    down: int = 0
    handed_off: int = 0
    recent_down: list[DownVoted] = field(default_factory=list)

    @property
    def down_share(self) -> float | None:
        return share(self.down, self.up + self.down)

    @property
    def handed_off_share(self) -> float | None:
        return share(self.handed_off, self.answered)

    def as_dict(self) -> dict[str, Any]:
        """Return the row as JSON for GET /api/v1/answers."""
        return {
            "entry": self.entry,
            "title": self.title,
            "in_service": self.title is not None,
            "answered": self.answered,
            "up": self.up,
            "down": self.down,
            "down_share": self.down_share,
            "handed_off": self.handed_off,
            "handed_off_share": self.handed_off_share,
            "recent_down": [
                {"question": d.question, "at": as_utc(d.at).isoformat(timespec="seconds")}
                for d in self.recent_down
            ],
        }

    def row(self) -> dict[str, Any]:
        """Return the row for the CSV file (COLUMNS)."""
        data = self.as_dict()
        del data["recent_down"]
        for n, down in enumerate(self.recent_down, 1):
            data[f"down_question_{n}"] = down.question
        return data


def _answers(since: datetime | None, until: datetime) -> CompoundSelect:
    """Every answer up to `until` (and from `since`): conversation, entry, when, the question behind it."""
    decision = Message.decision
    typed = select(
        Message.conversation_id.label("conversation_id"),
        decision["label"].as_string().label("entry"),
        Message.created_at.label("at"),
        Message.text.label("question"),
    ).where(
        Message.direction == "in",
        Message.sender == "customer",
        Message.created_at <= until,
        decision["decision"].as_string() == "answer",
        decision["kind"].as_string() == "answer",
        ~FOR_AGENT,
        *([Message.created_at >= since] if since else []),
    )
    asked = aliased(Message)
    last_written = (
        select(asked.text)
        .where(
            asked.conversation_id == Event.conversation_id,
            asked.direction == "in",
            asked.sender == "customer",
            asked.payload.is_(None),
            asked.text != "",
            asked.created_at <= Event.created_at,
        )
        .order_by(asked.created_at.desc(), asked.id.desc())
        .limit(1)
        .correlate(Event)
        .scalar_subquery()
    )
    chosen = select(
        Event.conversation_id, Event.data["entry"].as_string(), Event.created_at, last_written
    ).where(
        Event.kind == "clarification_chosen",
        Event.created_at <= until,
        *([Event.created_at >= since] if since else []),
    )
    return union_all(typed, chosen)


def _feedback(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [Event.kind == "answer_feedback", Event.created_at >= since, Event.created_at <= until]


async def collect_answers(
    database: Database, titles: Mapping[str, str], since: datetime, until: datetime
) -> list[EntryAnswers]:
    """Each entry's answers between `since` and `until`, worst first; `titles`: the entries in service."""
    found = {entry: EntryAnswers(entry, title) for entry, title in titles.items()}
    answers = _answers(since, until).cte("answers")
    following = select(
        answers.c.conversation_id,
        answers.c.entry,
        answers.c.at,
        func.lead(answers.c.at)
        .over(partition_by=answers.c.conversation_id, order_by=answers.c.at)
        .label("next_at"),
    ).cte("following")
    queued_after = exists().where(
        Event.kind == "queued",
        Event.conversation_id == following.c.conversation_id,
        Event.created_at > following.c.at,
        or_(following.c.next_at.is_(None), Event.created_at < following.c.next_at),
    )
    per_entry = select(following.c.entry, func.count(), func.sum(case((queued_after, 1), else_=0))).group_by(
        following.c.entry
    )
    vote_entry, vote = Event.data["entry"].as_string(), Event.data["vote"].as_string()
    votes = select(vote_entry, vote, func.count()).where(*_feedback(since, until)).group_by(vote_entry, vote)

    async with database.session() as session:
        for entry, answered, handed_off in (await session.execute(per_entry)).all():
            row = found.setdefault(entry, EntryAnswers(entry, None))
            row.answered, row.handed_off = int(answered), int(handed_off or 0)
        for entry, kind, count in (await session.execute(votes)).all():
            voted = found.get(entry)
            if voted is not None and kind == "up":
                voted.up += int(count)
            elif voted is not None and kind == "down":
                voted.down += int(count)
        for entry, question, at in (await session.execute(_recent_down(since, until))).all():
            if entry in found:
                found[entry].recent_down.append(DownVoted(question, at))
    return sorted(
        found.values(),
        key=lambda r: (-r.down, -(r.handed_off_share or 0.0), -r.answered, r.entry),
    )


def _recent_down(since: datetime, until: datetime) -> Any:
    """The questions behind each entry's RECENT_DOWN latest 👎: (entry, question, when), newest first."""
    entry = Event.data["entry"].as_string()
    downs = (
        select(Event.conversation_id, entry.label("entry"), Event.created_at.label("at"))
        .where(*_feedback(since, until), Event.data["vote"].as_string() == "down")
        .cte("downs")
    )
    # the answer voted on may predate the window: look in the voters' conversations, up to `until`
    answers = _answers(None, until).cte("voted_answers")
    question = (
        select(answers.c.question)
        .where(
            answers.c.conversation_id == downs.c.conversation_id,
            answers.c.entry == downs.c.entry,
            answers.c.at <= downs.c.at,
        )
        .order_by(answers.c.at.desc())
        .limit(1)
        .correlate(downs)
        .scalar_subquery()
    )
    behind = select(downs.c.entry, question.label("question"), downs.c.at).subquery("behind")
    ranked = (
        select(
            behind.c.entry,
            behind.c.question,
            behind.c.at,
            func.row_number().over(partition_by=behind.c.entry, order_by=behind.c.at.desc()).label("nth"),
        )
        .where(and_(behind.c.question.is_not(None), behind.c.question != ""))
        .subquery("ranked")
    )
    return (
        select(ranked.c.entry, ranked.c.question, ranked.c.at)
        .where(ranked.c.nth <= RECENT_DOWN)
        .order_by(ranked.c.entry, ranked.c.nth)
    )

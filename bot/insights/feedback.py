"""Which 👍/👎 votes count: one per answer actually sent in that conversation.

The buttons under a KB answer carry `fb:up:<entry>` / `fb:down:<entry>`, and any client can post any
payload (the web chat takes it as JSON). A vote therefore counts only when the bot sent an answer of that
entry, with those buttons, in the same conversation, and only as many times as it sent one: the answer
ratings in Insights (bot/insights/answers.py, stats.py) cannot be rewritten by posting payloads.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Event, Message

FEEDBACK_EVENT = "answer_feedback"


async def vote_counts(
    session: AsyncSession, conversation_id: int, entry_id: str, prefix: str = "fb:"
) -> bool:
    """Whether a vote on `entry_id` in this conversation counts: an answer of it with vote buttons was sent
    here, and fewer votes on it were counted than such answers."""
    sent = await session.execute(
        select(Message.buttons).where(
            Message.conversation_id == conversation_id,
            Message.direction == "out",
            Message.sender == "bot",
        )
    )
    wanted = {f"{prefix}up:{entry_id}", f"{prefix}down:{entry_id}"}
    answers = sum(1 for buttons in sent.scalars() if any(b.get("payload") in wanted for b in buttons or []))
    if not answers:
        return False
    counted = await session.execute(
        select(func.count()).where(
            Event.conversation_id == conversation_id,
            Event.kind == FEEDBACK_EVENT,
            Event.data["entry"].as_string() == entry_id,
        )
    )
    return int(counted.scalar_one()) < answers

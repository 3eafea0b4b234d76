"""Sends the desk's stored posts to the group: in order per topic, once, respecting Telegram's limits.

A 429 (flood control) stops all sending to the group until its retry_after has passed; a post that is
not due yet holds back its topic's later posts, so nothing is reordered. A topic that was deleted by hand
is marked gone (reported in the log and /healthz); its conversation stays in the console, and the
customer's next handoff makes a new topic.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.desk.store import claim_topic, due_posts
from bot.desk.transport import DeskApi, TopicGone
from bot.errors import RateLimited, SendError
from bot.storage.database import Database
from bot.storage.models import DeskPost, DeskTopic, as_utc, utcnow

log = logging.getLogger(__name__)
_GENERAL = -1  # the lane of posts to the general topic


class Sender:
    """One process's sender (it holds the desk's lease while it sends)."""

    def __init__(
        self, database: Database, api: DeskApi, general_thread_id: int | None, max_attempts: int
    ) -> None:
        self.database = database
        self.api = api
        self.general_thread_id = general_thread_id
        self.max_attempts = max_attempts
        self.quiet_until = 0.0  # monotonic: Telegram asked us to wait (429) until then

    async def round(self) -> int:
        """Send what is due; return how many posts were sent."""
        if time.monotonic() < self.quiet_until:
            return 0
        async with self.database.session() as session:
            posts = await due_posts(session)
        held: set[int] = set()  # lanes (topics) with an earlier post not sent yet
        sent = 0
        now = utcnow()
        for post in posts:
            lane = post.topic_id if post.topic_id is not None else _GENERAL
            if lane in held:
                continue
            if post.next_attempt_at is not None and as_utc(post.next_attempt_at) > now:
                held.add(lane)
                continue
            outcome = await self._send(post)
            if outcome == "sent":
                sent += 1
            elif outcome == "quiet":
                return sent
            elif outcome == "held":
                held.add(lane)
        return sent

    async def _send(self, post: DeskPost) -> str:
        """Send one post; return sent, held (retry later, keep order), quiet (429) or failed."""
        topic = await self._topic(post.topic_id) if post.topic_id is not None else None
        try:
            if topic is not None and topic.thread_id is None:
                if not await self._create_topic(topic):
                    return "held"  # another process is creating it
            message_id = await self._call(post, topic)
        except RateLimited as exc:
            wait = exc.retry_after or 1.0
            self.quiet_until = time.monotonic() + wait
            await self._retry(post, str(exc), wait, count=False)
            log.warning("telegram desk: flood control, waiting %.0fs before the next post", wait)
            return "quiet"
        except TopicGone as exc:
            await self._gone(post, topic, str(exc))
            return "failed"
        except SendError as exc:
            if exc.permanent or post.attempts + 1 >= self.max_attempts:
                await self._fail(post, str(exc))
                log.error("telegram desk: post %s (%s) given up: %s", post.id, post.key, exc)
                return "failed"
            await self._retry(post, str(exc), exc.retry_after or 2.0 ** min(post.attempts, 6), count=True)
            log.warning("telegram desk: post %s not sent, retrying: %s", post.id, exc)
            return "held"
        await self._sent(post, topic, message_id)
        if post.kind == "card" and message_id:
            try:
                await self.api.pin(message_id)
            except SendError as exc:  # the card is there; only the pin is missing
                log.warning("telegram desk: pinning the card %s failed: %s", message_id, exc)
        return "sent"

    async def _call(self, post: DeskPost, topic: DeskTopic | None) -> int | None:
        body = post.body or {}
        thread = topic.thread_id if topic is not None else self.general_thread_id
        if post.kind in ("text", "card"):
            return await self.api.send_text(thread, body["html"])
        if post.kind == "card_edit":
            if topic is not None and topic.card_message_id:
                await self.api.edit_text(topic.card_message_id, body["html"])
                return topic.card_message_id
            return await self.api.send_text(thread, body["html"])
        if post.kind == "media":
            return await self.api.send_media(thread, body["method"], body["file_id"], body.get("caption", ""))
        if post.kind in ("close", "reopen") and topic is not None and topic.thread_id is not None:
            await (self.api.close_topic if post.kind == "close" else self.api.reopen_topic)(topic.thread_id)
        return None

    async def _topic(self, topic_id: int) -> DeskTopic | None:
        async with self.database.session() as session:
            return await session.get(DeskTopic, topic_id)

    async def _create_topic(self, topic: DeskTopic) -> bool:
        """createForumTopic for a topic row nobody else is creating; False when it is not ours to create."""
        return await create_topic(self.database, self.api, topic)

    async def _sent(self, post: DeskPost, topic: DeskTopic | None, message_id: int | None) -> None:
        async with self.database.session() as session:
            await session.execute(
                update(DeskPost)
                .where(DeskPost.id == post.id)
                .values(status="sent", sent_at=utcnow(), platform_message_id=message_id, last_error=None)
            )
            if topic is not None:
                values: dict[str, object] = {}
                if post.kind == "card" and message_id:
                    values["card_message_id"] = message_id
                if post.kind in ("close", "reopen"):
                    values["status"] = "closed" if post.kind == "close" else "open"
                if values:
                    await session.execute(update(DeskTopic).where(DeskTopic.id == topic.id).values(**values))

    async def _retry(self, post: DeskPost, error: str, wait: float, count: bool) -> None:
        async with self.database.session() as session:
            await session.execute(
                update(DeskPost)
                .where(DeskPost.id == post.id)
                .values(
                    attempts=post.attempts + (1 if count else 0),
                    next_attempt_at=utcnow() + timedelta(seconds=wait),
                    last_error=error[:2000],
                )
            )

    async def _fail(self, post: DeskPost, error: str) -> None:
        async with self.database.session() as session:
            await session.execute(
                update(DeskPost)
                .where(DeskPost.id == post.id)
                .values(status="failed", attempts=post.attempts + 1, last_error=error[:2000])
            )

    async def _gone(self, post: DeskPost, topic: DeskTopic | None, error: str) -> None:
        """The topic was deleted: its pending posts fail, the row waits for the customer's next handoff."""
        log.error(
            "telegram desk: topic %s (%s) is gone (deleted by hand?): %s; the conversation stays in the console",
            topic.thread_id if topic else None,
            topic.name if topic else "general",
            error,
        )
        async with self.database.session() as session:
            if topic is None:
                await self._fail(post, error)
                return
            await session.execute(
                update(DeskTopic)
                .where(DeskTopic.id == topic.id)
                .values(status="gone", last_error=error[:2000])
            )
            await session.execute(
                update(DeskPost)
                .where(DeskPost.topic_id == topic.id, DeskPost.status == "pending")
                .values(status="failed", last_error=f"topic gone: {error}"[:2000])
            )


async def create_topic(
    database: Database, api: DeskApi, topic: DeskTopic, now: datetime | None = None
) -> bool:
    """Claim the topic row, call createForumTopic, store the thread id: one topic even when two race."""
    async with database.session() as session:
        if not await claim_topic(session, topic.id, now or utcnow()):
            return False
    try:
        thread_id = await api.create_topic(topic.name)
    except BaseException:
        async with database.session() as session:  # let the next round (or process) try again
            await session.execute(
                update(DeskTopic).where(DeskTopic.id == topic.id).values(claimed_until=None)
            )
        raise
    async with database.session() as session:
        await session.execute(
            update(DeskTopic)
            .where(DeskTopic.id == topic.id)
            .values(thread_id=thread_id, status="open", claimed_until=None, last_error=None)
        )
    topic.thread_id = thread_id
    log.info("telegram desk: topic %r created (thread %s)", topic.name, thread_id)
    return True


async def topic_by_thread(database: Database, chat_id: int, thread_id: int) -> DeskTopic | None:
    async with database.session() as session:
        query = select(DeskTopic).where(DeskTopic.chat_id == chat_id, DeskTopic.thread_id == thread_id)
        return (await session.execute(query)).scalars().first()

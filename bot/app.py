"""The running service: settings, database, intent layer, engine, outbox and channels wired together."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threadpoolctl import threadpool_limits

from bot.actions.runner import ActionRunner, configured_runner
from bot.adapters.base import Channel, Inbox, Received
from bot.config import Settings
from bot.content.reloads import ContentReloads
from bot.delivery.outbox import Outbox
from bot.delivery.spool import InboundSpool
from bot.engine import ConversationEngine, TurnResult
from bot.handoff.base import Handoff
from bot.handoff.live import LiveHandoff
from bot.insights import metrics
from bot.messages import IncomingMessage
from bot.nlu.encoders import Encoder, configured_encoder
from bot.nlu.matcher import Matcher, load_content
from bot.nlu.threads import limit_blas_threads, single_threaded_worker
from bot.storage.chat_view import chat_view
from bot.storage.database import Database
from bot.storage.repositories import ConversationRepository, MessageRepository
from bot.web.ratelimit import Limiter, make_limiter

if TYPE_CHECKING:
    from bot.desk.service import TelegramDesk

log = logging.getLogger(__name__)


class SupportBot:
    """One object to pass around instead of globals; `start` and `close` bracket its life."""

    def __init__(
        self,
        settings: Settings,
        channels: list[Channel] | None = None,
        encoder: Encoder | None = None,
        handoff: Handoff | None = None,
        database: Database | None = None,
        limiter: Limiter | None = None,
        actions: ActionRunner | None = None,
    ) -> None:
        self.settings = settings
        metrics.configure(
            settings.resolve(settings.metrics.multiprocess_dir) if settings.metrics.multiprocess_dir else None
        )
        # custom actions (rasa-sdk): an action server or a package in this process (bot/actions/runner.py)
        self.actions = actions or configured_runner(settings.actions, settings.base_dir)
        # rate limits (agent log-in, web chat): in this process, or shared through Redis (redis.url)
        self.limiter = limiter or make_limiter(settings)
        self.database = database or Database(settings.database_url, echo=settings.database.echo)
        self.channels: dict[str, Channel] = {c.name: c for c in channels or []}
        self.executor = ThreadPoolExecutor(
            max_workers=max(2, settings.embedding.workers),
            thread_name_prefix="nlu",
            initializer=single_threaded_worker,
        )
        self._blas_limit: threadpool_limits | None = None
        self._encoder = encoder
        self._matcher: Matcher | None = None
        # the live-agent desk: the engine's handoff, the agent API's back end (bot/handoff/live.py)
        self.handoff: Handoff = handoff or LiveHandoff(
            settings, self.database, self.channels, deliver=lambda cid: self.outbox.deliver(cid)
        )
        self.engine = ConversationEngine(
            settings,
            self.database,
            self.matcher,
            self.handoff,
            self.executor,
            sends_on=lambda channel: channel in self.channels,
            actions=self.actions,
        )
        self.outbox = Outbox(self.database, self.channels, settings.outbox)
        # webhook bodies acknowledged but not yet processed, replayed after a crash (bot/delivery/spool.py)
        self.spool = InboundSpool(self.database, self.channels, settings.spool)
        self._tasks: list[asyncio.Task[None]] = []
        # the Telegram agent desk (bot/desk/), when channels.telegram.agent_desk.chat_id is set
        self.desk: TelegramDesk | None = None
        # hot reload of kb/ and intents/, and its state for /healthz (bot/content/reloads.py)
        self.content = ContentReloads(self._content_folders, self._load_content)
        self._reloads: set[asyncio.Task[bool]] = set()

    def matcher(self) -> Matcher:
        if self._matcher is None:
            raise RuntimeError("SupportBot.start() has not loaded the knowledge base yet")
        return self._matcher

    def add_channel(self, channel: Channel) -> None:
        self.channels[channel.name] = channel

    async def start(self, background: bool = False, progress: bool = True) -> None:
        """Migrate the database, load the KB and the model; with background, run outbox, spool and channels."""
        await self.database.migrate()
        if self.actions is not None:
            await self.actions.start()  # imports actions.package (a mistake there stops the start)
        loop = asyncio.get_running_loop()
        if self._encoder is None:
            self._encoder = await loop.run_in_executor(
                self.executor, configured_encoder, self.settings.embedding
            )
        self._matcher = await loop.run_in_executor(
            self.executor, lambda: Matcher.load(self.settings, self._encoder, progress)
        )
        self.content.loaded(len(self._matcher.kb.entries))
        await self._warn_about_unknown_actions()
        self._blas_limit = self._blas_limit or limit_blas_threads()
        if background:
            self._tasks.append(asyncio.create_task(self.outbox.run(), name="outbox"))
            self._tasks.append(asyncio.create_task(self.spool.run(self.inbox), name="inbound-spool"))
            self._tasks.append(asyncio.create_task(self.content.watch(), name="kb-watch"))
            await self.handoff.start()
            await self.start_desk()
            for channel in self.channels.values():
                await channel.start(self.inbox)

    async def start_desk(self) -> TelegramDesk | None:
        """Start the Telegram agent desk when it is configured (before the channel takes updates)."""
        from bot.desk.service import TelegramDesk

        if self.desk is None:
            self.desk = TelegramDesk.configured(self.settings, self.handoff, self.channels)
        if self.desk is not None:
            await self.desk.start()
        return self.desk

    async def _warn_about_unknown_actions(self) -> None:
        """Log the custom actions the content names that the runner does not have (each would fail)."""
        from bot.actions.check import named_actions

        if self.actions is None:
            return  # entries then answer with their text; `kb check` reports the rest
        known = await self.actions.names()
        for action, source in sorted(named_actions(self.settings, self.matcher().kb).items()):
            if known is not None and action not in known:
                log.warning(
                    "custom action %s (%s) is not in %s: it will fail", action, source, self.actions.where
                )

    async def receive(self, message: IncomingMessage) -> TurnResult:
        """Handle one inbound message and deliver its replies right away (the outbox retries failures)."""
        result = await self.engine.handle(message)
        if not result.duplicate and not result.edited:
            metrics.message_in(message.channel)
            if result.decision is not None:
                metrics.decision(result.decision.kind)
        if result.claimed:
            await self.outbox.send_claimed(result.claimed)
        elif result.replies and result.conversation_id is not None:
            await self.outbox.deliver(result.conversation_id)
        return result

    async def receive_from_channel(self, message: IncomingMessage) -> Received:
        """Handle one inbound message for its channel (Inbox.receive): what came of it, typed for adapters."""
        result = await self.receive(message)
        return Received(duplicate=result.duplicate, replies=tuple(result.replies))

    @property
    def inbox(self) -> Inbox:
        """The callbacks adapters use; they never see the engine, the queue or the database."""
        return Inbox(
            self.receive_from_channel,
            self.customer_blocked,
            self.delivery_status,
            spool=self.spool,
            chat_view=self.chat_view,
            limiter=self.limiter,
        )

    async def customer_blocked(self, channel: str, customer_id: str) -> None:
        """Record that the customer blocked the bot and stop every pending send to them."""
        async with self.database.session() as session:
            await ConversationRepository(session).mark_blocked(channel, customer_id)

    async def chat_view(self, channel: str, customer_id: str, after: int | None) -> dict[str, Any]:
        """What the customer sees of their chat: messages after `after` and the state (bot/storage/chat_view.py)."""
        return await chat_view(self.database, channel, customer_id, after)

    async def delivery_status(
        self, channel: str, platform_message_id: str, status: str, error: str | None
    ) -> None:
        """Record a platform receipt (sent, delivered, read, failed) against our outgoing message."""
        async with self.database.session() as session:
            await MessageRepository(session).record_delivery_status(
                channel, platform_message_id, status, error
            )

    async def reload_content(self) -> bool:
        """Reload kb/ and intents/ without a restart; keep the old content if the new one is broken."""
        return await self.content.reload()

    def _content_folders(self) -> list[Path]:
        return [
            self.settings.resolve(self.settings.kb.path),
            self.settings.resolve(self.settings.intents.path),
        ]

    async def _load_content(self) -> int:
        """Load the content in a worker thread and put it in service; return its KB entries."""
        loop = asyncio.get_running_loop()
        current = self._matcher

        def load() -> Matcher:
            if current is not None:  # only answers changed: the same index over the new content, at once
                same = current.with_content(*load_content(self.settings))
                if same is not None:
                    return same
            return Matcher.load(self.settings, self._encoder, False)

        matcher = await loop.run_in_executor(self.executor, load)
        self._matcher = matcher
        return len(matcher.kb.entries)

    def content_changed(self) -> None:
        """Reload kb/ and intents/ now, in the background, after an edit this service made (the
        knowledge workspace's): its answers change at once, not at the file watcher's next look."""
        task = asyncio.create_task(self.content.reload(), name="kb-reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reloaded(self) -> None:
        """Wait for the reloads content_changed started (trying a message reads the KB as saved)."""
        if self._reloads:
            await asyncio.gather(*list(self._reloads), return_exceptions=True)

    async def close(self) -> None:
        if self.desk is not None:
            await self.desk.close()
        for channel in self.channels.values():
            with suppress(Exception):
                await channel.stop()
        for task in [*self._tasks, *self._reloads]:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.handoff.close()
        await self.database.close()
        with suppress(Exception):
            await self.limiter.close()
        if self.actions is not None:
            with suppress(Exception):
                await self.actions.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None

"""After a crash, only sends truly in flight may go out twice (issue 16, item 6): each send is marked, with the
platform's message id, as soon as it returns, in its own commit, never waiting for other sends' marks."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.app import SupportBot
from bot.errors import SendError
from bot.storage.models import Message
from bot.storage.repositories import MessageRepository
from tests.delivery.test_outbox import make_due
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import wait_for


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_send_is_marked_at_once_whatever_other_marks_are_doing(
    bot: SupportBot, channel: RecordingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel.fail_next += [SendError("timeout"), SendError("timeout")]  # both replies wait in the outbox
    first = await bot.receive(incoming("How can I pay for my order?", customer="first"))
    second = await bot.receive(incoming("How long does delivery take?", customer="second"))
    assert first.conversation_id is not None and second.conversation_id is not None
    [(held, _)] = first.replies
    [(other, _)] = second.replies
    await make_due(bot)

    gate = asyncio.Event()  # the first reply's mark hangs (a slow commit, a process about to die)
    mark_sent = MessageRepository.mark_sent

    async def slow_for_the_first(self: MessageRepository, sent: list[tuple[int, str | None]]) -> None:
        if any(message_id == held for message_id, _ in sent):
            await gate.wait()
        await mark_sent(self, sent)

    monkeypatch.setattr(MessageRepository, "mark_sent", slow_for_the_first)
    first_delivery = asyncio.create_task(bot.outbox.deliver(first.conversation_id))
    await wait_for(
        lambda: any(target.message_id == held for target, _ in channel.sent), what="the first send"
    )
    # (a mark that waited for the hanging one would never come back: bounded so the test fails instead)
    assert await asyncio.wait_for(bot.outbox.deliver(second.conversation_id), timeout=10) == 1

    async def status(message_id: int) -> tuple[str, str | None]:
        async with bot.database.session() as session:
            row = (await session.execute(select(Message).where(Message.id == message_id))).scalar_one()
            return row.status, row.platform_message_id

    # the second reply is marked sent, with its platform id, while the first one's mark still hangs
    sent_status, platform_id = await status(other)
    assert sent_status == "sent" and platform_id
    assert (await status(held))[0] == "pending"
    gate.set()
    assert await first_delivery == 1
    assert (await status(held))[0] == "sent"

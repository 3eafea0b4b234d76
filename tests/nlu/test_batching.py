"""Messages that arrive together share one model call, and each still gets the decision it gets alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import pytest

from bot.config import Settings
from bot.nlu.batching import UnderstandingBatcher
from bot.nlu.encoders import E5Encoder
from bot.nlu.matcher import Matcher
from bot.nlu.policy import Decision


class SlowMatcher:
    """Records each call; the first call waits for `release` so that later messages pile up."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail

    def understand_many(self, texts: Sequence[str]) -> list[Decision]:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.started.set()
            self.release.wait(10)
        if self.fail:
            raise RuntimeError("model crashed")
        return [Decision("answer", text, 1.0, "confident") for text in texts]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


async def _running(matcher: SlowMatcher) -> None:
    """Wait until the matcher's first call is running (and blocked)."""
    assert await asyncio.to_thread(matcher.started.wait, 10)


async def _pile_up(
    batcher: UnderstandingBatcher, matcher: SlowMatcher, texts: list[str]
) -> list[asyncio.Task[Decision]]:
    """Send the first text (it runs alone and blocks), then the rest while it runs."""
    first = asyncio.create_task(batcher.understand(cast(Matcher, matcher), texts[0]))
    await _running(matcher)
    rest = [asyncio.create_task(batcher.understand(cast(Matcher, matcher), t)) for t in texts[1:]]
    await asyncio.sleep(0.01)
    return [first, *rest]


async def test_a_lone_message_goes_at_once_and_later_ones_share_a_call(executor: ThreadPoolExecutor) -> None:
    matcher = SlowMatcher()
    batcher = UnderstandingBatcher(executor, workers=1, max_batch=16)
    tasks = await _pile_up(batcher, matcher, [f"m{i}" for i in range(6)])
    assert matcher.calls == [["m0"]]  # the handle is busy: the others wait together
    matcher.release.set()
    decisions = await asyncio.gather(*tasks)
    assert matcher.calls == [["m0"], ["m1", "m2", "m3", "m4", "m5"]]
    assert [d.label for d in decisions] == [f"m{i}" for i in range(6)]  # each gets its own decision


async def test_batches_are_capped_and_use_every_worker(executor: ThreadPoolExecutor) -> None:
    matcher = SlowMatcher()
    batcher = UnderstandingBatcher(executor, workers=2, max_batch=3)
    first = asyncio.create_task(batcher.understand(cast(Matcher, matcher), "m0"))
    await _running(matcher)
    rest = [asyncio.create_task(batcher.understand(cast(Matcher, matcher), f"m{i}")) for i in range(1, 8)]
    await asyncio.gather(*rest)  # the second worker serves them while the first is blocked
    matcher.release.set()
    await first
    assert matcher.calls[0] == ["m0"]
    assert all(len(call) <= 3 for call in matcher.calls)
    assert sorted(t for call in matcher.calls for t in call) == sorted(f"m{i}" for i in range(8))


async def test_a_model_error_reaches_every_message_of_its_call(executor: ThreadPoolExecutor) -> None:
    matcher = SlowMatcher(fail=True)
    batcher = UnderstandingBatcher(executor, workers=1, max_batch=16)
    tasks = await _pile_up(batcher, matcher, ["a", "b", "c"])
    matcher.release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    matcher.fail = False
    assert (await batcher.understand(cast(Matcher, matcher), "d")).label == "d"  # and it keeps working


async def test_a_caller_that_gave_up_is_left_out(executor: ThreadPoolExecutor) -> None:
    matcher = SlowMatcher()
    batcher = UnderstandingBatcher(executor, workers=1, max_batch=16)
    tasks = await _pile_up(batcher, matcher, ["a", "b", "c"])
    tasks[1].cancel()
    matcher.release.set()
    assert [d.label for d in await asyncio.gather(tasks[0], tasks[2])] == ["a", "c"]
    assert matcher.calls == [["a"], ["c"]]


async def test_a_swapped_matcher_never_shares_a_call_with_the_old_one(executor: ThreadPoolExecutor) -> None:
    old, new = SlowMatcher(), SlowMatcher()
    new.release.set()
    batcher = UnderstandingBatcher(executor, workers=1, max_batch=16)
    first = asyncio.create_task(batcher.understand(cast(Matcher, old), "old-1"))
    await _running(old)
    later = [
        asyncio.create_task(batcher.understand(cast(Matcher, m), text))
        for m, text in ((old, "old-2"), (new, "new-1"), (old, "old-3"), (new, "new-2"))
    ]
    await asyncio.sleep(0.01)
    old.release.set()
    await asyncio.gather(first, *later)
    assert old.calls == [["old-1"], ["old-2", "old-3"]]
    assert new.calls == [["new-1", "new-2"]]


def test_understand_many_gives_each_message_its_own_decision(
    make_settings: Callable[..., Settings], encoder: E5Encoder
) -> None:
    """One model call for many messages decides exactly as one call per message (the demo KB)."""
    texts = [
        "Сколько идёт доставка?",
        "How can I pay for my order?",
        "",
        "I want to talk to a human",
        "skolko stoit dostavka",
        "Jak długo trwa dostawa?",
        "How can I pay for my order?",  # the same text twice in one batch
        "🙂🙂🙂",
        "My parcel has not arrived. " * 40,  # long: several parts
        "what is the meaning of life",
    ]
    alone = Matcher.load(make_settings(), encoder, progress=False)
    expected = [alone.understand(text) for text in texts]
    together = Matcher.load(make_settings(), encoder, progress=False)
    assert together.understand_many(texts) == expected
    assert together.understand_many(texts) == expected  # now from the message cache

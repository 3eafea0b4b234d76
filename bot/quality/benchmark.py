"""`supportbot bench`: latency and throughput of the whole engine, and vector search at scale."""

from __future__ import annotations

import asyncio
import random
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from bot.adapters.base import Channel, DeliveryTarget
from bot.app import SupportBot
from bot.config import Settings
from bot.content.intents import IntentSet
from bot.content.knowledge import KBEntry, KnowledgeBase
from bot.messages import IncomingMessage, OutgoingReply
from bot.nlu.encoders import Encoder, configured_encoder
from bot.nlu.index import (
    SemanticIndex,
    SentenceCache,
    build_faiss_index,
    cache_key,
    describe_index,
    search_index,
)
from bot.nlu.matcher import Matcher, index_items, load_thresholds, train_head
from bot.nlu.threads import limit_blas_threads, single_threaded_worker

_WORDS = (
    "order delivery parcel payment card refund return size account password invoice discount code courier "
    "store price shipping address cancel change track warranty gift loyalty points email phone stock colour "
    "jacket shoes dress lamp sofa voucher receipt balance bonus branch locker express weekend holiday"
).split()


class _NullChannel(Channel):
    """Accepts every reply instantly, so the figures measure supportbot, not a messenger."""

    name = "bench"

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        return None


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def synthetic_kb(entries: int, seed: int = 7) -> KnowledgeBase:
    """Build `entries` entries of 5 questions each from a small shop vocabulary (deterministic)."""
    rng = random.Random(seed)
    kb = KnowledgeBase()
    for i in range(entries):
        topic = rng.sample(_WORDS, 3)
        questions = [
            f"{rng.choice(['how', 'when', 'where', 'why', 'can i'])} {' '.join(rng.sample(topic, 3))} {i}"
            for _ in range(5)
        ]
        kb.entries.append(KBEntry(f"entry_{i}", {"en": questions}, {"en": f"Answer {i}."}))
    return kb


def bench_search_only(entries: int, dim: int = 384, queries: int = 1000) -> dict[str, Any]:
    """Time the vector search alone over `entries` random unit vectors, with the index the bot would use.

    Queries are stored vectors plus noise (cosine ~0.71 to their source; the runner-up is ~0.28, so the
    source is the exact nearest neighbour). `recall_at_5` is the share of queries whose exact nearest
    neighbour is among the index's top 5, `recall_at_1` the share where it comes first (both 1.0 by
    construction for the exact index). Exact ranks 2-5 are near-ties between unrelated random vectors,
    so matching them is not measured. `index_build_s` includes training a large index.
    """
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((entries, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    probe = vectors[rng.choice(entries, queries)] + 0.05 * rng.standard_normal(
        (queries, dim), dtype=np.float32
    )
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    started = time.perf_counter()
    index = build_faiss_index(vectors)
    build = time.perf_counter() - started
    timings = []
    found = np.zeros((queries, 5), dtype=np.int64)
    for i, row in enumerate(probe):
        started = time.perf_counter()
        _, ids = search_index(index, row[None, :], 5)
        timings.append((time.perf_counter() - started) * 1000)
        found[i] = ids[0]
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    _, truth = exact.search(probe, 1)
    recall = float(np.mean([truth[i, 0] in found[i] for i in range(queries)]))
    return {
        "entries": entries,
        "dim": dim,
        "search_ms_p50": _percentile(timings, 50),
        "search_ms_p99": _percentile(timings, 99),
        "recall_at_5": round(recall, 4),
        "recall_at_1": round(float(np.mean(found[:, 0] == truth[:, 0])), 4),
        "index_build_s": round(build, 3),
        "index": describe_index(index),
        "rss_mb": _rss_mb(),
    }


def build_matcher(
    settings: Settings, encoder: Encoder, entries: int, progress: bool, cache_dir: Path | None = None
) -> tuple[Matcher, float, int]:
    """Return a matcher over a synthetic KB of `entries` entries, its build time in seconds, and how many
    of its sentences had to be embedded (the others came from the sentence cache in `cache_dir`).

    Caching the KB's embeddings across runs is what the bot itself does at every start; the messages the
    bench sends are never cached across runs (each run starts with an empty message cache).
    """
    kb = synthetic_kb(entries)
    intents = IntentSet()
    items = index_items(kb, intents)
    fresh = len(items)
    if cache_dir is not None:
        cache = SentenceCache(cache_dir, encoder)
        fresh = sum(1 for text in {item.text for item in items} if text not in cache)
    started = time.perf_counter()
    index = SemanticIndex.build(encoder, items, cache_dir, progress=progress)
    head = train_head(index, cache_dir, cache_key(encoder, items)) if settings.policy.classifier else None
    elapsed = time.perf_counter() - started
    matcher = Matcher(settings, encoder, kb, intents, index, load_thresholds(settings, encoder), head)
    return matcher, elapsed, fresh


def bench_messages(matcher: Matcher, messages: int) -> list[str]:
    """The messages the bench sends: KB questions with their words shuffled (deterministic)."""
    questions = [q for e in matcher.kb.entries for q in e.questions["en"]]
    rng = random.Random(3)
    # paraphrase-like variety: shuffle words so most messages miss the exact-text cache
    return [
        " ".join(rng.sample(q.split(), len(q.split())))
        for q in (rng.choice(questions) for _ in range(messages))
    ]


def model_alone(encoder: Encoder, texts: Sequence[str], workers: int) -> dict[str, Any]:
    """Embed `texts` one at a time on `workers` threads, as the engine's workers do, with nothing around.

    The model's own ceiling on this machine at this moment, measured in the same run as the engine, so
    the two figures share the machine's mood (other processes on a shared host move both).
    """
    with limit_blas_threads(), ThreadPoolExecutor(workers, initializer=single_threaded_worker) as pool:
        list(pool.map(lambda text: encoder.encode([text]), texts[:workers]))  # warm every worker's handle
        started, cpu_started = time.perf_counter(), time.process_time()
        list(pool.map(lambda text: encoder.encode([text]), texts))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "model_sentences_per_s": round(len(texts) / elapsed, 1),
        "model_cpu_ms_per_sentence": round(cpu * 1000 / len(texts), 2),
        "model_cores_used": round(cpu / elapsed, 2),  # as cores_used: below the workers, others took the rest
    }


def engine_share(engine: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """What the engine adds around the model: CPU per message beyond the model's, and its share of the CPU."""
    around = max(0.0, engine["cpu_ms_per_msg"] - model["model_cpu_ms_per_sentence"])
    return {
        "engine_cpu_ms_per_msg": round(around, 2),
        "engine_share_of_cpu": round(around / engine["cpu_ms_per_msg"], 3)
        if engine["cpu_ms_per_msg"]
        else 0.0,
        "end_to_end_vs_model_alone": round(engine["msgs_per_s"] / model["model_sentences_per_s"], 3),
    }


async def _engine_run(
    settings: Settings, matcher: Matcher, texts: Sequence[str], concurrency: int, progress: bool
) -> dict[str, Any]:
    bot = SupportBot(settings, channels=[_NullChannel()], encoder=matcher.encoder)
    await bot.start(progress=False)
    bot._matcher = matcher  # the synthetic KB, not the configured one
    messages = len(texts)
    run = time.time_ns()

    async def send(customer: str, number: int, text: str) -> float:
        message = IncomingMessage(
            channel="bench",
            chat_id=customer,
            customer_id=customer,
            text=text,
            platform_message_id=f"{number}",
        )
        started = time.perf_counter()
        await bot.receive(message)
        return (time.perf_counter() - started) * 1000

    try:
        sequential = [
            await send(f"{run}-seq", i, text)
            for i, text in enumerate(
                tqdm(texts[:200], desc="one at a time", file=sys.stderr, disable=not progress)
            )
        ]
        matcher.forget_messages()  # the concurrent phase resends the first 200: they must miss the cache too
        bar = tqdm(total=messages, desc=f"{concurrency} conversations", file=sys.stderr, disable=not progress)

        async def conversation(index: int) -> None:
            for number, text in enumerate(texts[index::concurrency]):
                await send(f"{run}-{index}", number, text)
                bar.update(1)

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(conversation(i) for i in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        bar.close()
    finally:
        await bot.close()
    return {
        "latency_p50_ms": _percentile(sequential, 50),
        "latency_p99_ms": _percentile(sequential, 99),
        "msgs_per_s": round(messages / elapsed, 1),
        # CPU of this process (all threads) per message in the concurrent phase, and how many cores it
        # got: fewer than the machine has while CPU-bound means other processes took the rest.
        "cpu_ms_per_msg": round(cpu * 1000 / messages, 2),
        "cores_used": round(cpu / elapsed, 2),
    }


def run_bench(
    settings: Settings, entries: int, messages: int, concurrency: int, progress: bool = True
) -> dict[str, Any]:
    """Build a synthetic KB, push messages through the whole engine (storage included) and time it."""
    encoder = configured_encoder(settings.embedding)
    cache_dir = settings.resolve(settings.embedding.cache_dir) / "bench"
    matcher, build_seconds, embedded = build_matcher(settings, encoder, entries, progress, cache_dir)
    probe = encoder.encode(["where is my parcel"])
    search = []
    with limit_blas_threads():  # as in the service
        for _ in range(200):
            started = time.perf_counter()
            matcher.rank(probe)  # the KB scored for one embedded message (exact, or the index's search)
            search.append((time.perf_counter() - started) * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        if settings.database_url.startswith("sqlite"):
            settings = settings.model_copy(deep=True)
            settings.database.url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        texts = bench_messages(matcher, messages)
        engine = asyncio.run(_engine_run(settings, matcher, texts, concurrency, progress))
    model = model_alone(encoder, texts, max(1, settings.embedding.workers))
    return {
        "model": encoder.model_id,
        "entries": entries,
        "messages": messages,
        "concurrency": concurrency,
        **engine,
        **model,  # the same messages through the model alone, in the same run
        **engine_share(engine, model),
        "search_ms_p50": _percentile(search, 50),
        "index_build_s": round(build_seconds, 2),
        "index_sentences_embedded": embedded,  # 0: every KB sentence came from the cache of an earlier run
        "rss_mb": _rss_mb(),
        "database": settings.database_url.split("://")[0],
    }

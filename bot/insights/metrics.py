"""Prometheus metrics: the families supportbot records and the one-line calls that record them.

Counters and histograms are recorded where things happen (the engine, the outbox, the spool, the
desk...); what the database knows (queue, agents, backlogs) is read when Prometheus scrapes
(bot/web/metrics.py) and handed to `render` as gauges. Every recorded family has labels, so no value
exists before the first record: `configure` (called at start-up with the settings) can still switch
prometheus_client to multi-process mode, where each process writes its values to files in
`metrics.multiprocess_dir` and a scrape in any process sums them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# seconds; a model call on a CPU takes tens of milliseconds, a stuck one runs past the understanding timeout
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # where prometheus_client's multi-process values live


class _Families:
    """The recorded families, in a registry of their own (the library's global one is left alone)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"supportbot_{name}", doc, labels, registry=self.registry)

        def histogram(name: str, doc: str, *labels: str) -> Histogram:
            return Histogram(
                f"supportbot_{name}", doc, labels, registry=self.registry, buckets=_LATENCY_BUCKETS
            )

        self.messages_in = counter("messages_in", "Customer messages received (redeliveries not)", "channel")
        self.messages_out = counter("messages_out", "Messages sent to customers", "channel")
        self.decisions = counter("bot_decisions", "The bot's decisions on customer messages", "kind")
        self.model_latency = histogram("model_latency_seconds", "One model call (a batch)", "model")
        self.handoffs = counter("handoffs", "Conversations queued for a person", "reason")
        self.send_failures = counter(
            "outbox_send_failures", "Failed sends (outcome: retry, or gave_up)", "channel", "outcome"
        )
        self.spool_failures = counter(
            "spool_failures", "Failed processing of a spooled webhook (retry, gave_up)", "channel", "outcome"
        )
        self.provider_latency = histogram(
            "context_provider_latency_seconds", "One context provider call", "provider"
        )
        self.provider_errors = counter("context_provider_errors", "Failed context provider calls", "provider")
        self.action_latency = histogram("action_call_latency_seconds", "One custom action call", "action")
        self.action_errors = counter("action_call_errors", "Failed custom action calls", "action")
        self.sla_breaches = counter(
            "sla_breaches", "Conversations past handoff.sla_first_response without an answer", "state"
        )
        self.flags = counter("code_red_flags", "Code Red flags raised, by signal", "signal")
        self.http_latency = histogram(
            "http_request_duration_seconds", "HTTP requests, by route template", "method", "route", "status"
        )


_families: _Families | None = None


def _get() -> _Families:
    global _families
    if _families is None:
        _families = _Families()
    return _families


def configure(multiprocess_dir: Path | None) -> None:
    """Record in this process only, or (with a folder) into files every process's scrape sums.

    Called at start-up with `metrics.multiprocess_dir`; prometheus_client reads the folder from the
    PROMETHEUS_MULTIPROC_DIR variable, so it is set here, from the settings, and nowhere else.
    """
    global _families
    wanted = str(multiprocess_dir) if multiprocess_dir is not None else None
    if os.environ.get(_MULTIPROC_ENV) == wanted and _families is not None:
        return
    if wanted is None:
        os.environ.pop(_MULTIPROC_ENV, None)
    else:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        os.environ[_MULTIPROC_ENV] = wanted
    values.ValueClass = values.get_value_class()
    _families = None  # rebuilt on the next record, with the value class of this mode


def multiprocess_dir() -> Path | None:
    """The folder every process writes its values to (None: this process only)."""
    folder = os.environ.get(_MULTIPROC_ENV)
    return Path(folder) if folder else None


# --- the one-line calls at the seams ------------------------------------------------------------


def message_in(channel: str) -> None:
    _get().messages_in.labels(channel).inc()


def message_out(channel: str) -> None:
    _get().messages_out.labels(channel).inc()


def send_failed(channel: str, gave_up: bool) -> None:
    _get().send_failures.labels(channel, "gave_up" if gave_up else "retry").inc()


def decision(kind: str) -> None:
    _get().decisions.labels(kind).inc()


def model_call(model: str, seconds: float) -> None:
    _get().model_latency.labels(model).observe(seconds)


def handoff(reason: str) -> None:
    _get().handoffs.labels(reason).inc()


def spool_failed(channel: str, gave_up: bool) -> None:
    _get().spool_failures.labels(channel, "gave_up" if gave_up else "retry").inc()


def provider_call(provider: str, seconds: float, ok: bool) -> None:
    families = _get()
    families.provider_latency.labels(provider).observe(seconds)
    if not ok:
        families.provider_errors.labels(provider).inc()


@contextmanager
def action_call(action: str) -> Iterator[None]:
    """Time one custom action call; an exception out of it counts as an error (and goes on)."""
    started = time.perf_counter()
    families = _get()
    try:
        yield
    except BaseException:
        families.action_errors.labels(action).inc()
        raise
    finally:
        families.action_latency.labels(action).observe(time.perf_counter() - started)


def sla_breach(state: str, count: int = 1) -> None:
    _get().sla_breaches.labels(state).inc(count)


def flag_raised(signal: str) -> None:
    _get().flags.labels(signal).inc()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    _get().http_latency.labels(method, route, str(status)).observe(seconds)


# --- the scrape ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gauge:
    """A value read at scrape time (from the database, or this process), with its labels."""

    name: str
    doc: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class _Gauges(Collector):
    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self.gauges = list(gauges)

    def collect(self) -> Iterable[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for gauge in self.gauges:
            names = [key for key, _ in gauge.labels]
            family = families.setdefault(
                gauge.name, GaugeMetricFamily(f"supportbot_{gauge.name}", gauge.doc, labels=names)
            )
            family.add_metric([value for _, value in gauge.labels], gauge.value)
        return list(families.values())


class _Recorded(Collector):
    """This process's recorded families (single-process mode)."""

    def collect(self) -> Iterable[Metric]:
        return _get().registry.collect()


def render(gauges: Iterable[Gauge]) -> bytes:
    """The Prometheus text format: the recorded families (every process's in multi-process mode) and `gauges`."""
    registry = CollectorRegistry(auto_describe=False)
    folder = multiprocess_dir()
    if folder is not None:
        MultiProcessCollector(registry, path=str(folder))
    else:
        registry.register(_Recorded())
    registry.register(_Gauges(gauges))
    return generate_latest(registry)

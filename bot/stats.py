"""What the bot counts, as Prometheus metrics (``prometheus_client``), behind a small named API.

Code counts with ``stats.incr("taps.ok")``; :data:`NAMED` maps each name onto a metric
and label. A name it does not know is still counted, as ``tapbook_events_total{name=...}``,
so a new counter never gets lost; give it a line in :data:`NAMED` to make it a metric of
its own. Incrementing is in memory (or, under gunicorn, in a per-process mmap file): no
I/O on the request path. :mod:`bot.metrics` serves them at ``GET /metrics``.

Each app has its own registry, so tests that build many apps count apart. ``get`` and
``snapshot`` read this process's values (what tests and the chat tool see).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

#: Every outcome a webhook can have; all are exported from the start, at zero.
OUTCOMES = ("ok", "forged", "malformed", "duplicate", "stale", "redis_error", "busy", "error")
BOOKING_CHANGES = ("created", "cancelled", "rescheduled")


@dataclass(frozen=True)
class Named:
    """``prefix`` + value → ``metric{label=value}``; with no label, the name maps exactly."""

    metric: str
    label: str = ""


#: Counter names the code uses → metrics. ``taps.ok`` → ``tapbook_webhooks_total{outcome="ok"}``.
NAMED: dict[str, Named] = {
    "taps.": Named("webhooks", "outcome"),
    "bookings.": Named("bookings", "change"),
    "outbox.": Named("outbox_messages", "result"),
    "conflicts": Named("commit_conflicts"),
    "migrations": Named("session_migrations"),
    "holds.expired": Named("holds_expired"),
}

_HELP = {
    "webhooks": "Webhook requests by outcome.",
    "bookings": "Bookings created, cancelled and rescheduled.",
    "outbox_messages": "Outgoing messages by result.",
    "commit_conflicts": "Taps replayed because another tap of the same phone committed first.",
    "session_migrations": "Stored sessions upgraded to the current layout.",
    "holds_expired": "Lapsed holds purged by the booking scripts.",
    "events": "Counters without a metric of their own, by name.",
}

#: seconds; a tap takes a few milliseconds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROUND_TRIP_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8)


class Stats:
    """Named counters and the tap histograms of one app, in their own registry."""

    def __init__(self, namespace: str = "tapbook") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.namespace = namespace
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self.probes: list[Probe] = []
        self._counters: dict[str, Counter] = {}
        for named in NAMED.values():
            self._counters[named.metric] = self._counter(named.metric, (named.label,) if named.label else ())
        self._counters["events"] = self._counter("events", ("name",))
        for outcome in OUTCOMES:
            self._counters["webhooks"].labels(outcome)
        for change in BOOKING_CHANGES:
            self._counters["bookings"].labels(change)
        self.handler_seconds = Histogram(
            "handler_duration_seconds",
            "Time to answer a webhook, by the handler that answered it.",
            ("handler",),
            namespace=namespace,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.round_trips = Histogram(
            "webhook_redis_round_trips",
            "Redis round trips per answered webhook.",
            namespace=namespace,
            buckets=ROUND_TRIP_BUCKETS,
            registry=self.registry,
        )

    def _counter(self, metric: str, labels: tuple[str, ...]) -> Counter:
        return Counter(metric, _HELP[metric], labels, namespace=self.namespace, registry=self.registry)

    @staticmethod
    def _resolve(name: str) -> tuple[str, dict[str, str]]:
        """The metric counting ``name`` and its labels."""
        named = NAMED.get(name)
        if named and not named.label:
            return named.metric, {}
        prefix, _, rest = name.partition(".")
        named = NAMED.get(prefix + ".")
        if named and rest:
            return named.metric, {named.label: rest}
        return "events", {"name": name}

    def incr(self, name: str, amount: int = 1) -> None:
        metric, labels = self._resolve(name)
        counter = self._counters[metric]
        (counter.labels(**labels) if labels else counter).inc(amount)
        if name not in self._seen:
            with self._lock:
                self._seen.add(name)

    def observe_tap(self, handler: str, seconds: float, round_trips: int) -> None:
        """One answered webhook: its latency under the handler's name, and its Redis round trips."""
        self.handler_seconds.labels(handler or "none").observe(seconds)
        self.round_trips.observe(round_trips)

    def get(self, name: str) -> int:
        """This process's count of ``name`` (0 if never counted)."""
        metric, labels = self._resolve(name)
        return int(self.registry.get_sample_value(f"{self.namespace}_{metric}_total", labels) or 0)

    def snapshot(self) -> dict[str, int]:
        """Every name counted so far in this process, with its count."""
        with self._lock:
            names = sorted(self._seen)
        return {name: self.get(name) for name in names}

    def add_probe(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time, e.g. ``add_probe("outbox_depth", "...", lambda: r.llen(key))``.

        For values kept in Redis (one cheap read per scrape, never a SCAN): every worker
        sees the same value, so this is right under gunicorn without a live-gauge file.
        """
        probe = Probe(f"{self.namespace}_{name}", documentation, read)
        self.probes.append(probe)
        self.registry.register(probe)


class Probe:
    """A Prometheus collector yielding one gauge from ``read()``; a failing read is skipped."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self.name = name
        self.documentation = documentation
        self.read = read

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            value = float(self.read())
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because one probe did
            log.warning("metrics probe %s failed: %s: %s", self.name, type(exc).__name__, exc)
            return
        yield GaugeMetricFamily(self.name, self.documentation, value=value)

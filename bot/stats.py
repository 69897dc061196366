"""What the bot counts, as Prometheus metrics (``prometheus_client``), behind a small named API.

Code counts with ``stats.incr("taps.ok")``; :data:`NAMED` maps each name onto a metric
and label. A name it does not know is still counted, as ``tapbook_events_total{name=...}``,
so a new counter never gets lost; give it a line in :data:`NAMED` to make it a metric of
its own. Incrementing is in memory (or, under gunicorn, in a per-process mmap file): no
I/O on the request path. :mod:`bot.metrics` serves them at ``GET /metrics``.

Each app has its own registry, so tests that build many apps count apart. ``get`` and
``snapshot`` read this process's values (what tests and the chat tool see).

The outbox worker (``outbox.*``) runs apart from the web processes, often on another
machine, where no scraper looks: with :class:`SharedCounts` its counts go to one Redis
hash instead, which any web worker exports at scrape time (one ``HGETALL``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

#: Every outcome a webhook can have; all are exported from the start, at zero.
OUTCOMES = ("ok", "forged", "malformed", "duplicate", "stale", "redis_error", "busy", "error", "unrouted")
BOOKING_CHANGES = ("created", "cancelled", "rescheduled")
#: names counted in Redis when the app has SharedCounts (see the module's docstring)
SHARED_PREFIX = "outbox."


@dataclass(frozen=True)
class Named:
    """``prefix`` + value → ``metric{label=value}``; with no label, the name maps exactly.
    ``per_business``: the metric also carries a ``business`` label (the business id, or ``none``
    for requests no business was found for)."""

    metric: str
    label: str = ""
    per_business: bool = False


#: Counter names the code uses → metrics. ``taps.ok`` → ``tapbook_webhooks_total{outcome="ok",business="…"}``.
NAMED: dict[str, Named] = {
    "taps.": Named("webhooks", "outcome", per_business=True),
    "bookings.": Named("bookings", "change", per_business=True),
    "outbox.": Named("outbox_messages", "result"),
    "status.": Named("delivery_status_callbacks", "status"),
    "conflicts": Named("commit_conflicts", per_business=True),
    "refusals": Named("write_refusals", per_business=True),
    "migrations": Named("session_migrations", per_business=True),
    "holds.expired": Named("holds_expired", per_business=True),
    "consent.": Named("consent_changes", "change", per_business=True),
}
#: the ``business`` label of what no business was found for (a forged request, an unknown number)
NO_BUSINESS = "none"

_HELP = {
    "webhooks": "Webhook requests by outcome.",
    "bookings": "Bookings created, cancelled and rescheduled.",
    "outbox_messages": (
        "Outgoing messages by the worker's result (sent, retry, failed, undeliverable, uncertain, found, resent,"
        " lookup, lookup_failed) and by what callbacks reported after (requeued, failed_after_accept)."
    ),
    "delivery_status_callbacks": "Twilio status callbacks by status (stale: arrived after a later one).",
    "commit_conflicts": "Taps replayed because another tap of the same phone committed first.",
    "write_refusals": "Taps replayed because a hold, booking or cancel no longer had the outcome announced.",
    "session_migrations": "Release-1 conversations moved to this release's keys by a tap.",
    "holds_expired": "Lapsed holds purged by the booking scripts.",
    "consent_changes": "Customers who wrote STOP (out) or START (in): business-initiated messages off or on.",
    "events": "Counters without a metric of their own, by name.",
}

#: seconds; a tap takes a few milliseconds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROUND_TRIP_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8)


class Stats:
    """Named counters and the tap histograms of one app, in their own registry."""

    def __init__(self, namespace: str = "tapbook", shared: SharedCounts | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.namespace = namespace
        self.shared = shared
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        #: collectors read at scrape time (probes, shared counts): also served in multiprocess mode
        self.collectors: list[Probe | SharedCollector | ReminderCollector] = []
        self._counters: dict[str, Counter] = {}
        self._per_business: set[str] = set()
        for prefix, named in NAMED.items():
            if shared and prefix == SHARED_PREFIX:
                self._add(SharedCollector(shared, f"{namespace}_{named.metric}", named.label, _HELP[named.metric]))
                continue
            labels = ((named.label,) if named.label else ()) + (("business",) if named.per_business else ())
            self._counters[named.metric] = self._counter(named.metric, labels)
            if named.per_business:
                self._per_business.add(named.metric)
        self._counters["events"] = self._counter("events", ("name",))
        self.add_business(NO_BUSINESS)
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

    def add_business(self, business: str) -> None:
        """Export the tap and booking counters of ``business`` from the start, at zero."""
        for outcome in OUTCOMES:
            self._counters["webhooks"].labels(outcome, business)
        for change in BOOKING_CHANGES:
            self._counters["bookings"].labels(change, business)
        for metric in ("commit_conflicts", "write_refusals", "session_migrations", "holds_expired"):
            self._counters[metric].labels(business)
        for change in ("out", "in"):
            self._counters["consent_changes"].labels(change, business)

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

    def incr(self, name: str, amount: int = 1, *, business: str | None = None) -> None:
        if name not in self._seen:
            with self._lock:
                self._seen.add(name)
        if self.shared and name.startswith(SHARED_PREFIX):
            self.shared.incr(name, amount)
            return
        metric, labels = self._resolve(name)
        if metric in self._per_business:
            labels["business"] = business or NO_BUSINESS
        counter = self._counters[metric]
        (counter.labels(**labels) if labels else counter).inc(amount)

    def observe_tap(self, handler: str, seconds: float, round_trips: int) -> None:
        """One answered webhook: its latency under the handler's name, and its Redis round trips."""
        self.handler_seconds.labels(handler or "none").observe(seconds)
        self.round_trips.observe(round_trips)

    def get(self, name: str, business: str | None = None) -> int:
        """This process's count of ``name`` (0 if never counted), for ``business`` or summed over all;
        shared names: everyone's."""
        if self.shared and name.startswith(SHARED_PREFIX):
            return self.shared.get(name)
        metric, labels = self._resolve(name)
        if business is not None:
            labels["business"] = business
        sample = f"{self.namespace}_{metric}_total"
        total = 0.0
        for family in self._counters[metric].collect():
            for s in family.samples:
                if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return int(total)

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
        self._add(Probe(f"{self.namespace}_{name}", documentation, read))

    def add_collector(self, collector: ReminderCollector) -> None:
        """A collector reading Redis at scrape time (exported by every web worker alike)."""
        self._add(collector)

    def _add(self, collector: Probe | SharedCollector | ReminderCollector) -> None:
        self.collectors.append(collector)
        self.registry.register(collector)


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


class ReminderCollector:
    """Each business's reminders, read from Redis at scrape time (one pipelined round trip):
    ``tapbook_reminders_total{business, result}`` (queued, sent, failed, revoked, opted_out,
    not_approved, confirmed: counted by the scripts that do them) and
    ``tapbook_reminders_scheduled{business}`` (waiting to be due)."""

    RESULTS = ("queued", "sent", "failed", "revoked", "opted_out", "not_approved", "late", "confirmed")

    def __init__(self, client: redis.Redis, businesses: dict[str, tuple[str, str]], namespace: str) -> None:
        #: business id → (its counts hash, its due reminders zset)
        self.client = client
        self.businesses = businesses
        self.namespace = namespace

    def describe(self) -> list[CounterMetricFamily | GaugeMetricFamily]:
        return [
            CounterMetricFamily(f"{self.namespace}_reminders", "Reminders.", labels=["business", "result"]),
            GaugeMetricFamily(f"{self.namespace}_reminders_scheduled", "Not due yet.", labels=["business"]),
        ]

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        pipe = self.client.pipeline(transaction=False)
        for counts_key, due_key in self.businesses.values():
            pipe.hgetall(counts_key)
            pipe.zcard(due_key)
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: could not read the reminders: %s: %s", type(exc).__name__, exc)
            return
        total = CounterMetricFamily(f"{self.namespace}_reminders", "Reminders.", labels=["business", "result"])
        scheduled = GaugeMetricFamily(f"{self.namespace}_reminders_scheduled", "Not due yet.", labels=["business"])
        for index, business in enumerate(self.businesses):
            counts = cast(dict[str, str], replies[2 * index])
            for result in self.RESULTS:
                total.add_metric([business, result], int(counts.get(result, 0)))
            scheduled.add_metric([business], int(replies[2 * index + 1]))
        yield total
        yield scheduled


class SharedCounts:
    """Counters kept in one Redis hash (field = the name after its prefix), shared by all processes."""

    def __init__(self, client: redis.Redis, key: str, prefix: str = SHARED_PREFIX) -> None:
        self.client = client
        self.key = key
        self.prefix = prefix

    def incr(self, name: str, amount: int = 1) -> None:
        try:
            self.client.hincrby(self.key, name.removeprefix(self.prefix), amount)
        except redis.RedisError as exc:  # a lost count must not stop the work being counted
            log.warning("could not count %s in Redis: %s: %s", name, type(exc).__name__, exc)

    def get(self, name: str) -> int:
        return int(cast(str | None, self.client.hget(self.key, name.removeprefix(self.prefix))) or 0)

    def all(self) -> dict[str, int]:
        counts = cast(dict[str, str], self.client.hgetall(self.key))
        return {field: int(value) for field, value in counts.items()}


class SharedCollector:
    """Exports :class:`SharedCounts` as one labelled counter, read at scrape time."""

    def __init__(self, shared: SharedCounts, name: str, label: str, documentation: str) -> None:
        self.shared = shared
        self.name = name
        self.label = label
        self.documentation = documentation

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation, labels=[self.label])]

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            counts = self.shared.all()
        except redis.RedisError as exc:
            log.warning("metrics: could not read %s: %s: %s", self.shared.key, type(exc).__name__, exc)
            return
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in sorted(counts.items()):
            family.add_metric([value], count)
        yield family

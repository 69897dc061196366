"""Taps matched to the messages Twilio received, for ``bench/outbox.py``: latency, lost, duplicates, order.

Every reply the worker sends names its outbox entry in its ``StatusCallback`` URL
(``…&entry=<stream id>``); stream ids grow with the time a reply was queued, so a phone's
replies in entry order are its taps' replies in tap order. The i-th tap of a phone is matched
to the phone's i-th entry, and its latency is from the moment the tap was sent to the moment
the local Twilio server first received that entry. A send naming no entry (a worker without
``PUBLIC_BASE_URL``) is keyed by its content instead.

* **duplicates**: sends of an entry after its first;
* **out of order**: a phone's entries whose first arrival came after a later entry's;
* **undelivered**: taps answered 200 whose reply never arrived, split into still queued in
  the phone's outbox (the worker is behind) and missing (lost).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from bench.tapping import Tapped
from tests.twilio_server import Send


def entry_of(send: Send) -> tuple[int, ...] | str:
    """The outbox entry a send names (its stream id as numbers), or its content when it names none."""
    query = parse_qs(urlsplit(send.form.get("StatusCallback", "")).query)
    if "entry" in query:
        return tuple(int(part) for part in query["entry"][0].split("-"))
    return send.form.get("ContentSid", "") + send.form.get("ContentVariables", send.form.get("Body", ""))


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it (nan when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Figures:
    taps: int = 0
    refused: int = 0  # taps the app did not answer 200
    delivered: int = 0  # replies that reached Twilio within the bound
    latencies_ms: list[float] = field(default_factory=list)
    duplicates: int = 0
    out_of_order: int = 0
    late: int = 0  # replies that reached Twilio, but after the bound
    still_queued: int = 0
    missing: int = 0
    last_arrival: float = 0.0  # time.monotonic of the last reply within the bound (0: none)

    def latency(self) -> str:
        values = self.latencies_ms
        return (
            f"p50 {percentile(values, 0.5):.0f} ms, p95 {percentile(values, 0.95):.0f} ms, "
            f"p99 {percentile(values, 0.99):.0f} ms, max {max(values, default=math.nan):.0f} ms"
        )

    def counts(self) -> str:
        undelivered = self.late + self.still_queued + self.missing
        return (
            f"{self.taps} taps, {self.delivered} replies reached Twilio within the bound; not: {undelivered}"
            f" ({self.late} later, {self.still_queued} still queued, {self.missing} missing: lost);"
            f" duplicates {self.duplicates}, out of order {self.out_of_order}"
            + (f"; taps not answered 200: {self.refused}" if self.refused else "")
        )


def match(tapped: Iterable[Tapped], sends: Iterable[Send], queued: Callable[[str], int], until: float) -> Figures:
    """The figures of these taps (see the module docstring): replies received by ``until``
    (time.monotonic) count as delivered; ``queued(phone)``: the phone's replies still in its outbox."""
    figures = Figures()
    arrivals: dict[str, dict[tuple[int, ...] | str, float]] = {}
    for send in sorted(sends, key=lambda s: s.at):
        phone = send.to.removeprefix("whatsapp:")
        seen = arrivals.setdefault(phone, {})
        key = entry_of(send)
        if key in seen:
            figures.duplicates += 1
        else:
            seen[key] = send.at
    by_phone: dict[str, list[Tapped]] = {}
    for tap in tapped:
        figures.taps += 1
        if tap.status != 200:
            figures.refused += 1
            continue
        by_phone.setdefault(tap.phone, []).append(tap)
    for phone, taps in by_phone.items():
        seen = arrivals.get(phone, {})
        entries = [key for key in seen if isinstance(key, tuple)]
        figures.out_of_order += _out_of_order(entries)
        ordered = sorted(entries) + [key for key in seen if isinstance(key, str)]  # no entry: arrival order
        for tap, key in zip(sorted(taps, key=lambda t: t.index), ordered, strict=False):
            if seen[key] > until:
                figures.late += 1
                continue
            figures.latencies_ms.append((seen[key] - tap.sent_at) * 1000)
            figures.last_arrival = max(figures.last_arrival, seen[key])
            figures.delivered += 1
        unsent = max(0, len(taps) - len(ordered))
        if unsent:
            waiting = min(unsent, queued(phone))
            figures.still_queued += waiting
            figures.missing += unsent - waiting
    return figures


def _out_of_order(entries: list[tuple[int, ...]]) -> int:
    """Entries (in arrival order) that arrived after an entry queued later than them."""
    late, highest = 0, None
    for entry in entries:
        if highest is not None and entry < highest:
            late += 1
        else:
            highest = entry
    return late

"""Cheap in-process counters (taps by outcome, dedupe hits, migrations, Redis errors).

Incrementing is a dict update under a lock: no I/O on the request path. The operations
work exports them; until then ``snapshot()`` is what tests and the chat tool read.
"""

from __future__ import annotations

import threading
from collections import Counter


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

"""The Redis server's clock, read from Python: every host that stamps or compares outbox times
(webhooks, workers, status callbacks) agrees on one clock, whatever its own says.

The offset between this host's clock and the server's is measured with ``TIME`` (halfway through
the round trip, so off by at most half of it) and measured again every :data:`REFRESH`; reading the
clock in between costs nothing. ``TIME`` runs in a script keyed on the business's doorbell, so on a
Redis Cluster it is the clock of the master that holds the business's keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis

#: how often the offset is measured again (seconds): a host's clock stepped by NTP is caught by then
REFRESH = 10.0

_TIME = "local t = redis.call('TIME') return {t[1], t[2]}"


class RedisClock:
    """Now, on the Redis server's clock (a ``Callable[[], datetime]`` like every clock here)."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        refresh: float = REFRESH,
        local: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._time = client.register_script(_TIME)
        self.key = key
        self.refresh = refresh
        self.local = local
        self.monotonic = monotonic
        #: seconds to add to this host's clock to read the server's
        self.offset = 0.0
        self._next = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        if self.monotonic() >= self._next:
            self.sync()
        return datetime.fromtimestamp(self.local() + self.offset, UTC)

    def sync(self) -> float:
        """Measure the offset now (one round trip); the offset."""
        with self._lock:
            before = self.local()
            seconds, micros = self._time(keys=[self.key])
            after = self.local()
            self.offset = int(seconds) + int(micros) / 1e6 - (before + after) / 2
            self._next = self.monotonic() + self.refresh
            return self.offset

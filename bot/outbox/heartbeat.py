"""Outbox workers say they are alive: ``<prefix>:worker-heartbeats``, read by ``flask doctor``.

A running worker (:meth:`bot.outbox.worker.Worker.run`) writes its field every :data:`EVERY`
seconds: ``<epoch ms> <JSON {host, pid, businesses}>``, the time being Redis's own (``TIME`` in
the script), so the age a reader computes does not depend on any host's clock. The same script
drops the fields older than :data:`TTL` (workers killed without a goodbye) and sets the hash to
expire :data:`TTL` after the last beat, so a deployment whose workers all died is left with no
key at all. A worker that stops cleanly removes its field at once. One round trip, one key
(any Redis Cluster slot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import redis

#: seconds between two heartbeats of a running worker
EVERY = 5.0
#: seconds after which a worker that has not beaten its heart counts as gone
TTL = 30

_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], now .. ' ' .. ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local at = tonumber(string.match(all[i + 1], '^(%d+)'))
  if at == nil or at < now - ttl then redis.call('HDEL', KEYS[1], all[i]) end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return now
"""


@dataclass(frozen=True)
class Beat:
    """One worker's last heartbeat: ``at`` in epoch ms (Redis's clock), and what it said of itself."""

    worker: str
    at: int
    info: dict[str, Any]

    def describe(self, now_ms: int) -> str:
        """``web-1 pid 42, 3 s ago``."""
        host = self.info.get("host", "?")
        pid = self.info.get("pid", "?")
        return f"{host} pid {pid}, {max(0, now_ms - self.at) / 1000:.0f} s ago"


class Heartbeats:
    """The heartbeat hash of one deployment."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key
        self._beat = client.register_script(_BEAT)

    def beat(self, worker: str, info: dict[str, Any]) -> int:
        """Write ``worker``'s heartbeat now; Redis's time of it (epoch ms)."""
        text = json.dumps(info, sort_keys=True, separators=(",", ":"))
        return int(self._beat(keys=[self.key], args=[worker, text, TTL * 1000]))

    def stop(self, worker: str) -> None:
        """``worker`` stopped cleanly: it is gone at once, not :data:`TTL` later."""
        self.client.hdel(self.key, worker)

    def all(self) -> list[Beat]:
        """Every heartbeat recorded (fresh or not: compare ``at`` with Redis's time), newest first."""
        found = []
        for worker, value in cast(dict[str, str], self.client.hgetall(self.key)).items():
            at, _, text = str(value).partition(" ")
            try:
                info = json.loads(text) if text else {}
                found.append(Beat(str(worker), int(at), info if isinstance(info, dict) else {}))
            except ValueError:
                continue  # not one this module wrote
        return sorted(found, key=lambda beat: -beat.at)

    def alive(self, now_ms: int) -> list[Beat]:
        """The workers whose last heartbeat is at most :data:`TTL` old at ``now_ms`` (Redis's time)."""
        return [beat for beat in self.all() if now_ms - beat.at <= TTL * 1000]

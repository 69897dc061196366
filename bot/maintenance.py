"""Work over every stored session of a business, for the operator's commands.

``SCAN`` in batches (never ``KEYS``), one pipelined read per batch, so a large store is walked
without blocking Redis. Never on the request path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis

from .sessions import Session
from .tenants import Tenant

BATCH = 500


def scan_sessions(client: redis.Redis, shop: Tenant, *, batch: int = BATCH) -> Iterator[list[dict[str, str]]]:
    """Batches of every stored session of ``shop``; a key that expired meanwhile is left out."""
    keys: list[str] = []
    for key in client.scan_iter(match=shop.keys.session("*"), count=batch, _type="hash"):
        keys.append(key)
        if len(keys) >= batch:
            yield _read(client, keys)
            keys = []
    if keys:
        yield _read(client, keys)


def _read(client: redis.Redis, keys: list[str]) -> list[dict[str, str]]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return [data for data in pipe.execute() if data]


@dataclass
class SessionStats:
    total: int = 0
    steps: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)


def session_stats(client: redis.Redis, shop: Tenant, progress: Callable[[int], None] = lambda n: None) -> SessionStats:
    """Sessions by step and language (a session without one speaks the business's default)."""
    stats = SessionStats()
    for sessions in scan_sessions(client, shop):
        for data in sessions:
            session = Session(data)
            stats.total += 1
            stats.steps[session.step or "(new)"] += 1
            stats.languages[session.language or shop.default_language] += 1
        progress(len(sessions))
    return stats

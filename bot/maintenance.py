"""Work over every stored session, for the operator's commands: statistics and eager migration.

``SCAN`` in batches (never ``KEYS``), one pipelined read per batch, so a large store is
walked without blocking Redis. Never on the request path.

Eager migration is safe while the bot runs: each session is rewritten by one script only
if its ``rev`` is still the one read (the engine's optimistic check), with ``rev`` bumped,
so a tap that read the old layout meanwhile conflicts and is replayed on the new one; a
session the bot rewrote meanwhile is already current. Its expiry is kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis

from .sessions import CURRENT_VERSION, Session, migrate, stored_rev, stored_version
from .store import SessionStore

BATCH = 500

# KEYS: session.  ARGV: expected rev (``r``, or ``rev`` in older layouts), then field/value pairs.
# 1 = upgraded, 0 = changed or gone meanwhile
_UPGRADE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (redis.call('HGET', KEYS[1], 'r') or redis.call('HGET', KEYS[1], 'rev') or '') ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""


def scan_sessions(store: SessionStore, *, batch: int = BATCH) -> Iterator[list[tuple[str, dict[str, str]]]]:
    """Batches of (key, hash) of every stored session; a key that expired meanwhile is left out."""
    client = store.client
    keys: list[str] = []
    for key in client.scan_iter(match=store.session_key("*"), count=batch):
        keys.append(key)
        if len(keys) >= batch:
            yield _read(client, keys)
            keys = []
    if keys:
        yield _read(client, keys)


def _read(client: redis.Redis, keys: list[str]) -> list[tuple[str, dict[str, str]]]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return [(key, data) for key, data in zip(keys, pipe.execute(), strict=True) if data]


@dataclass
class SessionStats:
    total: int = 0
    steps: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    current: int = 0  # sessions in the current layout

    @property
    def pending(self) -> int:
        return self.total - self.current


def session_stats(
    store: SessionStore, default_language: str, progress: Callable[[int], None] = lambda n: None
) -> SessionStats:
    """Sessions by step and language (a session without one speaks ``default_language``), and by layout."""
    stats = SessionStats()
    for sessions in scan_sessions(store):
        for _, data in sessions:
            stats.total += 1
            session = Session(migrate(dict(data), default_language)[0])
            stats.steps[session.step or "(new)"] += 1
            stats.languages[session.language or default_language] += 1
            stats.current += stored_version(data) >= CURRENT_VERSION
        progress(len(sessions))
    return stats


@dataclass
class MigrationReport:
    seen: int = 0
    upgraded: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0  # the bot wrote them between our read and our write: it migrated them


def migrate_sessions(
    store: SessionStore, default_language: str, progress: Callable[[int], None] = lambda n: None
) -> MigrationReport:
    """Upgrade every session in an older layout now instead of at its next tap."""
    upgrade = store.client.register_script(_UPGRADE)
    report = MigrationReport()
    for sessions in scan_sessions(store):
        pipe = store.client.pipeline(transaction=False)
        queued = 0
        for key, data in sessions:
            report.seen += 1
            upgraded, migrated = migrate(dict(data), default_language)
            if not migrated:
                report.already_current += 1
                continue
            fields = Session(upgraded).fields()
            upgrade(keys=[key], args=[stored_rev(data), *(x for pair in fields.items() for x in pair)], client=pipe)
            queued += 1
        results = pipe.execute() if queued else []
        report.upgraded += sum(results)
        report.changed_meanwhile += queued - sum(results)
        progress(len(sessions))
    return report

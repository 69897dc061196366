"""Upgrading a running release-1 deployment in place: nothing lost, while traffic flows.

Release 1 served one business. Its conversation keys were tagged by phone
(``<prefix>:session:{+E164}``…) and its bookings lived under ``<prefix>:bk:{<business>}:…``. This
release keeps every key of a business under ``<prefix>:{<business>}:…`` (:mod:`bot.keys`).

* At start-up, :func:`detect` looks at each business once: its layout marker says it is done;
  otherwise release 1's booking index of the same business id means it is being upgraded; a
  business without either is new (this release never writes release 1's keys).
* While a business is being upgraded, every tap also reads the customer's release-1 session and
  profile (moved to the new keys by that tap's write) and release 1's keys of every booking it
  reads; every booking write first adopts the release-1 keys it touches, in the same script (same
  hash tag, so same slot: see ``adopt`` in ``bot/lua/booking.lua``).
* ``flask bookings migrate`` (:func:`migrate`) moves everything else: bookings, occupancy and
  indexes, sessions, profiles, queued outbox messages and window stamps. It walks the keyspace with
  ``SCAN``; every step is idempotent, so it can be stopped and run again, and it is safe next to
  live traffic. When a pass finds nothing left it writes the business's marker; each app process
  notices the marker on its next tap and stops reading release 1's keys.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from .errors import ConfigError
from .keys import LAYOUT_VERSION, LegacyKeys
from .legacy import from_layout3
from .lua import Scripts
from .tenants import Tenant

log = logging.getLogger(__name__)

BATCH = 500

# KEYS[1] the new session. ARGV: ttl ms, then field/value pairs. 1 = written, 0 = one exists already
_PLACE_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""
# KEYS[1] the old session. ARGV[1] its rev as read: delete it only if nobody wrote it since
_DROP_IF_SAME = """
local rev = redis.call('HGET', KEYS[1], 'r') or ''
if rev ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


def detect(client: redis.Redis, tenants: list[Tenant], prefix: str) -> None:
    """Decide, once per process, which businesses are being upgraded (see the module docstring)."""
    ids = {tenant.id for tenant in tenants}
    pipe = client.pipeline(transaction=False)
    for tenant in tenants:
        pipe.get(tenant.keys.layout)
        pipe.exists(LegacyKeys(prefix, tenant.id).bookings)
    if "main" not in ids:
        pipe.exists(LegacyKeys(prefix, "main").bookings)
    try:
        replies = pipe.execute()
    except redis.RedisError as exc:  # Redis not up yet: read release 1's keys too, to be safe
        log.warning("could not check for release-1 data (%s): reading it too until this process restarts", exc)
        for tenant in tenants:
            tenant.upgrading = True
        return
    if "main" not in ids and replies[-1]:
        main_index = LegacyKeys(prefix, "main").bookings
        raise ConfigError(
            "BOT_CATALOG",
            f"Redis holds release-1 bookings of business 'main' ({main_index}) but no catalog has "
            'id = "main": give that business its old id to keep them',
        )
    for index, tenant in enumerate(tenants):
        marker, legacy = replies[2 * index], replies[2 * index + 1]
        if marker == LAYOUT_VERSION:
            tenant.end_upgrade()
        elif legacy:
            tenant.upgrading = True
            log.warning(
                "business %s holds release-1 data: run `flask bookings migrate --business %s`", tenant.id, tenant.id
            )
        else:  # new, or upgraded: nothing of release 1 left (this release never writes its keys)
            tenant.end_upgrade()


@dataclass
class MigrationReport:
    """What a pass moved, by kind, and what it found already done."""

    moved: Counter[str] = field(default_factory=Counter)
    already: Counter[str] = field(default_factory=Counter)
    left: int = 0  # release-1 keys the pass could not move (changed meanwhile): run it again
    complete: bool = False

    def lines(self) -> list[str]:
        kinds = sorted(set(self.moved) | set(self.already))
        rows = [f"{kind}: {self.moved[kind]} moved, {self.already[kind]} already done" for kind in kinds]
        return rows or ["nothing to move"]


def _scan(client: redis.Redis, pattern: str, kind: str | None = None) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in client.scan_iter(match=pattern, count=BATCH, _type=kind):
        batch.append(key)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def migrate(
    client: redis.Redis,
    tenant: Tenant,
    scripts: Scripts,
    *,
    prefix: str,
    session_ttl_ms: int,
    progress: Callable[[int], None] = lambda n: None,
) -> MigrationReport:
    """Move release 1's data of ``tenant`` to this release's keys (see the module docstring)."""
    legacy, new = LegacyKeys(prefix, tenant.id), tenant.keys
    report = MigrationReport()
    # bookings, occupancy, indexes and hold maps: same hash tag, so one script per key
    for batch in _scan(client, legacy.pattern("bk")):
        pipe = client.pipeline(transaction=False)
        kinds = []
        for key in batch:
            target = legacy.renamed(key, new)
            if target is None:
                continue
            kinds.append(key[len(legacy.booking_base) + 1 :].partition(":")[0])
            scripts.adopt(keys=[target, key], args=[], client=pipe)
        for kind, moved in zip(kinds, pipe.execute() if kinds else [], strict=True):
            (report.moved if moved else report.already)[_KIND_NAMES.get(kind, kind)] += 1
        progress(len(batch))
    _move_sessions(client, legacy, tenant, report, session_ttl_ms, progress)
    _move_profiles(client, legacy, tenant, report, progress)
    _move_outboxes(client, legacy, tenant, report, progress)
    _move_windows(client, legacy, tenant, report, progress)
    if report.left == 0:
        pipe = client.pipeline(transaction=False)
        pipe.exists(legacy.due)
        pipe.delete(legacy.due)
        pipe.set(new.layout, LAYOUT_VERSION)
        pipe.execute()
        report.complete = True
        tenant.end_upgrade()
    return report


_KIND_NAMES = {
    "occ": "occupancy days",
    "booking": "bookings",
    "customer": "customer indexes",
    "bookings": "business index",
    "hold": "hold maps",
}


def _with_ttl(client: redis.Redis, keys: list[str], read: str) -> list[tuple[str, Any, int]]:
    """Each of ``keys`` with its value (``read``: ``get`` or ``hgetall``) and its time to live (ms), in one
    pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        getattr(pipe, read)(key)
        pipe.pttl(key)
    replies = pipe.execute()
    return [(key, replies[2 * i], int(replies[2 * i + 1] or 0)) for i, key in enumerate(keys)]


def _move_sessions(
    client: redis.Redis,
    legacy: LegacyKeys,
    tenant: Tenant,
    report: MigrationReport,
    session_ttl_ms: int,
    progress: Callable[[int], None],
) -> None:
    place, drop = client.register_script(_PLACE_SESSION), client.register_script(_DROP_IF_SAME)
    for batch in _scan(client, legacy.pattern("session"), "hash"):
        for key, data, ttl in _with_ttl(client, batch, "hgetall"):
            if not data:
                continue
            converted = from_layout3(data)
            phone = legacy.phone_in(key)
            if converted:
                pairs = [x for pair in converted.items() for x in pair]
                ttl_ms = ttl if ttl and ttl > 0 else session_ttl_ms
                placed = place(keys=[tenant.keys.session(phone)], args=[ttl_ms, *pairs])
                (report.moved if placed else report.already)["sessions"] += 1
            else:
                report.already["sessions of older layouts (dropped)"] += 1
            if not drop(keys=[key], args=[data.get("r", "")]):
                report.left += 1  # written meanwhile (a release-1 process still running?)
        progress(len(batch))


def _move_profiles(
    client: redis.Redis, legacy: LegacyKeys, tenant: Tenant, report: MigrationReport, progress: Callable[[int], None]
) -> None:
    for batch in _scan(client, legacy.pattern("profile"), "hash"):
        pipe = client.pipeline(transaction=False)
        for key, profile, ttl in _with_ttl(client, batch, "hgetall"):
            language = profile.get("language")
            new = tenant.keys.profile(legacy.phone_in(key))
            if language:
                pipe.hsetnx(new, "language", language)
                if ttl and ttl > 0:
                    pipe.pexpire(new, ttl)
            pipe.delete(key)
            report.moved["profiles"] += 1
        pipe.execute()
        progress(len(batch))


def _move_outboxes(
    client: redis.Redis, legacy: LegacyKeys, tenant: Tenant, report: MigrationReport, progress: Callable[[int], None]
) -> None:
    """Unsent messages of release 1, appended in order to the customer's new outbox (each carries the
    id it had, so a second pass copies nothing twice), then the old stream is deleted."""
    for batch in _scan(client, legacy.pattern("outbox"), "stream"):
        for key in batch:
            phone = legacy.phone_in(key)
            stream = tenant.keys.outbox(phone)
            copied = {fields.get("was") for _, fields in _entries(client, stream)}
            entries = _entries(client, key)
            for entry_id, fields in entries:
                if entry_id in copied:
                    report.already["outbox messages"] += 1
                    continue
                message = _with_sender(fields.get("m", ""), tenant)
                client.xadd(stream, {"m": message, "was": entry_id})
                report.moved["outbox messages"] += 1
            if entries:
                client.zadd(tenant.keys.due, {phone: 0}, nx=True)
            client.delete(key)
        progress(len(batch))


def _entries(client: redis.Redis, stream: str) -> list[tuple[str, dict[str, str]]]:
    return cast(list[tuple[str, dict[str, str]]], client.xrange(stream))


def _with_sender(raw: str, tenant: Tenant) -> str:
    try:
        message: Any = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(message, dict) and "from" not in message and tenant.sender:
        message["from"] = tenant.sender
    return json.dumps(message, ensure_ascii=False)


def _move_windows(
    client: redis.Redis, legacy: LegacyKeys, tenant: Tenant, report: MigrationReport, progress: Callable[[int], None]
) -> None:
    for batch in _scan(client, legacy.pattern("seen"), "string"):
        for key, stamp, ttl in _with_ttl(client, batch, "get"):
            new = tenant.keys.window(legacy.phone_in(key))
            current = client.get(new)
            if stamp and (current is None or int(current) < int(stamp)):
                client.set(new, stamp, px=ttl if ttl and ttl > 0 else None)
                report.moved["window stamps"] += 1
            else:
                report.already["window stamps"] += 1
            client.delete(key)
        progress(len(batch))

"""One business's bookings in Redis: the reads listings need, and requests encoded for the scripts.

Keys come from :class:`bot.keys.BusinessKeys` (all under the business's hash tag). Writes happen
only in scripts: the tap script (``bot/lua/tap.lua``), which applies a customer's request in the
same atomic step as their session, and ``bot/lua/write.lua`` for the owner's writes. Both re-check
every rule (``bot/lua/booking.lua``).

**While upgrading** from release 1 (``legacy`` set, see :mod:`bot.upgrade`), every read also reads
the release-1 key and merges, and every write first adopts the release-1 keys it touches (renames
or merges them into this release's keys, in the same script: same hash tag, same slot), so a
booking made before the upgrade keeps its place whether or not ``bookings migrate`` has reached it.
Read order matters: the old key is read before the new one, so a key adopted in between is seen
twice (merged by entry id), never missed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, cast

import redis

from ..keys import BusinessKeys, LegacyKeys
from ..lua import Scripts
from .occupancy import DayEntries, Occupancy, parse_day
from .requests import (
    BookRequest,
    CancelRequest,
    ConfirmRequest,
    HoldRequest,
    MarkRequest,
    Notice,
    ReleaseRequest,
    Request,
)


@dataclass(frozen=True)
class OccupancyRead:
    """The entries of ``days`` of ``resource`` (callers include the neighbours they need)."""

    resource: str
    days: tuple[date, ...]


@dataclass(frozen=True)
class BookingRead:
    ref: str


@dataclass(frozen=True)
class UpcomingRead:
    """A customer's active bookings starting after ``after`` (epoch seconds), soonest first."""

    phone: str
    after: int
    limit: int = 10


Read = OccupancyRead | BookingRead | UpcomingRead


@dataclass(frozen=True)
class Written:
    """What :meth:`BookingStore.write` did: the outcome, its value (a REF, an expiry), lapsed holds
    deleted on the way, and whether the requests were applied."""

    status: str
    value: str = ""
    expired: int = field(default=0, compare=False)
    applied: bool = field(default=False, compare=False)


@dataclass
class KeyList:
    """The KEYS of one script call, each once; operations name them by (1-based) index."""

    keys: list[str]
    #: (new, old) index pairs: release-1 keys the script adopts before anything else
    adopt: list[tuple[int, int]] = field(default_factory=list)

    def add(self, key: str) -> int:
        try:
            return self.keys.index(key) + 1
        except ValueError:
            self.keys.append(key)
            return len(self.keys)


class BookingStore:
    """The bookings of one business (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: BusinessKeys,
        scripts: Scripts,
        legacy: LegacyKeys | None = None,
        *,
        bell: str = "",
    ):
        self.client = client
        #: the channel that wakes the outbox workers when a write queues a notice
        self.bell = bell
        self.keys = keys
        self.scripts = scripts
        #: release 1's keys of this business while it is being upgraded; None once it is
        self.legacy = legacy

    # -- reads, queued on a pipeline (the tap's load) or on their own -------------------------
    def queue(self, pipe: Any, read: Read) -> int:
        """Queue the commands of ``read``; how many replies they give."""
        legacy = self.legacy
        if isinstance(read, OccupancyRead):
            pipe.time()
            for day in read.days:
                if legacy:
                    pipe.hgetall(legacy.occupancy(read.resource, day))
                pipe.hgetall(self.keys.occupancy(read.resource, day))
            return 1 + len(read.days) * (2 if legacy else 1)
        if isinstance(read, BookingRead):
            if legacy:
                pipe.hgetall(legacy.booking(read.ref))
            pipe.hgetall(self.keys.booking(read.ref))
            return 2 if legacy else 1
        index = [self.keys.customer(read.phone)] + ([legacy.customer(read.phone)] if legacy else [])
        args = [read.after, read.limit, self.keys.booking_prefix, legacy.booking_base + ":booking:" if legacy else ""]
        self.scripts.upcoming(keys=index, args=args, client=pipe)
        return 1

    def parse(self, read: Read, replies: list[Any]) -> Any:
        """The value of ``read`` from the replies its :meth:`queue` asked for."""
        if isinstance(read, OccupancyRead):
            (seconds, micros), *hashes = replies
            step = len(hashes) // max(len(read.days), 1)
            days: dict[date, DayEntries] = {}
            for index, day in enumerate(read.days):
                merged: dict[str, str] = {}
                for entries in hashes[index * step : (index + 1) * step]:
                    merged.update(entries)  # read old first: an entry adopted in between is the same id
                days[day] = parse_day(merged)
            return Occupancy(read.resource, int(seconds) * 1000 + int(micros) // 1000, days)
        if isinstance(read, BookingRead):
            return next((data for data in reversed(replies) if data), {})
        return [dict(zip(flat[::2], flat[1::2], strict=True)) for flat in replies[0]]

    def read(self, *reads: Read) -> list[Any]:
        """``reads`` in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        counts = [self.queue(pipe, read) for read in reads]
        replies = pipe.execute()
        values, offset = [], 0
        for read, count in zip(reads, counts, strict=True):
            values.append(self.parse(read, replies[offset : offset + count]))
            offset += count
        return values

    def occupancy(self, resource: str, days: list[date]) -> Occupancy:
        return cast(Occupancy, self.read(OccupancyRead(resource, tuple(days)))[0])

    def booking(self, ref: str) -> dict[str, str]:
        return cast(dict[str, str], self.read(BookingRead(ref))[0])

    def upcoming(self, phone: str, after: int, limit: int = 10) -> list[dict[str, str]]:
        return cast(list[dict[str, str]], self.read(UpcomingRead(phone, after, limit))[0])

    def refs_between(self, start: int, end: int) -> list[str]:
        """REFs of every booking (any status) starting in ``[start, end)``, by start."""
        if not self.legacy:
            return cast(list[str], self.client.zrangebyscore(self.keys.bookings, start, f"({end}"))
        pipe = self.client.pipeline(transaction=False)
        for key in (self.legacy.bookings, self.keys.bookings):
            pipe.zrangebyscore(key, start, f"({end}", withscores=True)
        found = {ref: score for scored in pipe.execute() for ref, score in scored}
        return sorted(found, key=lambda ref: (found[ref], ref))

    def bookings(self, refs: list[str]) -> list[dict[str, str]]:
        """The records of ``refs``, in order, in one pipelined round trip."""
        return self.read(*(BookingRead(ref) for ref in refs)) if refs else []

    # -- writes ------------------------------------------------------------------------------
    def write(self, *requests: Request, notices: tuple[Notice, ...] = (), now: str = "") -> Written:
        """Apply ``requests`` together if each has the outcome it expects (else none), queueing
        ``notices`` with them (due at ``now``, epoch ms: the outbox's clock; '' for the server's): the
        outcome of the first, or of the one refused. The conversation's writes go with its session
        instead (:mod:`bot.store`); this is for the owner's writes."""
        keys = KeyList([self.keys.due])
        plan: dict[str, Any] = {
            "ops": [self.encode(request, keys) for request in requests],
            "notices": self.encode_notices(notices, keys),
            "due": 1,
            "now": now,
            "bell": self.bell,
            "business": self.keys.business,
        }
        plan["adopt"] = [list(p) for p in keys.adopt]
        reply = self.scripts.write(keys=keys.keys, args=[json.dumps(plan, ensure_ascii=False)])
        if reply[0] == "refused":
            return Written(str(reply[2]), str(reply[3] or ""), int(reply[4]), applied=False)
        return Written(requests[0].expect[0], str(reply[2] or ""), int(reply[1]), applied=True)

    def encode_notices(self, notices: tuple[Notice, ...] | list[Notice], keys: KeyList) -> list[dict[str, Any]]:
        """``notices`` for ``queue_notices`` (``bot/lua/booking.lua``), their streams added to ``keys``."""
        return [{"k": keys.add(self.keys.outbox(n.phone)), "phone": n.phone, "m": n.message} for n in notices]

    def cancel(self, request: CancelRequest) -> str:
        """The business cancels: ``ok``, or why not (``unknown``, ``too_late``, or the status it has)."""
        return self.write(request).status

    def encode(self, request: Request, keys: KeyList) -> dict[str, Any]:
        """``request`` as an operation of the booking scripts, its keys added to ``keys``."""
        op: dict[str, Any] = {"expect": list(request.expect)}
        if isinstance(request, HoldRequest):
            op.update(op="hold", token=request.token, a=request.start, b=request.end, capacity=request.capacity)
            op.update(expires=request.expires_ms, skip=list(request.skip), moving="")
            op["k"] = self._around(keys, request.resource, request.day)
            if request.moving:
                op["moving"] = request.moving.ref
                op["k"]["moving"] = self._booking(keys, request.moving.ref)
        elif isinstance(request, BookRequest):
            op.update(op="book", token=request.token, ref=request.ref, a=request.start, b=request.end)
            op.update(capacity=request.capacity, now=request.now, notice=request.notice, cutoff=request.cutoff)
            op.update(max_active=request.max_active, phone=request.phone, fields=request.fields, moving="")
            k = self._around(keys, request.resource, request.day)
            k["booking"] = self._booking(keys, request.ref)
            k["customer"] = self._key(keys, self.keys.customer(request.phone), "customer", request.phone)
            k["bookings"] = self._key(keys, self.keys.bookings, "bookings")
            k["from_hold"] = self._key(keys, self.keys.from_hold(request.token), "from_hold", request.token)
            k["reminders"] = keys.add(self.keys.reminders)
            op["reminders"] = [list(r) for r in request.reminders]
            if request.moving:
                op["moving"] = request.moving.ref
                k["moving"] = self._booking(keys, request.moving.ref)
                k["moving_day"] = self._day(keys, request.moving.resource, request.moving.day)
            op["k"] = k
        elif isinstance(request, CancelRequest):
            op.update(op="cancel", ref=request.ref, phone=request.phone, now=request.now, cutoff=request.cutoff)
            op["k"] = {
                "booking": self._booking(keys, request.ref),
                "day": self._day(keys, request.resource, request.day),
                "customer": self._key(keys, self.keys.customer(request.phone), "customer", request.phone),
                "reminders": keys.add(self.keys.reminders),
            }
        elif isinstance(request, ConfirmRequest):
            op.update(op="confirm", ref=request.ref, phone=request.phone, version=str(request.version), now=request.now)
            op["k"] = {"booking": self._booking(keys, request.ref), "counts": keys.add(self.keys.reminder_counts)}
        elif isinstance(request, MarkRequest):
            op.update(op="mark", ref=request.ref, attendance=request.attendance, now=request.now)
            op["k"] = {"booking": self._booking(keys, request.ref)}
        elif isinstance(request, ReleaseRequest):
            op.update(op="release", token=request.token)
            op["k"] = {"day": self._day(keys, request.resource, request.day)}
        return op

    def _key(self, keys: KeyList, key: str, kind: str, *parts: str) -> int:
        index = keys.add(key)
        if self.legacy:
            old = getattr(self.legacy, kind)
            old_key = old(*parts) if callable(old) else old
            pair = (index, keys.add(old_key))
            if pair not in keys.adopt:
                keys.adopt.append(pair)
        return index

    def _day(self, keys: KeyList, resource: str, day: date) -> int:
        index = keys.add(self.keys.occupancy(resource, day))
        if self.legacy:
            pair = (index, keys.add(self.legacy.occupancy(resource, day)))
            if pair not in keys.adopt:
                keys.adopt.append(pair)
        return index

    def _booking(self, keys: KeyList, ref: str) -> int:
        return self._key(keys, self.keys.booking(ref), "booking", ref)

    def _around(self, keys: KeyList, resource: str, day: date) -> dict[str, int]:
        return {
            "day": self._day(keys, resource, day),
            "before": self._day(keys, resource, day - timedelta(days=1)),
            "after": self._day(keys, resource, day + timedelta(days=1)),
        }

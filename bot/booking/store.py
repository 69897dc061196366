"""Bookings and holds in Redis: every rule that protects a slot is re-checked in one Lua script.

Keys, all under one hash tag per business so every script also runs on Redis Cluster::

    <prefix>:bk:{<business>}:occ:<resource>:<YYYYMMDD>   hash  entry id -> "start,end,expires_ms"
    <prefix>:bk:{<business>}:booking:<REF>               hash  the booking (never expires)
    <prefix>:bk:{<business>}:customer:<+E164>            zset  REF -> start, the phone's active bookings
    <prefix>:bk:{<business>}:bookings                    zset  REF -> start, every booking ever made
    <prefix>:bk:{<business>}:hold:<token>                string REF booked from that hold (2 days)

An occupancy entry is a hold (``expires_ms`` > 0, by the Redis clock) or a booking
(``expires_ms`` = 0). Its interval includes the service's buffers, so buffers stack.
Expired holds are ignored everywhere and deleted by whichever script next touches the
day: no clean-up job. Entries are filed under the local date of their start; a check
reads the day before and after too, for buffers and late hours that cross midnight.

Business-time rules (notice, cut-off, what counts as upcoming) use the app's clock,
passed in as ``now``; hold expiry uses only the Redis clock.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, timedelta

import redis

# Shared Lua: parse "s,e,x[,n]"; is an entry live; max concurrency of intervals inside [a, b);
# the aggregated entries of bookings ("=s,e" -> "s,e,0,n").
# `purged` counts the expired holds deleted; scripts return it after status and value.
_LIB = """
local purged = 0
local function parse(v)
  local s, e, x, n = string.match(v, '^(%d+),(%d+),(%d+),?(%d*)$')
  return tonumber(s), tonumber(e), tonumber(x), tonumber(n) or 1
end
local function redis_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- ids not to count: a hold token or a legacy booking entry entirely, "=s,e" once per mention
local function skipping(ids)
  local skip = {}
  for id in string.gmatch(ids, '%S+') do
    if string.sub(id, 1, 1) == '=' then skip[id] = (skip[id] or 0) + 1 else skip[id] = true end
  end
  return skip
end
-- live entries {start, end, weight} of the given day keys overlapping [a, b), less what skip says;
-- purges expired holds
local function overlapping(keys, a, b, now_ms, skip)
  local found = {}
  for _, key in ipairs(keys) do
    local flat = redis.call('HGETALL', key)
    for j = 1, #flat, 2 do
      local id = flat[j]
      local s, e, x, n = parse(flat[j + 1])
      if x > 0 and x <= now_ms then
        redis.call('HDEL', key, id)
        purged = purged + 1
      else
        local k = skip[id]
        if k == true then n = 0 elseif k then n = n - k end
        if n > 0 and s < b and a < e then table.insert(found, {math.max(s, a), math.min(e, b), n}) end
      end
    end
  end
  return found
end
local function max_concurrency(intervals, a)
  local best = 0
  local points = {a}
  for _, iv in ipairs(intervals) do table.insert(points, iv[1]) end
  for _, p in ipairs(points) do
    local n = 0
    for _, iv in ipairs(intervals) do
      if iv[1] <= p and p < iv[2] then n = n + iv[3] end
    end
    if n > best then best = n end
  end
  return best
end
-- bookings are counted per interval, so a day's hash stays small however many share a time
local function add_booked(key, a, b, delta)
  local field = '=' .. a .. ',' .. b
  local n = delta
  local v = redis.call('HGET', key, field)
  if v then
    local _, _, _, m = parse(v)
    n = m + delta
  end
  if n > 0 then redis.call('HSET', key, field, a .. ',' .. b .. ',0,' .. n) else redis.call('HDEL', key, field) end
end
-- give back a booking's place: its interval (field "occ"), or its own entry (bookings before "occ")
local function release_booking(day_key, booking_key, ref)
  local occ = redis.call('HGET', booking_key, 'occ')
  if occ then
    local a, b = string.match(occ, '^(%d+),(%d+)$')
    add_booked(day_key, a, b, -1)
  else
    redis.call('HDEL', day_key, ref)
  end
end
-- what counts as not taken when a booking is being moved: its own place, if it is among the entries of
-- day_key's resource (a booking recorded on another resource, before a catalog edit, frees nothing here)
local function skip_booking(skip, booking_key, ref, day_key)
  skip[ref] = true
  local b = redis.call('HMGET', booking_key, 'occ', 'resource')
  local occ, res = b[1], b[2]
  if res and string.sub(day_key, -(#res + 14)) ~= ':occ:' .. res .. ':' .. string.sub(day_key, -8) then return end
  if occ then skip['=' .. occ] = (skip['=' .. occ] or 0) + 1 end
end
"""

# KEYS: day, day-1, day+1, old hold's day, the booking being moved (or any key)
# ARGV: token, start, end, capacity, hold_ms, old token, ref of the booking being moved (or '')
_HOLD = (
    _LIB
    + """
local now_ms = redis_ms()
if ARGV[6] ~= '' then redis.call('HDEL', KEYS[4], ARGV[6]) end
local a, b = tonumber(ARGV[2]), tonumber(ARGV[3])
local skip = {[ARGV[1]] = true}
if ARGV[7] ~= '' then skip_booking(skip, KEYS[5], ARGV[7], KEYS[1]) end
local found = overlapping({KEYS[1], KEYS[2], KEYS[3]}, a, b, now_ms, skip)
if max_concurrency(found, a) >= tonumber(ARGV[4]) then return {'taken', 0, purged} end
local expires = now_ms + tonumber(ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], a .. ',' .. b .. ',' .. expires)
return {'held', expires, purged}
"""
)

# KEYS: day, day-1, day+1, new booking, customer index, business index, hold map, old booking, old day
# ARGV: token, ref, occ start, occ end, capacity, now (s), notice (s), max active, old ref, cut-off (s),
#       then the booking's field/value pairs
_BOOK = (
    _LIB
    + """
local done = redis.call('GET', KEYS[7])
if done then return {'booked', done} end
if redis.call('EXISTS', KEYS[4]) == 1 then return {'ref_taken', ''} end
local now, a, b = tonumber(ARGV[6]), tonumber(ARGV[3]), tonumber(ARGV[4])
local fields = {}
for i = 11, #ARGV, 2 do fields[ARGV[i]] = ARGV[i + 1] end
local old = ARGV[9]
if old ~= '' then
  local o = redis.call('HMGET', KEYS[8], 'phone', 'status', 'start')
  if o[1] ~= fields['phone'] then return {'unknown', ''} end
  if o[2] ~= 'confirmed' then return {'not_active', o[2]} end
  if tonumber(o[3]) - now < tonumber(ARGV[10]) then return {'too_late_to_change', ''} end
elseif redis.call('ZCOUNT', KEYS[5], '(' .. now, '+inf') >= tonumber(ARGV[8]) then
  return {'limit', ''}
end
if tonumber(fields['start']) < now + tonumber(ARGV[7]) then return {'too_late', ''} end
local now_ms = redis_ms()
-- a live hold vouches for exactly the interval it holds, nothing else
local mine = redis.call('HGET', KEYS[1], ARGV[1])
local live = false
if mine then
  local s, e, x = parse(mine)
  live = x > now_ms and s == a and e == b
end
if not live then
  local skip = {[ARGV[1]] = true}
  if old ~= '' then skip_booking(skip, KEYS[8], old, KEYS[1]) end
  local found = overlapping({KEYS[1], KEYS[2], KEYS[3]}, a, b, now_ms, skip)
  if max_concurrency(found, a) >= tonumber(ARGV[5]) then return {'taken', '', purged} end
end
redis.call('HDEL', KEYS[1], ARGV[1])
add_booked(KEYS[1], a, b, 1)
for i = 11, #ARGV, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[4], 'occ', a .. ',' .. b)
if old ~= '' then
  redis.call('HSET', KEYS[4], 'rescheduled_from', old)
  release_booking(KEYS[9], KEYS[8], old)
  redis.call('HSET', KEYS[8], 'status', 'rescheduled', 'rescheduled_to', ARGV[2], 'changed_at', now)
  redis.call('ZREM', KEYS[5], old)
end
redis.call('ZADD', KEYS[5], fields['start'], ARGV[2])
redis.call('ZADD', KEYS[6], fields['start'], ARGV[2])
redis.call('SET', KEYS[7], ARGV[2], 'EX', 172800)
return {'booked', ARGV[2], purged, 'new'}
"""
)

# KEYS: booking, its day, customer index.  ARGV: ref, phone, now (s), cut-off (s)
_CANCEL = (
    _LIB
    + """
local b = redis.call('HMGET', KEYS[1], 'phone', 'status', 'start')
if b[1] ~= ARGV[2] then return 'unknown' end
if b[2] ~= 'confirmed' then return b[2] end
if tonumber(b[3]) - tonumber(ARGV[3]) < tonumber(ARGV[4]) then return 'too_late' end
release_booking(KEYS[2], KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'changed_at', ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
return 'ok'
"""
)

# KEYS: customer index.  ARGV: now (s), limit, booking key prefix
_UPCOMING = """
local refs = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, ref in ipairs(refs) do table.insert(out, redis.call('HGETALL', ARGV[3] .. ref)) end
return out
"""

#: entry id -> (start, end, expires_ms, count): a hold (expires_ms > 0, count 1), the bookings of
#: one interval (id ``=start,end``, expires_ms 0, count ≥ 1), or one booking filed before counts (id REF)
DayEntries = dict[str, tuple[int, int, int, int]]
#: an interval and how many entries occupy it
Weighted = tuple[int, int, int]


@dataclass(frozen=True)
class Occupancy:
    """Live entries of some days of one resource, read in one round trip."""

    redis_ms: int
    days: dict[date, DayEntries]

    def only(self, days: list[date]) -> Occupancy:
        """The same reading restricted to ``days`` (each must have been read)."""
        return Occupancy(self.redis_ms, {day: self.days[day] for day in days})

    def intervals(self, *, skip: frozenset[str] = frozenset()) -> list[Weighted]:
        """Every live entry's interval and count, less ``skip``: hold tokens and REFs are left out,
        an ``=start,end`` id counts one booking fewer (the booking being moved)."""
        found = []
        for entries in self.days.values():
            for entry_id, (start, end, expires, count) in entries.items():
                if expires and expires <= self.redis_ms:
                    continue
                if entry_id in skip:
                    count = count - 1 if entry_id.startswith("=") else 0
                if count > 0:
                    found.append((start, end, count))
        return found


@dataclass(frozen=True)
class Outcome:
    """What a script decided: ``status`` and, depending on it, a value (a REF, an expiry)."""

    status: str
    value: str = ""
    #: expired holds the script purged on the way
    expired: int = field(default=0, compare=False)
    #: a booking made by this call (not a replay of the same hold's earlier one)
    new: bool = field(default=False, compare=False)

    @classmethod
    def parse(cls, reply: list) -> Outcome:
        """``[status, value, purged?, "new"?]`` as the scripts return it."""
        status, value, *extra = reply
        return cls(status, "" if value is None else str(value), int(extra[0]) if extra else 0, len(extra) > 1)


@functools.lru_cache(maxsize=65_536)  # a day's entries are read again and again, and seldom change
def _entry(value: str) -> tuple[int, int, int, int]:
    start, end, expires, *count = value.split(",")
    return int(start), int(end), int(expires), int(count[0]) if count else 1


def _day(day: date) -> str:
    return day.strftime("%Y%m%d")


class BookingStore:
    """One business's bookings. Every public method is exactly one Redis round trip."""

    def __init__(self, client: redis.Redis, *, prefix: str, business: str) -> None:
        self.client = client
        self.base = f"{prefix}:bk:{{{business}}}"
        self._hold = client.register_script(_HOLD)
        self._book = client.register_script(_BOOK)
        self._cancel = client.register_script(_CANCEL)
        self._upcoming = client.register_script(_UPCOMING)

    # -- keys -----------------------------------------------------------------------
    def day_key(self, resource: str, day: date) -> str:
        return f"{self.base}:occ:{resource}:{_day(day)}"

    def booking_key(self, ref: str) -> str:
        return f"{self.base}:booking:{ref}"

    def customer_key(self, phone: str) -> str:
        return f"{self.base}:customer:{phone}"

    @property
    def all_bookings_key(self) -> str:
        return f"{self.base}:bookings"

    def _around(self, resource: str, day: date) -> list[str]:
        return [self.day_key(resource, d) for d in (day, day - timedelta(days=1), day + timedelta(days=1))]

    # -- reads ----------------------------------------------------------------------
    def occupancy(self, resource: str, days: list[date]) -> Occupancy:
        """The entries of ``days`` (callers include neighbours), with the Redis clock."""
        pipe = self.client.pipeline(transaction=False)
        self.queue_occupancy(pipe, resource, days)
        return self.parse_occupancy(days, pipe.execute())

    def queue_occupancy(self, pipe: redis.client.Pipeline, resource: str, days: list[date]) -> None:
        """Add the reads of :meth:`occupancy` to ``pipe`` (``TIME``, then one ``HGETALL`` per day)."""
        pipe.time()
        for day in days:
            pipe.hgetall(self.day_key(resource, day))

    @staticmethod
    def parse_occupancy(days: list[date], replies: list) -> Occupancy:
        """The :class:`Occupancy` from the replies of :meth:`queue_occupancy`, in order."""
        (seconds, micros), *hashes = replies
        parsed = {
            day: {entry_id: _entry(value) for entry_id, value in entries.items()}
            for day, entries in zip(days, hashes, strict=True)
        }
        return Occupancy(int(seconds) * 1000 + int(micros) // 1000, parsed)

    def booking(self, ref: str) -> dict[str, str]:
        return self.client.hgetall(self.booking_key(ref))

    def refs_between(self, start: int, end: int) -> list[str]:
        """REFs of every booking (any status) starting in ``[start, end)``, by start."""
        return self.client.zrangebyscore(self.all_bookings_key, start, f"({end}")

    def bookings(self, refs: list[str]) -> list[dict[str, str]]:
        """The records of ``refs``, in order, in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for ref in refs:
            pipe.hgetall(self.booking_key(ref))
        return pipe.execute() if refs else []

    def upcoming(self, phone: str, now: int, limit: int = 10) -> list[dict[str, str]]:
        """The phone's active bookings starting after ``now``, soonest first."""
        flats = self._upcoming(keys=[self.customer_key(phone)], args=[now, limit, f"{self.base}:booking:"])
        return [dict(zip(flat[::2], flat[1::2], strict=True)) for flat in flats]

    # -- writes ---------------------------------------------------------------------
    def hold(
        self,
        *,
        resource: str,
        day: date,
        token: str,
        interval: tuple[int, int],
        capacity: int,
        hold_ms: int,
        release: tuple[date, str] | None = None,
        exclude: str = "",
    ) -> Outcome:
        """Hold ``interval`` for ``token`` if capacity allows; releases the customer's previous hold."""
        old_day, old_token = release or (day, "")
        moving = self.booking_key(exclude) if exclude else self.day_key(resource, day)
        keys = [*self._around(resource, day), self.day_key(resource, old_day), moving]
        return Outcome.parse(self._hold(keys=keys, args=[token, *interval, capacity, hold_ms, old_token, exclude]))

    def release(self, resource: str, day: date, token: str) -> None:
        self.client.hdel(self.day_key(resource, day), token)

    def book(
        self,
        *,
        resource: str,
        day: date,
        token: str,
        ref: str,
        interval: tuple[int, int],
        capacity: int,
        now: int,
        notice: int,
        max_active: int,
        fields: dict[str, str],
        move: tuple[str, str, date] | None = None,
        cutoff: int = 0,
    ) -> Outcome:
        """Book from a hold (or, if it lapsed, from a slot still free); ``move`` reschedules a booking.

        Idempotent per hold token: the same token always returns the same REF. ``move`` is the
        old booking's REF, resource and day.
        """
        old_ref, old_resource, old_day = move or ("", resource, day)
        keys = [
            *self._around(resource, day),
            self.booking_key(ref),
            self.customer_key(fields["phone"]),
            self.all_bookings_key,
            f"{self.base}:hold:{token}",
            self.booking_key(old_ref) if old_ref else self.booking_key(ref),
            self.day_key(old_resource, old_day),
        ]
        args: list[str | int] = [token, ref, *interval, capacity, now, notice, max_active, old_ref, cutoff]
        for name, value in fields.items():
            args += (name, value)
        return Outcome.parse(self._book(keys=keys, args=args))

    def cancel(self, *, ref: str, phone: str, resource: str, day: date, now: int, cutoff: int) -> str:
        """``ok``, or why not: ``unknown``, ``too_late``, or the status it already has (``cancelled``, …)."""
        keys = [self.booking_key(ref), self.day_key(resource, day), self.customer_key(phone)]
        return self._cancel(keys=keys, args=[ref, phone, now, cutoff])

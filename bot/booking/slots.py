"""Which start times a service can be offered at: pure computation, no Redis, no Flask.

Opening hours are local wall-clock times; every instant returned is aware UTC. Each local time
is placed with ``zoneinfo`` on its own date, never with "today's offset", so daylight-saving
days come out right: a wall time the clock skips is not offered, one it shows twice is offered
once (the first, ``fold=0``), and durations are measured in real time.

Occupancy intervals are epoch seconds, half-open ``[start, end)``: touching ones do not overlap.
:func:`fits` is mirrored by a Lua script at reservation time; keep the two identical.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .catalog import DAY_MINUTES, Business, Service

_MINUTE = timedelta(minutes=1)


def local_today(business: Business, now: datetime) -> date:
    """The business's local date at the aware instant ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(business.timezone).date()


def _is_open(business: Business, day: date, today: date) -> bool:
    within = today <= day <= today + timedelta(days=business.horizon_days)
    return within and day not in business.closed and bool(business.hours.get(day.weekday()))


def open_dates(business: Business, now: datetime) -> list[date]:
    """Local dates from today to today + horizon_days (inclusive) that are not closed and have hours."""
    today = local_today(business, now)
    days = (today + timedelta(days=n) for n in range(business.horizon_days + 1))
    return [day for day in days if _is_open(business, day, today)]


def _wall(day: date, minute: int) -> datetime:
    """The naive local wall time ``minute`` minutes after midnight of ``day`` (1440 = next midnight)."""
    days, minute = divmod(minute, DAY_MINUTES)
    return datetime.combine(day + timedelta(days=days), time(minute // 60, minute % 60))


def _exists(wall: datetime, tz: ZoneInfo, instant: datetime) -> bool:
    """Whether ``instant`` shows ``wall`` on the local clock (False inside a DST gap)."""
    return instant.astimezone(tz).replace(tzinfo=None) == wall


def _reached(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the local clock of ``day`` reaches ``minute`` (1440 = next midnight).

    A wall time that exists twice is reached the first time. One inside a DST gap is never shown:
    the clock reaches it when it jumps over it, so closing "at 02:30" on a 02:00->03:00 night
    means closing at the jump, not an hour later.
    """
    wall = _wall(day, minute)
    instant = wall.replace(tzinfo=tz).astimezone(UTC)
    if _exists(wall, tz, instant):
        return instant
    instant = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # just before the jump
    while instant.astimezone(tz).replace(tzinfo=None) < wall:
        instant += _MINUTE
    return instant


def day_grid(business: Business, service: Service, day: date) -> list[datetime]:
    """Every start (aware UTC) of ``service``'s grid on local date ``day``, whatever the date today.

    The grid steps ``slot_minutes`` of wall-clock time from each range's start, whatever is booked.
    The service must end, in real time, by the range's end; its buffers may lie outside the hours.
    It depends on nothing but the catalog, so callers may keep it (see ``BookingDesk``).
    """
    tz = business.timezone
    length = timedelta(minutes=service.minutes)
    starts: set[datetime] = set()
    for opening in business.hours.get(day.weekday(), ()):
        closing = _reached(day, opening.end, tz)
        for minute in range(opening.start, opening.end, business.slot_minutes):
            wall = _wall(day, minute)
            start = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0: the first of a repeated time
            if _exists(wall, tz, start) and start + length <= closing:
                starts.add(start)
    return sorted(starts)


def day_starts(
    business: Business, service: Service, day: date, now: datetime, grid: list[datetime] | None = None
) -> list[datetime]:
    """Start instants (aware UTC) for ``service`` on local date ``day``, ignoring occupancy.

    :func:`day_grid` (``grid``, if the caller kept it) within the horizon, after the minimum notice.
    """
    if not _is_open(business, day, local_today(business, now)):
        return []
    earliest = now + timedelta(minutes=business.min_notice_minutes)
    return [start for start in (day_grid(business, service, day) if grid is None else grid) if earliest <= start]


def occupancy(service: Service, start: datetime) -> tuple[int, int]:
    """Epoch seconds ``[start - buffer_before, start + minutes + buffer_after)``: what a booking blocks."""
    at = int(start.timestamp())
    return at - service.buffer_before_minutes * 60, at + (service.minutes + service.buffer_after_minutes) * 60


def fits(service: Service, start: datetime, entries: Iterable[tuple[int, ...]]) -> bool:
    """Whether a booking at ``start`` keeps the resource within ``service.capacity``.

    ``entries`` are the occupancy intervals ``(start, end)`` of live holds and bookings on the
    resource, or ``(start, end, count)`` for ``count`` entries of the same interval. The most
    entries overlapping any one instant of the candidate's interval must be below capacity; that
    maximum is reached at the candidate's start or at some entry's (clipped) start.
    """
    a, b = occupancy(service, start)
    clipped = [(max(e[0], a), min(e[1], b), e[2] if len(e) > 2 else 1) for e in entries if e[0] < b and a < e[1]]
    points = {a, *(s for s, _, _ in clipped)}
    busiest = max(sum(n for s, e, n in clipped if s <= p < e) for p in points)
    return busiest < service.capacity


def free_starts(
    business: Business,
    service: Service,
    day: date,
    now: datetime,
    entries: Iterable[tuple[int, ...]],
    grid: list[datetime] | None = None,
    *,
    limit: int | None = None,
) -> list[datetime]:
    """:func:`day_starts` that still :func:`fits` among ``entries`` (that day's occupancy on the resource).

    ``limit`` stops at that many (``limit=1``: is there any free time at all?).
    """
    entries = list(entries)
    found = (start for start in day_starts(business, service, day, now, grid) if fits(service, start, entries))
    return list(itertools.islice(found, limit))


def day_window(business: Business, day: date) -> tuple[int, int]:
    """Epoch seconds of local midnight of ``day`` and of the next one (23 or 25 hours apart on DST days)."""
    tz = business.timezone
    return int(_reached(day, 0, tz).timestamp()), int(_reached(day, DAY_MINUTES, tz).timestamp())

"""What is taken on a resource's days: live holds and counted bookings, as one read saw them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta

#: entry id -> (start, end, expires_ms, count): a hold (expires_ms > 0, count 1), the bookings of
#: one interval (id ``=start,end``, expires_ms 0, count ≥ 1), or one booking filed before counts (id REF)
DayEntries = dict[str, tuple[int, int, int, int]]
#: an interval and how many entries occupy it
Weighted = tuple[int, int, int]


@functools.lru_cache(maxsize=65_536)  # a day's entries are read again and again, and seldom change
def parse_entry(value: str) -> tuple[int, int, int, int]:
    start, end, expires, *count = value.split(",")
    return int(start), int(end), int(expires), int(count[0]) if count else 1


def parse_day(entries: dict[str, str]) -> DayEntries:
    return {entry_id: parse_entry(value) for entry_id, value in entries.items()}


def with_neighbours(days: list[date]) -> list[date]:
    """Entries are filed under their start's day; buffers and late hours reach into the next one."""
    return sorted({d + timedelta(days=k) for d in days for k in (-1, 0, 1)})


@dataclass(frozen=True)
class Occupancy:
    """Live entries of some days of one resource, read in one round trip, with the Redis clock."""

    resource: str
    redis_ms: int
    days: dict[date, DayEntries]

    def covers(self, resource: str, days: list[date]) -> bool:
        return resource == self.resource and set(days) <= self.days.keys()

    def only(self, days: list[date]) -> Occupancy:
        """The same reading restricted to ``days`` (each must have been read)."""
        return Occupancy(self.resource, self.redis_ms, {day: self.days[day] for day in days})

    def around(self, day: date) -> Occupancy:
        """What can collide with a start on ``day``: its entries and its neighbours'."""
        return self.only(with_neighbours([day]))

    def is_live(self, entry_id: str, day: date) -> bool:
        """Whether the hold ``entry_id`` filed under ``day`` is still live by the Redis clock."""
        entry = self.days.get(day, {}).get(entry_id)
        return entry is not None and entry[2] > self.redis_ms

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

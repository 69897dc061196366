"""Which times are free: the slot rules applied to an occupancy reading. Pure: no Redis, no I/O.

Listings are advice computed from one read; every write is re-checked by a script
(``bot/lua/booking.lua``) against what is stored at that instant.
"""

from __future__ import annotations

from datetime import date, datetime

from .catalog import Business, Service
from .occupancy import Occupancy, with_neighbours
from .slots import day_grid, day_starts, fits, free_starts, open_dates


class Availability:
    """The slot rules of one business, with each service's daily grid computed once per process."""

    #: grids kept at most (a service's starts on one date never change while the catalog does not)
    GRIDS = 4096

    def __init__(self, business: Business) -> None:
        self.business = business
        self._grids: dict[tuple[str, date], list[datetime]] = {}

    def _grid(self, service: Service, day: date) -> list[datetime]:
        """The day's grid, computed once (time zone arithmetic is the listings' main cost)."""
        key = (service.id, day)
        grid = self._grids.get(key)
        if grid is None:
            if len(self._grids) >= self.GRIDS:
                self._grids.clear()
            grid = self._grids[key] = day_grid(self.business, service, day)
        return grid

    def local_day(self, at: datetime) -> date:
        return at.astimezone(self.business.timezone).date()

    def open_days(self, now: datetime) -> list[date]:
        return open_dates(self.business, now)

    @staticmethod
    def days_to_read(days: list[date]) -> list[date]:
        """The days whose entries a listing of ``days`` needs (each with its neighbours)."""
        return with_neighbours(days)

    def free_days(self, service: Service, now: datetime, seen: Occupancy, skip: frozenset[str]) -> list[date]:
        """Open days with at least one free time for ``service``."""
        return [d for d in self.open_days(now) if self._free(service, d, now, seen, skip, limit=1)]

    def free_times(
        self, service: Service, day: date, now: datetime, seen: Occupancy, skip: frozenset[str]
    ) -> list[datetime]:
        return self._free(service, day, now, seen, skip)

    def nearest(
        self, service: Service, at: datetime, now: datetime, seen: Occupancy, skip: frozenset[str], count: int = 5
    ) -> list[datetime]:
        """The free times closest to ``at`` (before or after), in time order."""
        times = [t for d in self.open_days(now) for t in self._free(service, d, now, seen, skip)]
        return sorted(sorted(times, key=lambda t: abs(t - at))[:count])

    def is_offerable(self, service: Service, at: datetime, now: datetime) -> bool:
        """Whether ``at`` is a start the rules allow now (hours, grid, DST, notice, horizon)."""
        day = self.local_day(at)
        return at in day_starts(self.business, service, day, now, self._grid(service, day))

    def fits(self, service: Service, at: datetime, seen: Occupancy, skip: frozenset[str]) -> bool:
        """Whether ``service`` at ``at`` fits among the entries ``seen`` (less ``skip``)."""
        return fits(service, at, seen.around(self.local_day(at)).intervals(skip=skip))

    def _free(
        self,
        service: Service,
        day: date,
        now: datetime,
        seen: Occupancy,
        skip: frozenset[str],
        limit: int | None = None,
    ) -> list[datetime]:
        taken = seen.around(day).intervals(skip=skip)
        return free_starts(self.business, service, day, now, taken, self._grid(service, day), limit=limit)

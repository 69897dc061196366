"""The booking desk: what the conversation asks of the catalog, the slot rules and the store.

Listings are advice computed from one read; every write goes through one store script
that re-checks the rules. Each method counts its Redis round trips on the turn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from ..stats import Stats
from .catalog import Catalog, Service
from .slots import day_grid, day_starts, free_starts, occupancy, open_dates
from .store import BookingStore, Occupancy, Outcome, Weighted

if TYPE_CHECKING:
    import redis

    from ..turn import Turn

REF_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no I, L, O, 0, 1: easy to read out


@dataclass(frozen=True)
class Booking:
    ref: str
    phone: str
    service_id: str
    start: datetime
    end: datetime
    status: str  # confirmed, cancelled, rescheduled
    name: str = ""
    language: str = ""
    occ: str = ""  # "start,end" of the place it takes (with buffers); empty for bookings made before counts

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Booking:
        return cls(
            ref=data["ref"],
            phone=data["phone"],
            service_id=data["service"],
            start=datetime.fromtimestamp(int(data["start"]), UTC),
            end=datetime.fromtimestamp(int(data["end"]), UTC),
            status=data.get("status", ""),
            name=data.get("name", ""),
            language=data.get("language", ""),
            occ=data.get("occ", ""),
        )

    @property
    def place(self) -> str:
        """Its id among a day's entries as listings skip it: the counted interval, or its own REF."""
        return f"={self.occ}" if self.occ else self.ref


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def hold_token(message_sid: str) -> str:
    """The hold a message places: the same for a retry or a replay of that message."""
    return hashlib.blake2s(message_sid.encode(), digest_size=8).hexdigest()


def booking_ref(token: str, attempt: int) -> str:
    """A short reference read out on the phone, e.g. ``K7Q2MX``; the same for a hold's replays."""
    number = int.from_bytes(hashlib.blake2s(f"{token}:{attempt}".encode(), digest_size=8).digest())
    chars = []
    for _ in range(6):
        number, index = divmod(number, len(REF_ALPHABET))
        chars.append(REF_ALPHABET[index])
    return "".join(chars)


@dataclass
class ReadAhead:
    """Occupancy a tap will need, read in the engine's load pipeline instead of a trip of its own.

    A tapped button names its service (and day), so the days its reply lists are known before
    the session is loaded; ``occupancy`` is filled in by that same round trip.
    """

    resource: str
    days: list[date]
    occupancy: Occupancy | None = None

    def serves(self, resource: str, days: list[date]) -> Occupancy | None:
        if self.occupancy is None or resource != self.resource or not set(days) <= self.occupancy.days.keys():
            return None
        return self.occupancy.only(days)


def _with_neighbours(days: list[date]) -> list[date]:
    """Entries are filed under their start's day; buffers and late hours reach into the next one."""
    return sorted({d + timedelta(days=k) for d in days for k in (-1, 0, 1)})


def _around(seen: Occupancy, day: date, skip: frozenset[str]) -> list[Weighted]:
    """What can collide with a start on ``day``: the entries filed under it and its neighbours."""
    return seen.only(_with_neighbours([day])).intervals(skip=skip)


class BookingDesk:
    #: grids kept at most (a service's starts on one date never change while the catalog does not)
    GRIDS = 4096

    def __init__(self, catalog: Catalog, store: BookingStore, stats: Stats | None = None) -> None:
        self.catalog = catalog
        self.business = catalog.business
        self.store = store
        self.stats = stats or Stats()
        self._grids: dict[tuple[str, date], list[datetime]] = {}

    def _count(self, outcome: Outcome, change: str = "") -> Outcome:
        if outcome.expired:
            self.stats.incr("holds.expired", outcome.expired)
        if outcome.new and change:
            self.stats.incr(f"bookings.{change}")
        return outcome

    def _grid(self, service: Service, day: date) -> list[datetime]:
        """The day's grid, computed once per process (time zone arithmetic is the listings' main cost)."""
        key = (service.id, day)
        grid = self._grids.get(key)
        if grid is None:
            if len(self._grids) >= self.GRIDS:
                self._grids.clear()
            grid = self._grids[key] = day_grid(self.business, service, day)
        return grid

    def local_day(self, at: datetime) -> date:
        return at.astimezone(self.business.timezone).date()

    # -- advice ---------------------------------------------------------------------
    def _occupancy(self, turn: Turn, service: Service, days: list[date]) -> Occupancy:
        wanted = _with_neighbours(days)
        if turn.read_ahead is not None:
            ready = turn.read_ahead.serves(service.resource, wanted)
            if ready is not None:
                return ready
        turn.trips += 1
        return self.store.occupancy(service.resource, wanted)

    # -- reading ahead (in the engine's load pipeline) ---------------------------------
    def days_ahead(self, service_id: str, now: datetime) -> ReadAhead | None:
        """What listing the days of ``service_id`` reads (a service tap)."""
        service = self.catalog.service(service_id)
        days = open_dates(self.business, now) if service else []
        return ReadAhead(service.resource, _with_neighbours(days)) if service and days else None

    def times_ahead(self, service_id: str, day: date) -> ReadAhead | None:
        """What listing the times of ``service_id`` on ``day`` reads (a day tap)."""
        service = self.catalog.service(service_id)
        return ReadAhead(service.resource, _with_neighbours([day])) if service else None

    def queue_read_ahead(self, pipe: redis.client.Pipeline, *, ahead: ReadAhead) -> None:
        self.store.queue_occupancy(pipe, ahead.resource, ahead.days)

    def take_read_ahead(self, ahead: ReadAhead, replies: list) -> None:
        ahead.occupancy = self.store.parse_occupancy(ahead.days, replies)

    def free_days(self, turn: Turn, service: Service, *, skip: frozenset[str] = frozenset()) -> list[date]:
        """Open days with at least one free time for ``service``."""
        days = open_dates(self.business, turn.now)
        if not days:
            return []
        seen = self._occupancy(turn, service, days)
        return [d for d in days if self._free_starts(turn, service, d, _around(seen, d, skip), limit=1)]

    def free_times(
        self, turn: Turn, service: Service, day: date, *, skip: frozenset[str] = frozenset()
    ) -> list[datetime]:
        taken = self._occupancy(turn, service, [day]).intervals(skip=skip)
        return self._free_starts(turn, service, day, taken)

    def _free_starts(
        self, turn: Turn, service: Service, day: date, taken: list[Weighted], limit: int | None = None
    ) -> list[datetime]:
        return free_starts(self.business, service, day, turn.now, taken, self._grid(service, day), limit=limit)

    def nearest(
        self, turn: Turn, service: Service, at: datetime, *, skip: frozenset[str] = frozenset(), count: int = 5
    ) -> list[datetime]:
        """The free times closest to ``at`` (before or after), in time order."""
        days = open_dates(self.business, turn.now)
        if not days:
            return []
        seen = self._occupancy(turn, service, days)
        times = [t for d in days for t in self._free_starts(turn, service, d, _around(seen, d, skip))]
        return sorted(sorted(times, key=lambda t: abs(t - at))[:count])

    def is_offerable(self, turn: Turn, service: Service, at: datetime) -> bool:
        """Whether ``at`` is a start the rules allow now (hours, grid, DST, notice, horizon)."""
        day = self.local_day(at)
        return at in day_starts(self.business, service, day, turn.now, self._grid(service, day))

    # -- actions --------------------------------------------------------------------
    def hold(
        self,
        turn: Turn,
        service: Service,
        at: datetime,
        *,
        token: str,
        release: tuple[date, str] | None,
        exclude: str = "",
    ) -> Outcome:
        turn.trips += 1
        outcome = self.store.hold(
            resource=service.resource,
            day=self.local_day(at),
            token=token,
            interval=occupancy(service, at),
            capacity=service.capacity,
            hold_ms=int(self.business.hold_minutes * 60_000),
            release=release,
            exclude=exclude,
        )
        return self._count(outcome)

    def release(self, turn: Turn, service: Service, day: date, token: str) -> None:
        turn.trips += 1
        self.store.release(service.resource, day, token)

    def book(self, turn: Turn, service: Service, at: datetime, *, token: str, move: Booking | None) -> Outcome:
        """Book ``at`` from the hold ``token``; with ``move``, that booking is rescheduled to it."""
        end = at + timedelta(minutes=service.minutes)
        fields = {
            "phone": turn.message.phone,
            "name": turn.customer_name,
            "service": service.id,
            "start": str(epoch(at)),
            "end": str(epoch(end)),
            "day": self.local_day(at).strftime("%Y%m%d"),
            "status": "confirmed",
            "language": turn.t.code,
            "created_at": str(epoch(turn.now)),
        }
        for attempt in range(5):
            ref = booking_ref(token, attempt)
            turn.trips += 1
            outcome = self.store.book(
                resource=service.resource,
                day=self.local_day(at),
                token=token,
                ref=ref,
                interval=occupancy(service, at),
                capacity=service.capacity,
                now=epoch(turn.now),
                notice=self.business.min_notice_minutes * 60,
                max_active=self.business.max_active_bookings,
                fields={**fields, "ref": ref},
                move=(move.ref, self.local_day(move.start)) if move else None,
                cutoff=self.business.cancel_cutoff_minutes * 60,
            )
            if outcome.status != "ref_taken":
                return self._count(outcome, "rescheduled" if move else "created")
        return Outcome("taken")

    def cancel(self, turn: Turn, booking: Booking) -> str:
        turn.trips += 1
        return self._cancel(booking, turn.message.phone, turn.now, self.business.cancel_cutoff_minutes * 60)

    def cancel_for_business(self, ref: str, now: datetime) -> tuple[str, Booking | None]:
        """The business cancels ``ref``: no cut-off, but never one that has started. Two round trips."""
        data = self.store.booking(ref)
        if not data:
            return "unknown", None
        booking = Booking.from_hash(data)
        return self._cancel(booking, booking.phone, now, 0), booking

    def _cancel(self, booking: Booking, phone: str, now: datetime, cutoff: int) -> str:
        service = self.catalog.service(booking.service_id)
        result = self.store.cancel(
            ref=booking.ref,
            phone=phone,
            resource=service.resource if service else booking.service_id,
            day=self.local_day(booking.start),
            now=epoch(now),
            cutoff=cutoff,
        )
        if result == "ok":
            self.stats.incr("bookings.cancelled")
        return result

    def between(self, start: datetime, end: datetime) -> list[Booking]:
        """Every booking (any status) starting in ``[start, end)``, by start. Two round trips."""
        refs = self.store.refs_between(epoch(start), epoch(end))
        return [Booking.from_hash(data) for data in self.store.bookings(refs) if data]

    # -- the customer's bookings --------------------------------------------------------
    def upcoming(self, turn: Turn) -> list[Booking]:
        turn.trips += 1
        return [Booking.from_hash(h) for h in self.store.upcoming(turn.message.phone, epoch(turn.now))]

    def booking(self, turn: Turn, ref: str) -> Booking | None:
        """The customer's own booking ``ref``; None for anyone else's or an unknown one."""
        turn.trips += 1
        data = self.store.booking(ref)
        if not data or data.get("phone") != turn.message.phone:
            return None
        return Booking.from_hash(data)

    def too_close_to_change(self, turn: Turn, booking: Booking) -> bool:
        return booking.start - turn.now < timedelta(minutes=self.business.cancel_cutoff_minutes)

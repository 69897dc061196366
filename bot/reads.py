"""What a tap reads besides its session: occupancy, a booking, a customer's bookings.

Reads a tapped button will need are planned before the load (the button names its service, day
or booking) and fetched in the load's own pipeline; anything else is fetched when first asked for,
one pipelined round trip each, counted here (the round trips of a tap are counted where the client
talks to Redis, never in the domain).
"""

from __future__ import annotations

from typing import Any, cast

from .booking.occupancy import Occupancy
from .booking.store import BookingRead, BookingStore, OccupancyRead, Read, UpcomingRead


class Reads:
    def __init__(self, store: BookingStore, prefetched: dict[Read, Any] | None = None) -> None:
        self.store = store
        self.values: dict[Read, Any] = dict(prefetched or {})
        #: round trips made after the load
        self.trips = 0

    def get(self, read: Read) -> Any:
        if read in self.values:
            return self.values[read]
        if isinstance(read, OccupancyRead):
            for known, value in self.values.items():
                if isinstance(known, OccupancyRead) and value.covers(read.resource, list(read.days)):
                    return value.only(list(read.days))
        self.trips += 1
        value = self.values[read] = self.store.read(read)[0]
        return value

    def occupancy(self, resource: str, days: list[Any]) -> Occupancy:
        return cast(Occupancy, self.get(OccupancyRead(resource, tuple(days))))

    def booking(self, ref: str) -> dict[str, str]:
        return cast(dict[str, str], self.get(BookingRead(ref)))

    def upcoming(self, phone: str, after: int) -> list[dict[str, str]]:
        return cast(list[dict[str, str]], self.get(UpcomingRead(phone, after)))

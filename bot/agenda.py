"""The business's bookings as the owner reads them: by day, in the business's time zone.

Shared by the admin page and ``flask bookings list``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from .booking.desk import Booking
from .booking.formats import day_label, times_label
from .logs import mask_phone
from .services import Services


@dataclass(frozen=True)
class Entry:
    """One booking, ready to print."""

    ref: str
    time: str  # "10:30–11:00"
    service: str
    name: str
    phone: str  # masked
    status: str
    cancellable: bool


@dataclass(frozen=True)
class Day:
    day: date
    label: str  # "Wed 14 Jan"
    entries: list[Entry]


def day_start(services: Services, day: date) -> datetime:
    """Local midnight of ``day`` in the business's time zone."""
    return datetime.combine(day, time(0), services.catalog.business.timezone)


def today(services: Services) -> date:
    return services.desk.local_day(services.clock())


def bookings_from(services: Services, first: date, days: int) -> list[Booking]:
    """Every booking starting on ``days`` local days from ``first`` (two round trips)."""
    return services.desk.between(day_start(services, first), day_start(services, first + timedelta(days=days)))


def agenda(services: Services, first: date, days: int) -> list[Day]:
    """Bookings of ``days`` days from ``first``, grouped by local day; days without any are left out."""
    tz = services.catalog.business.timezone
    t = services.catalogs.get(services.settings.default_language)
    now = services.clock()
    grouped: dict[date, list[Entry]] = {}
    for booking in bookings_from(services, first, days):
        service = services.catalog.service(booking.service_id)
        entry = Entry(
            ref=booking.ref,
            time=times_label(booking.start, booking.end, tz, t),
            service=service.name(t.code) if service else booking.service_id,
            name=booking.name or "—",
            phone=mask_phone(booking.phone),
            status=booking.status,
            cancellable=booking.status == "confirmed" and booking.start > now,
        )
        grouped.setdefault(services.desk.local_day(booking.start), []).append(entry)
    return [Day(day, day_label(day, t), entries) for day, entries in sorted(grouped.items())]


_REFUSALS = {
    "unknown": "there is no such booking",
    "cancelled": "it was already cancelled",
    "rescheduled": "the customer moved it",
    "too_late": "it has already started",
}


def why_not(status: str) -> str:
    """Why the business could not cancel, from the cancel script's answer."""
    return _REFUSALS.get(status, "it cannot be cancelled")

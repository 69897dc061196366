"""The owner's desk: the diary as a time grid (a day or a week), and the owner's own writes.

Everything here reads or writes through the same store and scripts as the conversation: a walk-in
or a phone booking is the booking script's ``book`` (it can never double-book, and the bot stops
offering that time at once); a move is its ``book`` with ``moving`` (the old booking's reminders
go and the new one's are scheduled in the same step, and the customer's notice is queued with
it); a cancel is :func:`bot.agenda.cancel_for_business`; attended / no-show is the ``mark``
operation. The owner's writes skip the customer's rules that protect the business from its
customers (minimum notice, cancel cut-off, bookings per phone), not the ones that protect the
diary (capacity, opening hours on the slot grid, a time that has passed).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from .agenda import between, day_start, opted_out
from .blocks import blocks
from .booking.catalog import Service
from .booking.formats import day_label, time_label
from .booking.records import Booking, booking_ref, epoch
from .booking.requests import MarkRequest, Moving, book_request, resource_of
from .booking.slots import day_grid, fits
from .channels import proactive
from .notify import customer_notice, reach
from .services import Services
from .tenants import Tenant

ATTENDANCE = ("attended", "no_show")
#: how far back the search looks
SEARCH_DAYS = 90


@dataclass(frozen=True)
class Slot:
    """One row of the grid: its start, label, and whether the business is open then."""

    at: datetime
    label: str
    open: bool


@dataclass(frozen=True)
class Card:
    """A booking as the diary shows it (full phone: this is the logged-in owner's page)."""

    ref: str
    service: str
    start: datetime
    end: datetime
    times: str
    day: date
    name: str
    phone: str
    status: str  # confirmed, cancelled, rescheduled
    label: str  # what the owner reads: confirmed / confirmed by customer / attended / no-show / cancelled / moved
    opted_out: bool = False
    #: grid rows: first slot index and how many slots it spans
    row: int = 0
    span: int = 1
    markable: bool = False
    changeable: bool = False
    #: side by side with the bookings it overlaps: its lane of the day's column
    lane: int = 0

    @property
    def wa_me(self) -> str:
        return "https://wa.me/" + self.phone.lstrip("+")


@dataclass(frozen=True)
class Held:
    """A live hold (a customer choosing right now): greyed on the grid."""

    start: datetime
    end: datetime
    row: int
    span: int
    lane: int = 0


@dataclass(frozen=True)
class Blocked:
    """Time off on the grid (:mod:`bot.blocks`)."""

    id: str
    reason: str
    times: str
    row: int
    span: int
    lane: int = 0


@dataclass
class Column:
    """One day of the grid."""

    day: date
    label: str
    slots: list[Slot]
    cards: list[Card] = field(default_factory=list)
    holds: list[Held] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    #: how many lanes overlapping bookings and holds need side by side
    lanes: int = 1

    def arrange(self) -> None:
        """Give each booking and hold the first lane free at its start (interval partitioning)."""
        items: list[Card | Held | Blocked] = sorted(
            [*self.cards, *self.holds, *self.blocked], key=lambda item: (item.row, -item.span)
        )
        ends: list[int] = []
        placed: list[Card | Held | Blocked] = []
        for item in items:
            lane = next((n for n, end in enumerate(ends) if end <= item.row), len(ends))
            if lane == len(ends):
                ends.append(0)
            ends[lane] = item.row + item.span
            placed.append(replace(item, lane=lane))
        self.cards = sorted((i for i in placed if isinstance(i, Card)), key=lambda c: (c.start, c.ref))
        self.holds = [i for i in placed if isinstance(i, Held)]
        self.blocked = [i for i in placed if isinstance(i, Blocked)]
        self.lanes = max(1, len(ends))


def _label(booking: Booking) -> str:
    if booking.status == "cancelled":
        return "cancelled"
    if booking.status == "rescheduled":
        return "moved"
    if booking.attendance == "no_show":
        return "no-show"
    if booking.attendance == "attended":
        return "attended"
    return "confirmed by customer" if booking.customer_confirmed else "confirmed"


def _grid(shop: Tenant, day: date, slot: timedelta) -> list[Slot]:
    """The rows of ``day``: every ``slot_minutes`` from an hour before its first opening to an hour
    after its last closing (a closed day: 09:00–18:00, all closed), each marked open or not."""
    business = shop.business
    tz = business.timezone
    ranges = business.hours.get(day.weekday(), ())
    closed = day in business.closed or not ranges
    first = max(0, min((r.start for r in ranges), default=9 * 60) - 60)
    last = min(24 * 60, max((r.end for r in ranges), default=18 * 60) + 60)
    midnight = datetime.combine(day, datetime.min.time(), tz)
    rows = []
    minute = first - first % (business.slot_minutes or 30)
    while minute < last:
        at = (midnight + timedelta(minutes=minute)).astimezone(UTC)
        is_open = not closed and any(r.start <= minute < r.end for r in ranges)
        rows.append(Slot(at, f"{minute // 60:02d}:{minute % 60:02d}", is_open))
        minute += int(slot.total_seconds() // 60)
    return rows


def _place(slots: list[Slot], start: datetime, end: datetime) -> tuple[int, int]:
    """The first row and the number of rows ``[start, end)`` covers on the grid (clipped to it)."""
    if not slots:
        return 0, 1
    step = (slots[1].at - slots[0].at) if len(slots) > 1 else timedelta(minutes=30)
    first = max(0, int((start - slots[0].at) / step))
    last = min(len(slots), max(first + 1, -int(-(end - slots[0].at) / step)))
    return min(first, len(slots) - 1), max(1, last - first)


def diary(services: Services, shop: Tenant, first: date, days: int) -> list[Column]:
    """The grid of ``days`` days from ``first``: every booking (any status) and live hold."""
    business = shop.business
    t = services.catalogs.get(shop.default_language)
    now = services.clock()
    slot = timedelta(minutes=business.slot_minutes)
    columns = [
        Column(day, day_label(day, t), _grid(shop, day, slot)) for day in (first + timedelta(n) for n in range(days))
    ]
    by_day = {column.day: column for column in columns}
    found = between(shop, day_start(shop, first), day_start(shop, first + timedelta(days=days)))
    stopped = opted_out(services, shop, {b.phone for b in found})
    for booking in found:
        day = shop.availability.local_day(booking.start)
        column = by_day.get(day)
        if column is None:
            continue
        service = shop.catalog.service(booking.service_id)
        row, span = _place(column.slots, booking.start, booking.end)
        tz = business.timezone
        column.cards.append(
            Card(
                ref=booking.ref,
                service=service.name(t.code) if service else booking.service_id,
                start=booking.start,
                end=booking.end,
                times=f"{time_label(booking.start, tz, t)}–{time_label(booking.end, tz, t)}",
                day=day,
                name=booking.name or "—",
                phone=booking.phone,
                status=booking.status,
                label=_label(booking),
                opted_out=booking.phone in stopped,
                row=row,
                span=span,
                markable=booking.status == "confirmed" and booking.start <= now,
                changeable=booking.status == "confirmed" and booking.start > now,
            )
        )
    for resource in {s.resource for s in shop.catalog.services}:
        seen = shop.bookings.occupancy(resource, [c.day for c in columns])
        for day, entries in seen.days.items():
            column = by_day[day]
            for start, end, expires, _ in entries.values():
                if expires > seen.redis_ms:
                    a, b = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
                    row, span = _place(column.slots, a, b)
                    column.holds.append(Held(a, b, row, span))
    for block in blocks(services, shop):
        for column in columns:
            midnight = datetime.combine(column.day, datetime.min.time(), business.timezone).astimezone(UTC)
            a, b = max(block.start, midnight), min(block.end, midnight + timedelta(days=1))
            if a < b and column.slots:
                row, span = _place(column.slots, a, b)
                times = f"{time_label(a, business.timezone, t)}–{time_label(b, business.timezone, t)}"
                column.blocked.append(Blocked(block.id, block.reason, times, row, span))
    for column in columns:
        column.arrange()
    return columns


def start_of(shop: Tenant, day: date, hhmm: str) -> datetime | None:
    """``HH:MM`` on local ``day`` as an instant (None for anything else)."""
    try:
        hours, minutes = (int(part) for part in hhmm.split(":"))
        return (
            datetime.combine(day, datetime.min.time(), shop.business.timezone)
            .replace(hour=hours, minute=minutes)
            .astimezone(UTC)
        )
    except (ValueError, TypeError):
        return None


def free_times(
    services: Services, shop: Tenant, service: Service, day: date, skip: frozenset[str] = frozenset()
) -> list[datetime]:
    """The starts of ``service``'s grid on ``day`` still free, from now on (no minimum notice: the owner books)."""
    now = services.clock()
    seen = shop.bookings.occupancy(service.resource, [day - timedelta(days=1), day, day + timedelta(days=1)])
    taken = seen.intervals(skip=skip)
    return [at for at in day_grid(shop.business, service, day) if at > now and fits(service, at, taken)]


@dataclass(frozen=True)
class Done:
    """An owner's write: whether it was done, what to tell the owner, the booking it made or moved."""

    ok: bool
    message: str
    ref: str = ""


def owner_token(form: str, *what: str) -> str:
    """The hold token an owner's write books under: the same for the same form sent twice (a double
    click, a browser's resend), so the booking script's ``from-hold`` record makes the second a no-op."""
    return "owner-" + hashlib.blake2s("\x1f".join((form, *what)).encode(), digest_size=8).hexdigest()


def walk_in(
    services: Services,
    shop: Tenant,
    service_id: str,
    day: date,
    hhmm: str,
    name: str,
    phone: str,
    *,
    form: str = "",
) -> Done:
    """Book a walk-in or a phone call through the booking script (the bot cannot sell it again).
    ``form`` names the form sent (its CSRF token): sent twice, it books once."""
    service = shop.catalog.service(service_id)
    start = start_of(shop, day, hhmm)
    if service is None or start is None:
        return Done(False, "Pick a service and a time.")
    if start not in free_times(services, shop, service, day):
        return Done(False, f"{hhmm} on {day.isoformat()} is not free for {service.name(shop.default_language)}.")
    token = owner_token(form or secrets.token_hex(8), shop.id, service.id, day.isoformat(), hhmm, phone)
    ref = booking_ref(token, 0)
    now = services.clock()
    request = book_request(
        shop.business,
        service,
        start,
        token=token,
        ref=ref,
        phone=phone,
        name=name,
        language=shop.default_language,
        now=now,
    )
    request = replace(request, notice=0, max_active=1_000_000)
    written = shop.bookings.write(request)
    if not written.applied:
        return Done(False, f"Not booked: {written.status} (the time was taken a moment ago?).")
    services.stats.incr("bookings.created", business=shop.id)
    return Done(True, f"Booked {ref}: {service.name(shop.default_language)}, {day.isoformat()} {hhmm}, {name}.", ref)


def move(services: Services, shop: Tenant, ref: str, day: date, hhmm: str, *, form: str = "") -> Done:
    """Move booking ``ref`` to ``day`` ``hhmm`` for the business; the customer's notice goes with it."""
    data = shop.bookings.booking(ref)
    if not data:
        return Done(False, f"There is no booking {ref}.")
    booking = Booking.from_hash(data)
    service = shop.catalog.service(booking.service_id)
    start = start_of(shop, day, hhmm)
    if service is None or start is None or booking.status != "confirmed":
        return Done(False, f"Booking {ref} cannot be moved ({booking.status}).")
    resource = resource_of(booking, service)
    skip = frozenset({booking.place}) if resource == service.resource else frozenset()
    if start not in free_times(services, shop, service, day, skip):
        return Done(False, f"{hhmm} on {day.isoformat()} is not free.")
    token = owner_token(form or secrets.token_hex(8), shop.id, ref, day.isoformat(), hhmm)
    new_ref = booking_ref(token, 0)
    moving = Moving(ref, resource, shop.availability.local_day(booking.start))
    request = book_request(
        shop.business, service, start, token=token, ref=new_ref, phone=booking.phone, name=booking.name,
        language=booking.language or shop.default_language, now=services.clock(), moving=moving,
    )  # fmt: skip
    request = replace(request, notice=0, cutoff=0, max_active=1_000_000)
    moved = replace(booking, ref=new_ref, start=start, end=start + (booking.end - booking.start))
    notice = customer_notice(shop, services.catalogs, moved, proactive.MOVED)
    reached = reach(services, shop, booking.phone, proactive.MOVED, booking.language)
    notices = (notice,) if notice and reached == "yes" else ()
    now_arg = services.outboxes[shop.id].now_arg() if notices else ""
    written = shop.bookings.write(request, notices=notices, now=now_arg)
    if not written.applied:
        return Done(False, f"Booking {ref} was not moved: {written.status}.")
    services.stats.incr("bookings.rescheduled", business=shop.id)
    told = "The customer is told on WhatsApp." if reached == "yes" else "Please tell the customer."
    return Done(True, f"Moved {ref} to {day.isoformat()} {hhmm} (now {new_ref}). {told}", new_ref)


def mark(services: Services, shop: Tenant, ref: str, attendance: str) -> Done:
    """Mark a booking that has started as attended or a no-show (the business's no-show rate)."""
    if attendance not in ATTENDANCE:
        return Done(False, "Mark it attended or no-show.")
    written = shop.bookings.write(MarkRequest(ref, attendance, epoch(services.clock())))
    if not written.applied:
        return Done(False, f"Booking {ref} cannot be marked ({written.status}).")
    return Done(True, f"Booking {ref} marked {attendance.replace('_', '-')}.")


def search(services: Services, shop: Tenant, query: str, limit: int = 50) -> list[Booking]:
    """Bookings whose reference, name or phone matches ``query``, from 90 days back to the horizon."""
    text = query.strip()
    if not text:
        return []
    now = services.clock()
    found = between(shop, now - timedelta(days=SEARCH_DAYS), now + timedelta(days=shop.business.horizon_days + 1))
    digits = "".join(c for c in text if c.isdigit())
    folded = text.casefold()
    hits = [
        b
        for b in found
        if b.ref == text.upper() or (len(digits) >= 4 and digits in b.phone) or (folded in b.name.casefold())
    ]
    return sorted(hits, key=lambda b: b.start, reverse=True)[:limit]

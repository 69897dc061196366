"""What a booking write asks for, built from plain values: hold, book (or move), cancel, release.

Nothing here knows the conversation or Redis: the conversation decides which request to make and
what reply goes with it, and the store applies the request in the same atomic step as the rest of
the tap, re-checking its rules (``bot/lua/booking.lua``). Each request names the outcome the
reply announces (:attr:`expect`); a different outcome writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ..keys import day_code
from ..phones import is_preview
from .catalog import Business, Service
from .records import Booking, epoch
from .reminders import schedule
from .slots import occupancy


@dataclass(frozen=True)
class Moving:
    """A booking being moved to a new time: its REF and where its place is counted."""

    ref: str
    resource: str
    day: date


@dataclass(frozen=True)
class HoldRequest:
    """Hold ``[start, end)`` (buffers included) on ``resource`` for ``token`` until ``expires_ms``
    (Redis clock); ``skip``: other hold tokens that do not count (the customer's previous hold)."""

    resource: str
    day: date
    token: str
    start: int
    end: int
    capacity: int
    expires_ms: int
    moving: Moving | None = None
    skip: tuple[str, ...] = ()
    expect: tuple[str, str] = ("held", "")

    @property
    def key(self) -> tuple[object, ...]:
        return ("hold", self.token, self.resource, self.day, self.start, self.end)


@dataclass(frozen=True)
class BookRequest:
    """Book the interval of hold ``token`` as ``ref`` (or, if the hold lapsed, a still free one)."""

    resource: str
    day: date
    token: str
    ref: str
    start: int
    end: int
    capacity: int
    now: int
    notice: int
    max_active: int
    cutoff: int
    phone: str
    fields: dict[str, str] = field(compare=False)
    moving: Moving | None = None
    #: ``(offset, due epoch ms)`` of each reminder to schedule with it
    reminders: tuple[tuple[str, int], ...] = ()

    @property
    def expect(self) -> tuple[str, str]:
        return ("booked", self.ref)

    @property
    def key(self) -> tuple[object, ...]:
        return ("book", self.token, self.ref)


@dataclass(frozen=True)
class CancelRequest:
    """Cancel booking ``ref`` of ``phone`` unless within ``cutoff``; ``by_business``: the owner
    cancels (the phone is then the booking's, not a check)."""

    ref: str
    phone: str
    resource: str
    day: date
    now: int
    cutoff: int
    by_business: bool = False
    expect: tuple[str, str] = ("ok", "")

    @property
    def key(self) -> tuple[object, ...]:
        return ("cancel", self.ref)


@dataclass(frozen=True)
class ReleaseRequest:
    """Give a hold back at once (instead of waiting for it to lapse)."""

    resource: str
    day: date
    token: str
    expect: tuple[str, str] = ("ok", "")

    @property
    def key(self) -> tuple[object, ...]:
        return ("release", self.token)


@dataclass(frozen=True)
class ConfirmRequest:
    """The customer says they will come to booking ``ref`` (a reminder's Confirm), as it was at
    ``version`` (its start, epoch seconds)."""

    ref: str
    phone: str
    version: int
    now: int
    expect: tuple[str, str] = ("ok", "")

    @property
    def key(self) -> tuple[object, ...]:
        return ("confirm", self.ref)


@dataclass(frozen=True)
class MarkRequest:
    """The owner marks booking ``ref`` (started, still confirmed) ``attended`` or ``no_show``."""

    ref: str
    attendance: str
    now: int
    expect: tuple[str, str] = ("ok", "")

    @property
    def key(self) -> tuple[object, ...]:
        return ("mark", self.ref)


@dataclass(frozen=True)
class Notice:
    """A message the business starts, queued in the same step as the write that causes it (the
    owner's alert of a new booking, the customer's notice of the business's cancel): the phone
    and the outbox message (JSON)."""

    phone: str
    message: str


Request = HoldRequest | BookRequest | CancelRequest | ReleaseRequest | ConfirmRequest | MarkRequest


def local_day(business: Business, at: datetime) -> date:
    return at.astimezone(business.timezone).date()


def hold_request(
    business: Business,
    service: Service,
    start: datetime,
    *,
    token: str,
    redis_ms: int,
    moving: Moving | None = None,
    skip: tuple[str, ...] = (),
) -> HoldRequest:
    """Hold ``service`` at ``start`` for ``hold_minutes`` from ``redis_ms`` (the Redis clock as read)."""
    a, b = occupancy(service, start)
    return HoldRequest(
        resource=service.resource,
        day=local_day(business, start),
        token=token,
        start=a,
        end=b,
        capacity=service.capacity,
        expires_ms=redis_ms + business.hold_minutes * 60_000,
        moving=moving,
        skip=skip,
    )


def book_request(
    business: Business,
    service: Service,
    start: datetime,
    *,
    token: str,
    ref: str,
    phone: str,
    name: str,
    language: str,
    now: datetime,
    moving: Moving | None = None,
) -> BookRequest:
    """Book ``service`` at ``start`` for ``phone`` from the hold ``token``, under the reference ``ref``."""
    a, b = occupancy(service, start)
    end = start + timedelta(minutes=service.minutes)
    day = local_day(business, start)
    return BookRequest(
        resource=service.resource,
        day=day,
        token=token,
        ref=ref,
        start=a,
        end=b,
        capacity=service.capacity,
        now=epoch(now),
        notice=business.min_notice_minutes * 60,
        max_active=business.max_active_bookings,
        cutoff=business.cancel_cutoff_minutes * 60,
        phone=phone,
        fields={
            "ref": ref,
            "phone": phone,
            "name": name,
            "service": service.id,
            "resource": service.resource,
            "start": str(epoch(start)),
            "end": str(epoch(end)),
            "day": day_code(day),
            "status": "confirmed",
            "language": language,
            "created_at": str(epoch(now)),
        },
        moving=moving,
        reminders=() if is_preview(phone) else schedule(business.reminders, start, now, business.timezone),
    )


def cancel_request(
    business: Business, booking: Booking, *, resource: str, phone: str, now: datetime, by_business: bool = False
) -> CancelRequest:
    """Cancel ``booking``: by its customer ``phone`` (not within the cut-off), or by the business
    (any time before it starts)."""
    return CancelRequest(
        ref=booking.ref,
        phone=booking.phone if by_business else phone,
        resource=resource,
        day=local_day(business, booking.start),
        now=epoch(now),
        cutoff=0 if by_business else business.cancel_cutoff_minutes * 60,
        by_business=by_business,
    )


def predict_cancel(booking: Booking | None, request: CancelRequest) -> str:
    """The cancel script's answer for ``booking`` as read: ``ok``, ``unknown``, ``too_late`` or its status."""
    if booking is None or booking.phone != request.phone:
        return "unknown"
    if booking.status != "confirmed":
        return booking.status
    if epoch(booking.start) - request.now < request.cutoff:
        return "too_late"
    return "ok"


def resource_of(booking: Booking, service: Service | None) -> str:
    """The resource ``booking`` occupies: as recorded, else (early bookings) as the catalog says."""
    if booking.resource:
        return booking.resource
    return service.resource if service else booking.service_id

"""A business's bookings as its owner reads them: by day, in the business's time zone; and the
owner's own writes (a cancel by the business).

Shared by the admin page and ``flask bookings …``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from .booking.formats import day_label, times_label
from .booking.records import Booking, epoch
from .booking.requests import cancel_request, resource_of
from .channels import proactive
from .logs import mask_phone
from .notify import customer_notice, reach
from .services import Services
from .tenants import Tenant

log = logging.getLogger(__name__)


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
    #: the customer wrote STOP: the business must not message them (notices, reminders)
    opted_out: bool = False
    #: the customer tapped Confirm on a reminder
    customer_confirmed: bool = False

    @property
    def shown_status(self) -> str:
        """``confirmed``, ``confirmed by customer``, ``cancelled``, ``rescheduled``."""
        return "confirmed by customer" if self.customer_confirmed and self.status == "confirmed" else self.status


@dataclass(frozen=True)
class Undelivered:
    """A message that did not reach its customer, ready to print."""

    when: str  # "Wed 14 Jan 10:05"
    phone: str  # masked
    why: str


@dataclass(frozen=True)
class Day:
    day: date
    label: str  # "Wed 14 Jan"
    entries: list[Entry]


def day_start(shop: Tenant, day: date) -> datetime:
    """Local midnight of ``day`` in the business's time zone."""
    return datetime.combine(day, time(0), shop.business.timezone)


def today(services: Services, shop: Tenant) -> date:
    return shop.availability.local_day(services.clock())


def between(shop: Tenant, start: datetime, end: datetime) -> list[Booking]:
    """Every booking (any status) starting in ``[start, end)``, by start. Two round trips."""
    refs = shop.bookings.refs_between(epoch(start), epoch(end))
    return [Booking.from_hash(data) for data in shop.bookings.bookings(refs) if data]


def bookings_from(shop: Tenant, first: date, days: int) -> list[Booking]:
    """Every booking starting on ``days`` local days from ``first`` (two round trips)."""
    return between(shop, day_start(shop, first), day_start(shop, first + timedelta(days=days)))


def agenda(services: Services, shop: Tenant, first: date, days: int) -> list[Day]:
    """Bookings of ``days`` days from ``first``, grouped by local day; days without any are left out."""
    tz = shop.business.timezone
    t = services.catalogs.get(shop.default_language)
    now = services.clock()
    grouped: dict[date, list[Entry]] = {}
    found = bookings_from(shop, first, days)
    stopped = opted_out(services, shop, {booking.phone for booking in found})
    for booking in found:
        service = shop.catalog.service(booking.service_id)
        entry = Entry(
            ref=booking.ref,
            time=times_label(booking.start, booking.end, tz, t),
            service=service.name(t.code) if service else booking.service_id,
            name=booking.name or "—",
            phone=mask_phone(booking.phone),
            status=booking.status,
            cancellable=booking.status == "confirmed" and booking.start > now,
            opted_out=booking.phone in stopped,
            customer_confirmed=booking.customer_confirmed,
        )
        grouped.setdefault(shop.availability.local_day(booking.start), []).append(entry)
    return [Day(day, day_label(day, t), entries) for day, entries in sorted(grouped.items())]


def opted_out(services: Services, shop: Tenant, phones: set[str]) -> set[str]:
    """Which of ``phones`` wrote STOP to the business (one round trip; none for no phones)."""
    if not phones:
        return set()
    ordered = sorted(phones)
    flags = services.redis.hmget(shop.keys.optout, ordered)
    return {phone for phone, flag in zip(ordered, flags, strict=True) if flag}


def cancel_for_business(services: Services, shop: Tenant, ref: str) -> tuple[str, Booking | None, str]:
    """The business cancels ``ref``: no cut-off, but never one that has started. The customer's
    notice is queued in the same step; the third value says whether it will reach them (see
    :func:`bot.notify.reach`). Three round trips."""
    data = shop.bookings.booking(ref)
    if not data:
        return "unknown", None, ""
    booking = Booking.from_hash(data)
    service = shop.catalog.service(booking.service_id)
    request = cancel_request(
        shop.business,
        booking,
        resource=resource_of(booking, service),
        phone=booking.phone,
        now=services.clock(),
        by_business=True,
    )
    notice = customer_notice(shop, services.catalogs, booking, proactive.CANCELLED)
    reached = reach(services, shop, booking.phone, proactive.CANCELLED, booking.language)
    notices = (notice,) if notice and reached == "yes" else ()
    now = services.outboxes[shop.id].now_arg() if notices else ""
    result = shop.bookings.write(request, notices=notices, now=now).status
    if result == "ok":
        services.stats.incr("bookings.cancelled", business=shop.id)
        services.stats.incr("notify.queued" if reached == "yes" else f"notify.{reached}")
        if reached != "yes":
            log.info("%s is not told of the business's cancel: %s", mask_phone(booking.phone), reached)
    return result, booking, reached


_REFUSALS = {
    "unknown": "there is no such booking",
    "cancelled": "it was already cancelled",
    "rescheduled": "the customer moved it",
    "too_late": "it has already started",
}


def why_not(status: str) -> str:
    """Why the business could not cancel, from the cancel script's answer."""
    return _REFUSALS.get(status, "it cannot be cancelled")


@dataclass(frozen=True)
class Waiting:
    """A template the business needs that WhatsApp has not approved (yet), ready to print."""

    name: str
    status: str  # not synced, unsubmitted, received, pending, rejected, paused, disabled
    reason: str


def templates_needed(shop: Tenant) -> list[str]:
    """The business-initiated templates this business sends: its reminders and cancel notices in
    each language it speaks, and its owner's alerts in its default language."""
    if not shop.channel.out_of_band:
        return []
    kinds = ([proactive.REMINDER] if shop.business.reminders else []) + [proactive.CANCELLED]
    names = [proactive.friendly_name(kind, language) for language in shop.languages for kind in kinds]
    if shop.business.owner_whatsapp:
        names.append(proactive.friendly_name(proactive.OWNER, shop.default_language))
    return names


def waiting_templates(services: Services, shop: Tenant) -> list[Waiting]:
    """Those of :func:`templates_needed` WhatsApp has not approved: they go only to customers who
    wrote in the last 24 hours. One round trip."""
    known = services.approvals.all()
    waiting = []
    for name in templates_needed(shop):
        approval = known.get(name)
        if approval is None:
            waiting.append(Waiting(name, "not synced", "run flask templates sync"))
        elif not approval.approved:
            waiting.append(Waiting(name, approval.status, approval.reason))
    return waiting


def reminder_figures(services: Services, shop: Tenant) -> dict[str, int]:
    """``scheduled`` (not due yet) and the counts of reminders by outcome (one round trip)."""
    pipe = services.redis.pipeline(transaction=False)
    pipe.zcard(shop.keys.reminders)
    pipe.hgetall(shop.keys.reminder_counts)
    scheduled, counted = pipe.execute()
    return {"scheduled": int(scheduled), **{name: int(value) for name, value in counted.items()}}


def undelivered(services: Services, shop: Tenant, limit: int = 20) -> list[Undelivered]:
    """The business's messages given up lately (failed, undeliverable, or failed after Twilio
    accepted them), newest first; none outside Content API mode. One round trip."""
    outbox = services.outboxes.get(shop.id)
    if outbox is None or not shop.channel.out_of_band:
        return []
    tz = shop.business.timezone
    t = services.catalogs.get(shop.default_language)
    rows = []
    for given_up in outbox.undelivered(limit):
        local = given_up.at.astimezone(tz)
        rows.append(
            Undelivered(f"{day_label(local.date(), t)} {local:%H:%M}", mask_phone(given_up.phone), given_up.reason)
        )
    return rows

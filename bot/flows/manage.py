"""My bookings: the list, one booking's detail, cancel (asked twice) and reschedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..booking.formats import booking_label, slot_label
from ..booking.records import Booking, epoch
from ..booking.requests import CancelRequest, cancel_request, predict_cancel, resource_of
from ..booking.store import BookingRead, Read, UpcomingRead
from ..buttons import Button, LabelContext
from ..dispatch import Registry
from ..i18n import N_
from ..keys import day_code
from ..replies import Reply
from ..tenants import Tenant
from ..turn import Turn
from . import state
from .booking import DATES, refusal
from .core import MENU, NavButton

BOOKINGS, BOOKING, CANCEL = "bookings", "booking", "cancel"


@dataclass(frozen=True)
class BookingButton(Button, kind="bkg"):
    """``bkg1.9:K7Q2MX:1768386600``: one of the customer's bookings, titled by its start."""

    ref: str
    at: int

    def label(self, ctx: LabelContext) -> str:
        return slot_label(datetime.fromtimestamp(self.at, UTC), ctx.shop.business.timezone, ctx.t)


_MANAGE_TITLES = {
    "reschedule": N_("Reschedule"),
    "cancel": N_("Cancel booking"),
    "back": N_("Back"),
    "yes": N_("Yes, cancel it"),
    "keep": N_("No, keep it"),
}


@dataclass(frozen=True)
class ManageButton(Button, kind="mng"):
    """``mng1.9:cancel:K7Q2MX``: an action on one booking."""

    action: str
    ref: str

    def label(self, ctx: LabelContext) -> str:
        return ctx.t(_MANAGE_TITLES[self.action])


def describe(turn: Turn, booking: Booking) -> str:
    """``Haircut, Wed 14 Jan, 10:30–11:00 (K7Q2MX)``"""
    return booking_label(turn.shop.catalog, booking, turn.t)


def own_booking(turn: Turn, ref: str) -> Booking | None:
    """The customer's own booking ``ref``; None for anyone else's or an unknown one."""
    data = turn.reads.booking(ref) if ref else {}
    if not data or data.get("phone") != turn.message.phone:
        return None
    return Booking.from_hash(data)


# -- steps ------------------------------------------------------------------------------
def render_bookings(turn: Turn) -> Reply:
    cancelled = {r.ref for r in turn.effects.requests if isinstance(r, CancelRequest)}  # in this very tap
    found = turn.reads.upcoming(turn.message.phone, epoch(turn.now))
    bookings = [b for b in map(Booking.from_hash, found) if b.ref not in cancelled]
    if not bookings:
        return turn.goto(MENU).after(turn.t("You have no upcoming bookings."))
    lines = [turn.t("Your upcoming bookings:"), *(f"• {describe(turn, b)}" for b in bookings)]
    return Reply("\n".join(lines), tuple(BookingButton(b.ref, epoch(b.start)) for b in bookings))


def render_booking(turn: Turn) -> Reply:
    booking = own_booking(turn, turn.session.get("ref"))
    if booking is None:
        return turn.goto(BOOKINGS)
    if booking.status != "confirmed":
        return turn.goto(BOOKINGS).after(refusal(turn, booking.status))
    options = (
        ManageButton("reschedule", booking.ref),
        ManageButton("cancel", booking.ref),
        ManageButton("back", booking.ref),
    )
    return Reply(describe(turn, booking), options)


def render_cancel(turn: Turn) -> Reply:
    booking = own_booking(turn, turn.session.get("ref"))
    if booking is None or booking.status != "confirmed":
        return turn.goto(BOOKINGS)
    question = turn.t("Cancel this booking?")
    return Reply(
        f"{question}\n{describe(turn, booking)}", (ManageButton("yes", booking.ref), ManageButton("keep", booking.ref))
    )


# -- handlers ---------------------------------------------------------------------------
def open_bookings(turn: Turn, button: NavButton) -> Reply:
    state.end_flow(turn)
    return turn.goto(BOOKINGS)


def open_booking(turn: Turn, button: BookingButton) -> Reply:
    turn.session.set("ref", button.ref)
    return turn.goto(BOOKING)


def ask_cancel(turn: Turn, button: ManageButton) -> Reply:
    return turn.goto(CANCEL)


def _resource(turn: Turn, booking: Booking) -> str:
    return resource_of(booking, turn.shop.catalog.service(booking.service_id))


def cancel(turn: Turn, button: ManageButton) -> Reply:
    booking = own_booking(turn, button.ref)
    turn.session.set("ref", None)
    if booking is None:
        return turn.goto(BOOKINGS).after(refusal(turn, "unknown"))
    request = cancel_request(
        turn.shop.business, booking, resource=_resource(turn, booking), phone=turn.message.phone, now=turn.now
    )
    status, _ = turn.effects.ask(request, (predict_cancel(booking, request), ""))
    if status == "ok":
        notice = turn.t("Your booking is cancelled: {booking}").format(booking=describe(turn, booking))
    elif status == "cancelled":
        notice = turn.t("That booking was already cancelled.")
    else:
        notice = refusal(turn, status)
    return turn.goto(BOOKINGS).after(notice)


def keep(turn: Turn, button: ManageButton) -> Reply:
    return turn.goto(BOOKING)


def reschedule(turn: Turn, button: ManageButton) -> Reply:
    booking = own_booking(turn, button.ref)
    if booking is None or booking.status != "confirmed":
        return turn.goto(BOOKINGS).after(refusal(turn, booking.status if booking else "unknown"))
    if booking.start - turn.now < timedelta(minutes=turn.shop.business.cancel_cutoff_minutes):
        return turn.goto(BOOKING).after(refusal(turn, "too_late"))
    state.end_flow(turn)
    resource = _resource(turn, booking)
    turn.session.set("moving", booking.ref)
    turn.session.set("moving_res", resource)
    turn.session.set("moving_day", day_code(turn.shop.availability.local_day(booking.start)))
    service = turn.shop.catalog.service(booking.service_id)
    if service is None or resource == service.resource:  # else its place is on another resource
        turn.session.set("moving_place", booking.place)
    turn.session.set("service", booking.service_id)
    return turn.goto(DATES)


def back_to_list(turn: Turn, button: ManageButton) -> Reply:
    return turn.goto(BOOKINGS)


def _is(action: str) -> Callable[[Turn, ManageButton], bool]:
    return lambda turn, button: button.action == action


def _upcoming_ahead(shop: Tenant, button: NavButton, phone: str, now: datetime) -> list[Read]:
    return [UpcomingRead(phone, epoch(now))] if button.to == "bookings" else []


def _booking_ahead(shop: Tenant, button: BookingButton | ManageButton, phone: str, now: datetime) -> list[Read]:
    reads: list[Read] = [BookingRead(button.ref)]
    if isinstance(button, ManageButton) and button.action in ("yes", "back"):  # the list follows
        reads.append(UpcomingRead(phone, epoch(now)))
    return reads


def register(registry: Registry) -> None:
    registry.step(BOOKINGS, back=MENU)(render_bookings)
    registry.step(BOOKING, back=BOOKINGS)(render_booking)
    registry.step(CANCEL, back=BOOKING)(render_cancel)
    registry.on(NavButton, check=lambda turn, b: b.to == "bookings")(open_bookings)
    registry.on(BookingButton)(open_booking)
    registry.on(ManageButton, check=_is("cancel"))(ask_cancel)
    registry.on(ManageButton, check=_is("yes"))(cancel)
    registry.on(ManageButton, check=_is("keep"))(keep)
    registry.on(ManageButton, check=_is("reschedule"))(reschedule)
    registry.on(ManageButton, check=_is("back"))(back_to_list)
    registry.read_ahead(NavButton)(_upcoming_ahead)
    registry.read_ahead(BookingButton)(_booking_ahead)
    registry.read_ahead(ManageButton)(_booking_ahead)

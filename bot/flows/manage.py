"""My bookings: the list, one booking's detail, cancel (asked twice) and reschedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..booking.desk import Booking
from ..booking.formats import booking_label, slot_label
from ..buttons import Button, LabelContext
from ..dispatch import Registry
from ..i18n import N_
from ..replies import Reply
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
        return slot_label(datetime.fromtimestamp(self.at, UTC), ctx.desk.business.timezone, ctx.t)


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
    return booking_label(turn.desk.catalog, booking, turn.t)


# -- steps ------------------------------------------------------------------------------
def render_bookings(turn: Turn) -> Reply:
    bookings = turn.desk.upcoming(turn)
    if not bookings:
        return turn.goto(MENU).after(turn.t("You have no upcoming bookings."))
    lines = [turn.t("Your upcoming bookings:"), *(f"• {describe(turn, b)}" for b in bookings)]
    return Reply("\n".join(lines), tuple(BookingButton(b.ref, int(b.start.timestamp())) for b in bookings))


def _current_booking(turn: Turn) -> Booking | None:
    ref = turn.session.get("ref")
    return turn.desk.booking(turn, ref) if ref else None


def render_booking(turn: Turn) -> Reply:
    booking = _current_booking(turn)
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
    booking = _current_booking(turn)
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


def cancel(turn: Turn, button: ManageButton) -> Reply:
    booking = turn.desk.booking(turn, button.ref)
    if booking is None:
        return turn.goto(BOOKINGS).after(refusal(turn, "unknown"))
    result = turn.desk.cancel(turn, booking)
    turn.session.set("ref", None)
    if result == "ok":
        notice = turn.t("Your booking is cancelled: {booking}").format(booking=describe(turn, booking))
    elif result == "cancelled":
        notice = turn.t("That booking was already cancelled.")
    else:
        notice = refusal(turn, result)
    return turn.goto(BOOKINGS).after(notice)


def keep(turn: Turn, button: ManageButton) -> Reply:
    return turn.goto(BOOKING)


def reschedule(turn: Turn, button: ManageButton) -> Reply:
    booking = turn.desk.booking(turn, button.ref)
    if booking is None or booking.status != "confirmed":
        return turn.goto(BOOKINGS).after(refusal(turn, booking.status if booking else "unknown"))
    if turn.desk.too_close_to_change(turn, booking):
        return turn.goto(BOOKING).after(refusal(turn, "too_late"))
    state.end_flow(turn)
    turn.session.set("resched", booking.ref)
    service = turn.desk.catalog.service(booking.service_id)
    if service is None or turn.desk.resource_of(booking) == service.resource:  # else its place is elsewhere
        turn.session.set("rocc", booking.place)
    turn.session.set("svc", booking.service_id)
    return turn.goto(DATES)


def back_to_list(turn: Turn, button: ManageButton) -> Reply:
    return turn.goto(BOOKINGS)


def _is(action: str):  # type: ignore[no-untyped-def]
    return lambda turn, button: button.action == action


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

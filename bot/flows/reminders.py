"""A reminder's buttons: Confirm, Reschedule, Cancel, answered with no live session.

The reminder went out as a template a day (or hours) before, usually long after the conversation
that booked ended. Its buttons name the booking and its version (the start it had when the
reminder was queued), so a tap is checked against the booking itself, not a session's turn: a
booking moved or cancelled since gets a clear answer instead of an action on the wrong time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..booking.formats import slot_label
from ..booking.records import Booking, epoch
from ..booking.requests import ConfirmRequest
from ..booking.store import BookingRead, Read
from ..buttons import Button, LabelContext
from ..channels.proactive import REMINDER_ACTS
from ..dispatch import Registry
from ..replies import Reply
from ..tenants import Tenant
from ..turn import Turn
from .booking import refusal
from .core import MENU
from .manage import BOOKING, CANCEL, ManageButton, describe, reschedule

#: how many moves a tap on an old reminder follows to find where the booking is now
MOST_MOVES = 5


@dataclass(frozen=True)
class ReminderButton(Button, kind="rem", step_bound=False):
    """``rem1:c:K7Q2MX:1768386600``: ``c`` confirm, ``m`` reschedule, ``x`` cancel booking ``ref``
    as it was when the reminder went (``at``: its start, epoch seconds: the booking's version)."""

    act: str
    ref: str
    at: int

    def label(self, ctx: LabelContext) -> str:
        return str(ctx.t(dict(REMINDER_ACTS)[self.act]))


def reminder_buttons(ref: str, at: int) -> tuple[ReminderButton, ...]:
    """The reminder's three buttons, in the template's order."""
    return tuple(ReminderButton(act, ref, at) for act, _ in REMINDER_ACTS)


def _now_of(turn: Turn, ref: str) -> tuple[Booking | None, bool]:
    """The customer's booking ``ref`` where it is now (following its moves), and whether it moved."""
    data = turn.reads.booking(ref)
    moved = False
    for _ in range(MOST_MOVES):
        if not data or data.get("phone") != turn.message.phone:
            return None, moved
        target = data.get("rescheduled_to", "")
        if data.get("status") != "rescheduled" or not target:
            break
        data, moved = turn.reads.booking(target), True
    if not data or data.get("phone") != turn.message.phone:
        return None, moved
    return Booking.from_hash(data), moved


def answer(turn: Turn, button: ReminderButton) -> Reply:
    booking, moved = _now_of(turn, button.ref)
    if booking is None:
        return turn.goto(MENU).after(refusal(turn, "unknown"))
    if booking.status == "cancelled":
        return turn.goto(MENU).after(turn.t("This booking was cancelled."))
    if booking.status != "confirmed":
        return turn.goto(MENU).after(refusal(turn, booking.status))
    if moved or epoch(booking.start) != button.at:
        turn.session.set("ref", booking.ref)
        moved_to = turn.t("This booking was moved to {booking}.").format(booking=describe(turn, booking))
        return turn.goto(BOOKING).after(moved_to)
    if booking.start <= turn.now:
        return turn.goto(MENU).after(turn.t("This booking has already started."))
    if button.act == "m":
        return reschedule(turn, ManageButton("reschedule", booking.ref))
    if button.act == "x":
        turn.session.set("ref", booking.ref)
        if (booking.start - turn.now).total_seconds() < turn.shop.business.cancel_cutoff_minutes * 60:
            return turn.goto(BOOKING).after(refusal(turn, "too_late"))
        return turn.goto(CANCEL)
    request = ConfirmRequest(booking.ref, turn.message.phone, button.at, epoch(turn.now))
    status, _ = turn.effects.ask(request, ("ok", ""))
    if status != "ok":
        return turn.goto(MENU).after(refusal(turn, status))
    when = slot_label(booking.start, turn.shop.business.timezone, turn.t)
    return turn.goto(MENU).after(turn.t("Thanks for confirming! See you on {when}.").format(when=when))


def _booking_ahead(shop: Tenant, button: ReminderButton, phone: str, now: datetime) -> list[Read]:
    return [BookingRead(button.ref)]


def register(registry: Registry) -> None:
    registry.on(ReminderButton, check=lambda turn, b: b.act in ("c", "m", "x"))(answer)
    registry.read_ahead(ReminderButton)(_booking_ahead)

"""Book: service → date → time → a held summary → confirm. Also the time-picking half of a reschedule.

Lists are advice; the hold and the booking are decided by the store's scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ..booking.desk import Booking, BookingDesk, ReadAhead, epoch, hold_token
from ..booking.formats import day_label, slot_label, span_label, time_label
from ..buttons import Button, LabelContext
from ..dispatch import Registry
from ..i18n import N_
from ..replies import Reply
from ..turn import Turn
from . import state
from .core import MENU, NavButton
from .paging import PageButton, paginate

SERVICES, DATES, TIMES, SUMMARY, ALTERNATIVES = "services", "dates", "times", "summary", "alternatives"


@dataclass(frozen=True)
class ServiceButton(Button, kind="svc"):
    """``svc1.4:cut``"""

    service: str

    def label(self, ctx: LabelContext) -> str:
        service = ctx.desk.catalog.service(self.service)
        return service.name(ctx.t.code) if service else self.service


@dataclass(frozen=True)
class DayButton(Button, kind="day"):
    """``day1.5:cut:20260114``: a local date for a service (all a times list needs to know)."""

    service: str
    day: str

    def label(self, ctx: LabelContext) -> str:
        return day_label(datetime.strptime(self.day, "%Y%m%d").date(), ctx.t)


@dataclass(frozen=True)
class TimeButton(Button, kind="time"):
    """``time1.6:1768386600``: a start instant (epoch seconds), titled ``10:30``."""

    at: int

    def label(self, ctx: LabelContext) -> str:
        return time_label(datetime.fromtimestamp(self.at, UTC), ctx.desk.business.timezone, ctx.t)


@dataclass(frozen=True)
class SlotButton(Button, kind="slot"):
    """``slot1.7:1768386600``: a start on any day, titled ``Wed 14 Jan 10:30``."""

    at: int

    def label(self, ctx: LabelContext) -> str:
        return slot_label(datetime.fromtimestamp(self.at, UTC), ctx.desk.business.timezone, ctx.t)


_HOLD_TITLES = {"confirm": N_("Confirm"), "change": N_("Change"), "cancel": N_("Cancel")}


@dataclass(frozen=True)
class HoldButton(Button, kind="hold"):
    """``hold1.8:confirm`` (or ``change``, ``cancel``) on the summary of a held time."""

    action: str

    def label(self, ctx: LabelContext) -> str:
        return ctx.t(_HOLD_TITLES[self.action])


# -- steps ------------------------------------------------------------------------------
def render_services(turn: Turn) -> Reply:
    buttons = [ServiceButton(s.id) for s in turn.desk.catalog.services]
    items, nav = paginate(buttons, state.page(turn))
    return Reply(turn.t("Which service would you like?"), (*items, *nav))


def render_dates(turn: Turn) -> Reply:
    service = state.service(turn)
    if service is None:
        return turn.goto(SERVICES)
    days = turn.desk.free_days(turn, service, skip=_skip(turn))
    if not days:
        text = turn.t("Sorry, {service} has no free times in the next {days} days.")
        return turn.goto(SERVICES).after(
            text.format(service=service.name(turn.t.code), days=turn.desk.business.horizon_days)
        )
    items, nav = paginate([DayButton(service.id, d.strftime("%Y%m%d")) for d in days], state.page(turn))
    return Reply(turn.t("{service}: which day suits you?").format(service=service.name(turn.t.code)), (*items, *nav))


def render_times(turn: Turn) -> Reply:
    service, day = state.service(turn), state.day(turn)
    if service is None or day is None:
        return turn.goto(DATES)
    times = turn.desk.free_times(turn, service, day, skip=_skip(turn))
    if not times:
        notice = turn.t("Sorry, {day} has just filled up.").format(day=day_label(day, turn.t))
        turn.session.set("page", None)
        return turn.goto(DATES).after(notice)
    items, nav = paginate([TimeButton(epoch(t)) for t in times], state.page(turn))
    return Reply(turn.t("Which time on {day}?").format(day=day_label(day, turn.t)), (*items, *nav))


def render_summary(turn: Turn) -> Reply:
    service, at, hold = state.service(turn), state.epoch_field(turn, "at"), state.held(turn)
    if service is None or at is None or hold is None:
        return turn.goto(TIMES)
    tz = turn.desk.business.timezone
    expires = datetime.fromtimestamp(int(turn.session.get("hexp", "0")) / 1000, UTC)
    lines = [
        turn.t("Please check your new time:") if turn.session.get("resched") else turn.t("Please check your booking:"),
        f"{service.name(turn.t.code)}, {service.price}",
        span_label(at, at + timedelta(minutes=service.minutes), tz, turn.t),
        turn.t("Held for you until {time}.").format(time=time_label(expires, tz, turn.t)),
    ]
    return Reply("\n".join(lines), (HoldButton("confirm"), HoldButton("change"), HoldButton("cancel")))


def render_alternatives(turn: Turn) -> Reply:
    service, anchor = state.service(turn), state.epoch_field(turn, "alt")
    if service is None or anchor is None:
        return turn.goto(DATES)
    times = turn.desk.nearest(turn, service, anchor, skip=_skip(turn))
    if not times:
        return turn.goto(DATES)
    return Reply(turn.t("The nearest free times:"), tuple(SlotButton(epoch(t)) for t in times))


def _skip(turn: Turn) -> frozenset[str]:
    """What must not count as taken for this customer: their own hold and the booking being moved."""
    return frozenset(filter(None, (turn.session.get(name) for name in ("hold", "resched", "rocc"))))


def _back_from_dates(turn: Turn) -> Reply:
    """Back from the dates: to the services, or, when moving a booking, to that booking."""
    moving = turn.session.get("resched")
    if moving:
        state.end_flow(turn)
        turn.session.set("ref", moving)
        return turn.goto("booking")
    return turn.goto(SERVICES)


def _back_from_summary(turn: Turn) -> Reply:
    state.drop_hold(turn)
    return turn.goto(TIMES)


# -- handlers ---------------------------------------------------------------------------
def start_booking(turn: Turn, button: NavButton) -> Reply:
    state.end_flow(turn)
    return turn.goto(SERVICES)


def pick_service(turn: Turn, button: ServiceButton) -> Reply:
    turn.session.set("svc", button.service)
    turn.session.set("page", None)
    return turn.goto(DATES)


def pick_day(turn: Turn, button: DayButton) -> Reply:
    turn.session.set("svc", button.service)
    turn.session.set("day", button.day)
    turn.session.set("page", None)
    return turn.goto(TIMES)


def turn_page(turn: Turn, button: PageButton) -> Reply:
    turn.session.set("page", str(button.page))
    return turn.current()


def pick_time(turn: Turn, button: TimeButton | SlotButton) -> Reply:
    service = state.service(turn)
    if service is None:
        return turn.goto(SERVICES)
    at = datetime.fromtimestamp(button.at, UTC)
    day = turn.desk.local_day(at).strftime("%Y%m%d")
    turn.session.set("day", day)
    turn.session.set("page", None)
    if not turn.desk.is_offerable(turn, service, at):
        return turn.goto(TIMES).after(turn.t("Sorry, that time is no longer available."))
    token = hold_token(turn.message.message_sid)
    outcome = turn.desk.hold(
        turn, service, at, token=token, release=state.held(turn), exclude=turn.session.get("resched")
    )
    if outcome.status != "held":
        state.forget(turn, state.HOLD_FIELDS)
        return turn.goto(TIMES).after(turn.t("Sorry, that time was just taken."))
    turn.session.set("hold", token)
    turn.session.set("hday", day)
    turn.session.set("at", str(button.at))
    turn.session.set("hexp", outcome.value)
    return turn.goto(SUMMARY)


def confirm(turn: Turn, button: HoldButton) -> Reply:
    service, at, hold = state.service(turn), state.epoch_field(turn, "at"), state.held(turn)
    if service is None or at is None or hold is None:
        return turn.goto(SERVICES)
    moving: Booking | None = None
    if turn.session.get("resched"):
        moving = turn.desk.booking(turn, turn.session.get("resched"))
        if moving is None:
            state.end_flow(turn)
            return turn.goto(MENU)
    outcome = turn.desk.book(turn, service, at, token=hold[1], move=moving)
    tz = turn.desk.business.timezone
    when = span_label(at, at + timedelta(minutes=service.minutes), tz, turn.t)
    what = f"{service.name(turn.t.code)}, {when}"
    if outcome.status == "booked":
        state.forget(turn, state.FLOW_FIELDS)  # the hold became the booking: nothing to release
        done = turn.t("Moved! ✅ {what}.") if moving else turn.t("Booked! ✅ {what}.")
        reference = turn.t("Your booking reference: {ref}").format(ref=outcome.value)
        return turn.goto(MENU).after(done.format(what=what), reference)
    if outcome.status == "taken":
        state.forget(turn, state.HOLD_FIELDS)
        turn.session.set("alt", str(epoch(at)))
        sorry = turn.t("Sorry, {time} on {day} was just taken.").format(
            time=time_label(at, tz, turn.t), day=day_label(turn.desk.local_day(at), turn.t)
        )
        return turn.goto(ALTERNATIVES).after(sorry)
    if outcome.status == "too_late":
        state.drop_hold(turn)
        return turn.goto(TIMES).after(turn.t("Sorry, that time is now too soon to book."))
    state.end_flow(turn)
    # not_active carries the booking's status (cancelled, rescheduled) as its value
    return turn.goto(MENU).after(refusal(turn, outcome.value or outcome.status))


def refusal(turn: Turn, status: str) -> str:
    """One line saying why a booking, move or cancellation was refused, from the store's answer."""
    business = turn.desk.business
    if status == "limit":
        return turn.t("You already have {count} upcoming bookings, the most we allow. Please cancel one first.").format(
            count=business.max_active_bookings
        )
    if status in ("too_late_to_change", "too_late"):
        return turn.t("Sorry, bookings can't be changed online less than {hours} before they start.").format(
            hours=_duration(turn, business.cancel_cutoff_minutes)
        )
    if status == "cancelled":
        return turn.t("That booking was cancelled, so it can't be changed.")
    if status == "rescheduled":
        return turn.t("That booking was moved to another time; see My bookings.")
    return turn.t("Sorry, we couldn't find that booking.")


def _duration(turn: Turn, minutes: int) -> str:
    if minutes % 60 == 0:
        return turn.t("{n} h").format(n=minutes // 60)
    return turn.t("{n} min").format(n=minutes)


def change_time(turn: Turn, button: HoldButton) -> Reply:
    state.drop_hold(turn)
    return turn.goto(TIMES)


def cancel_hold(turn: Turn, button: HoldButton) -> Reply:
    moving = bool(turn.session.get("resched"))
    state.end_flow(turn)
    notice = (
        turn.t("No problem, your booking stays as it was.") if moving else turn.t("No problem, nothing was booked.")
    )
    return turn.goto(MENU).after(notice)


def _times_ahead(desk: BookingDesk, button: DayButton, now: datetime) -> ReadAhead | None:
    try:
        day = datetime.strptime(button.day, "%Y%m%d").date()
    except ValueError:
        return None
    if not date.min < day < date.max:  # a forged day without neighbours: the tap itself is refused
        return None
    return desk.times_ahead(button.service, day)


def register(registry: Registry) -> None:
    registry.step(SERVICES, back=MENU)(render_services)
    registry.step(DATES, back=_back_from_dates)(render_dates)
    registry.step(TIMES, back=DATES)(render_times)
    registry.step(SUMMARY, back=_back_from_summary)(render_summary)
    registry.step(ALTERNATIVES, back=DATES)(render_alternatives)
    registry.on(NavButton, check=lambda turn, b: b.to == "book")(start_booking)
    registry.on(ServiceButton, check=lambda turn, b: turn.desk.catalog.service(b.service) is not None)(pick_service)
    registry.on(DayButton)(pick_day)
    registry.read_ahead(ServiceButton)(lambda desk, b, now: desk.days_ahead(b.service, now))
    registry.read_ahead(DayButton)(_times_ahead)
    registry.on(PageButton)(turn_page)
    registry.on(TimeButton)(pick_time)
    registry.on(SlotButton)(pick_time)
    registry.on(HoldButton, check=lambda turn, b: b.action == "confirm")(confirm)
    registry.on(HoldButton, check=lambda turn, b: b.action == "change")(change_time)
    registry.on(HoldButton, check=lambda turn, b: b.action == "cancel")(cancel_hold)

"""Book: service → date → time → a held summary → confirm. Also the time-picking half of a reschedule.

Lists are advice from what the tap read; a hold or a booking is asked for with the outcome the
reply announces, and the store applies it only if that is still the outcome (``bot.effects``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ..booking.catalog import Service
from ..booking.formats import day_label, slot_label, span_label, time_label
from ..booking.occupancy import Occupancy
from ..booking.records import Booking, epoch, hold_token
from ..booking.requests import Moving, book_request, hold_request, resource_of
from ..booking.store import OccupancyRead, Read
from ..buttons import Button, LabelContext
from ..dispatch import Registry
from ..i18n import N_
from ..keys import day_code, parse_day_code
from ..replies import Reply
from ..tenants import Tenant
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
        service = ctx.shop.catalog.service(self.service)
        return service.name(ctx.t.code) if service else self.service


@dataclass(frozen=True)
class DayButton(Button, kind="day"):
    """``day1.5:cut:20260114``: a local date for a service (all a times list needs to know)."""

    service: str
    day: str

    def label(self, ctx: LabelContext) -> str:
        day = parse_day_code(self.day)
        return day_label(day, ctx.t) if day else self.day


@dataclass(frozen=True)
class TimeButton(Button, kind="time", version=2):
    """``time2.6:cut:1768386600``: a start instant (epoch seconds) of a service, titled ``10:30``.

    It names its service so that the tap's load can read that day's occupancy with the session."""

    service: str
    at: int

    def label(self, ctx: LabelContext) -> str:
        return time_label(datetime.fromtimestamp(self.at, UTC), ctx.shop.business.timezone, ctx.t)


@dataclass(frozen=True)
class SlotButton(Button, kind="slot", version=2):
    """``slot2.7:cut:1768386600``: a start on any day, titled ``Wed 14 Jan 10:30``."""

    service: str
    at: int

    def label(self, ctx: LabelContext) -> str:
        return slot_label(datetime.fromtimestamp(self.at, UTC), ctx.shop.business.timezone, ctx.t)


_HOLD_TITLES = {"confirm": N_("Confirm"), "change": N_("Change"), "cancel": N_("Cancel")}


@dataclass(frozen=True)
class HoldButton(Button, kind="hold"):
    """``hold1.8:confirm`` (or ``change``, ``cancel``) on the summary of a held time."""

    action: str

    def label(self, ctx: LabelContext) -> str:
        return ctx.t(_HOLD_TITLES[self.action])


# -- what the steps read ----------------------------------------------------------------------
def _seen(turn: Turn, service: Service, days: list[date]) -> Occupancy:
    """The occupancy around ``days`` (read with the session when the tapped button named them)."""
    return turn.reads.occupancy(service.resource, turn.shop.availability.days_to_read(days))


def _skip(turn: Turn) -> frozenset[str]:
    """What must not count as taken for this customer: their own hold (also one this tap gives back:
    it goes in the same write) and the booking being moved."""
    names = (turn.session.get(name) for name in ("hold", "moving", "moving_place"))
    return frozenset(filter(None, (*names, turn.session.loaded("hold"))))


# -- steps ------------------------------------------------------------------------------
def render_services(turn: Turn) -> Reply:
    buttons = [ServiceButton(s.id) for s in turn.shop.catalog.services]
    items, nav = paginate(buttons, state.page(turn))
    return Reply(turn.t("Which service would you like?"), (*items, *nav))


def render_dates(turn: Turn) -> Reply:
    service = state.service(turn)
    if service is None:
        return turn.goto(SERVICES)
    shop = turn.shop
    open_days = shop.availability.open_days(turn.now)
    days = (
        shop.availability.free_days(service, turn.now, _seen(turn, service, open_days), _skip(turn))
        if open_days
        else []
    )
    if not days:
        text = turn.t("Sorry, {service} has no free times in the next {days} days.")
        return turn.goto(SERVICES).after(
            text.format(service=service.name(turn.t.code), days=shop.business.horizon_days)
        )
    items, nav = paginate([DayButton(service.id, day_code(d)) for d in days], state.page(turn))
    return Reply(turn.t("{service}: which day suits you?").format(service=service.name(turn.t.code)), (*items, *nav))


def render_times(turn: Turn) -> Reply:
    service, day = state.service(turn), state.day(turn)
    if service is None or day is None:
        return turn.goto(DATES)
    times = turn.shop.availability.free_times(service, day, turn.now, _seen(turn, service, [day]), _skip(turn))
    if not times:
        notice = turn.t("Sorry, {day} has just filled up.").format(day=day_label(day, turn.t))
        turn.session.set("page", None)
        return turn.goto(DATES).after(notice)
    items, nav = paginate([TimeButton(service.id, epoch(t)) for t in times], state.page(turn))
    return Reply(turn.t("Which time on {day}?").format(day=day_label(day, turn.t)), (*items, *nav))


def render_summary(turn: Turn) -> Reply:
    service, at, hold = state.service(turn), state.epoch_field(turn, "at"), state.held(turn)
    if service is None or at is None or hold is None:
        return turn.goto(TIMES)
    tz = turn.shop.business.timezone
    until = turn.session.get("hold_until")
    expires = datetime.fromtimestamp(int(until) / 1000 if until.isascii() and until.isdigit() else 0, UTC)
    lines = [
        turn.t("Please check your new time:") if turn.session.get("moving") else turn.t("Please check your booking:"),
        f"{service.name(turn.t.code)}, {service.price}",
        span_label(at, at + timedelta(minutes=service.minutes), tz, turn.t),
        turn.t("Held for you until {time}.").format(time=time_label(expires, tz, turn.t)),
    ]
    return Reply("\n".join(lines), (HoldButton("confirm"), HoldButton("change"), HoldButton("cancel")))


def render_alternatives(turn: Turn) -> Reply:
    service, anchor = state.service(turn), state.epoch_field(turn, "near")
    if service is None or anchor is None:
        return turn.goto(DATES)
    availability = turn.shop.availability
    open_days = availability.open_days(turn.now)
    times = (
        availability.nearest(service, anchor, turn.now, _seen(turn, service, open_days), _skip(turn))
        if open_days
        else []
    )
    if not times:
        return turn.goto(DATES)
    return Reply(turn.t("The nearest free times:"), tuple(SlotButton(service.id, epoch(t)) for t in times))


def _back_from_dates(turn: Turn) -> Reply:
    """Back from the dates: to the services, or, when moving a booking, to that booking."""
    moving = turn.session.get("moving")
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
    turn.session.set("service", button.service)
    turn.session.set("page", None)
    return turn.goto(DATES)


def pick_day(turn: Turn, button: DayButton) -> Reply:
    turn.session.set("service", button.service)
    turn.session.set("day", button.day)
    turn.session.set("page", None)
    return turn.goto(TIMES)


def turn_page(turn: Turn, button: PageButton) -> Reply:
    turn.session.set("page", str(button.page))
    return turn.current()


def pick_time(turn: Turn, button: TimeButton | SlotButton) -> Reply:
    service = state.service(turn)
    if service is None or service.id != button.service:
        return turn.goto(SERVICES)
    shop, at = turn.shop, datetime.fromtimestamp(button.at, UTC)
    day = shop.availability.local_day(at)
    turn.session.set("day", day_code(day))
    turn.session.set("page", None)
    if not shop.availability.is_offerable(service, at, turn.now):
        return turn.goto(TIMES).after(turn.t("Sorry, that time is no longer available."))
    seen = _seen(turn, service, [day])
    previous = state.held(turn)
    request = hold_request(
        shop.business,
        service,
        at,
        token=hold_token(turn.message.message_sid),
        redis_ms=seen.redis_ms,
        moving=state.moving(turn),
        skip=(previous[1],) if previous else (),
    )
    fits = shop.availability.fits(service, at, seen, _skip(turn))
    status, _ = turn.effects.ask(request, ("held", "") if fits else ("taken", ""))
    if status != "held":
        state.drop_hold(turn)
        return turn.goto(TIMES).after(turn.t("Sorry, that time was just taken."))
    turn.session.set("hold", request.token)
    turn.session.set("hold_day", day_code(day))
    turn.session.set("at", str(button.at))
    turn.session.set("hold_until", str(request.expires_ms))
    return turn.goto(SUMMARY)


def confirm(turn: Turn, button: HoldButton) -> Reply:
    service, at, hold = state.service(turn), state.epoch_field(turn, "at"), state.held(turn)
    if service is None or at is None or hold is None:
        return turn.goto(SERVICES)
    moving = state.moving(turn)
    if turn.session.get("moving") and moving is None:  # a move begun before the upgrade: where is it?
        moving = _moving_from_store(turn)
        if moving is None:
            state.end_flow(turn)
            return turn.goto(MENU).after(refusal(turn, "unknown"))
    shop, token = turn.shop, hold[1]
    ref = turn.effects.fresh_ref(token)
    request = book_request(
        shop.business,
        service,
        at,
        token=token,
        ref=ref,
        phone=turn.message.phone,
        name=turn.customer_name,
        language=turn.t.code,
        now=turn.now,
        moving=moving,
    )
    status, value = turn.effects.ask(request, ("booked", ref))
    tz = shop.business.timezone
    what = f"{service.name(turn.t.code)}, {span_label(at, at + timedelta(minutes=service.minutes), tz, turn.t)}"
    if status == "booked":
        state.end_flow(turn)  # the hold became the booking
        done = turn.t("Moved! ✅ {what}.") if moving else turn.t("Booked! ✅ {what}.")
        reference = turn.t("Your booking reference: {ref}").format(ref=value)
        return turn.goto(MENU).after(done.format(what=what), reference)
    if status == "taken":
        state.drop_hold(turn)
        turn.session.set("near", str(epoch(at)))
        sorry = turn.t("Sorry, {time} on {day} was just taken.").format(
            time=time_label(at, tz, turn.t), day=day_label(shop.availability.local_day(at), turn.t)
        )
        return turn.goto(ALTERNATIVES).after(sorry)
    if status == "too_late":
        state.drop_hold(turn)
        return turn.goto(TIMES).after(turn.t("Sorry, that time is now too soon to book."))
    state.end_flow(turn)
    # not_active carries the booking's status (cancelled, rescheduled) as its value
    return turn.goto(MENU).after(refusal(turn, value or status))


def _moving_from_store(turn: Turn) -> Moving | None:
    data = turn.reads.booking(turn.session.get("moving"))
    if not data or data.get("phone") != turn.message.phone:
        return None
    booking = Booking.from_hash(data)
    resource = resource_of(booking, turn.shop.catalog.service(booking.service_id))
    return Moving(booking.ref, resource, turn.shop.availability.local_day(booking.start))


def refusal(turn: Turn, status: str) -> str:
    """One line saying why a booking, move or cancellation was refused, from the store's answer."""
    business = turn.shop.business
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
    moving = bool(turn.session.get("moving"))
    state.end_flow(turn)
    notice = (
        turn.t("No problem, your booking stays as it was.") if moving else turn.t("No problem, nothing was booked.")
    )
    return turn.goto(MENU).after(notice)


# -- what a tap will read, known from its button ------------------------------------------------
def _occupancy(shop: Tenant, service_id: str, days: list[date]) -> list[Read]:
    service = shop.catalog.service(service_id)
    if service is None or not days:
        return []
    return [OccupancyRead(service.resource, tuple(shop.availability.days_to_read(days)))]


def _dates_ahead(shop: Tenant, button: ServiceButton, phone: str, now: datetime) -> list[Read]:
    return _occupancy(shop, button.service, shop.availability.open_days(now))


def _times_ahead(shop: Tenant, button: DayButton, phone: str, now: datetime) -> list[Read]:
    day = state.parse_day(button.day)
    if day is None or not date.min < day < date.max:  # a forged day without neighbours: the tap is refused
        return []
    return _occupancy(shop, button.service, [day])


def _hold_ahead(shop: Tenant, button: TimeButton | SlotButton, phone: str, now: datetime) -> list[Read]:
    try:
        day = shop.availability.local_day(datetime.fromtimestamp(button.at, UTC))
    except (OverflowError, OSError, ValueError):  # a forged instant outside the calendar
        return []
    if not date.min < day < date.max:
        return []
    return _occupancy(shop, button.service, [day])


def register(registry: Registry) -> None:
    registry.step(SERVICES, back=MENU)(render_services)
    registry.step(DATES, back=_back_from_dates)(render_dates)
    registry.step(TIMES, back=DATES)(render_times)
    registry.step(SUMMARY, back=_back_from_summary)(render_summary)
    registry.step(ALTERNATIVES, back=DATES)(render_alternatives)
    registry.on(NavButton, check=lambda turn, b: b.to == "book")(start_booking)
    registry.on(ServiceButton, check=lambda turn, b: turn.shop.catalog.service(b.service) is not None)(pick_service)
    registry.on(DayButton)(pick_day)
    registry.read_ahead(ServiceButton)(_dates_ahead)
    registry.read_ahead(DayButton)(_times_ahead)
    registry.read_ahead(TimeButton)(_hold_ahead)
    registry.read_ahead(SlotButton)(_hold_ahead)
    registry.on(PageButton)(turn_page)
    registry.on(TimeButton)(pick_time)
    registry.on(SlotButton)(pick_time)
    registry.on(HoldButton, check=lambda turn, b: b.action == "confirm")(confirm)
    registry.on(HoldButton, check=lambda turn, b: b.action == "change")(change_time)
    registry.on(HoldButton, check=lambda turn, b: b.action == "cancel")(cancel_hold)

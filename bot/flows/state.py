"""The booking conversation's fields in the session, and leaving a flow cleanly.

A hold is never released here: the engine compares the hold the session had when the tap began
with the one it has now, and releases the old one in the same atomic step (see ``bot.engine``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from ..booking.catalog import Service
from ..booking.requests import Moving
from ..keys import parse_day_code
from ..turn import Turn

# service: service id; day: YYYYMMDD being looked at; page: list page; hold/hold_day/at/hold_until:
# the held time (token, its day, start epoch, expiry in Redis ms); moving: the REF being moved,
# moving_res/moving_day: where its place is counted, moving_place: its id among that day's entries
# (see Booking.place; only when the new time is on the same resource); ref: the booking being
# looked at; near: the start the alternatives are nearest to.
HOLD_FIELDS = ("hold", "hold_day", "at", "hold_until")
MOVING_FIELDS = ("moving", "moving_res", "moving_day", "moving_place")
FLOW_FIELDS = ("service", "day", "page", *HOLD_FIELDS, *MOVING_FIELDS, "ref", "near")


def service(turn: Turn) -> Service | None:
    return turn.shop.catalog.service(turn.session.get("service"))


def parse_day(value: str) -> date | None:
    return parse_day_code(value)


def day(turn: Turn) -> date | None:
    return parse_day(turn.session.get("day"))


def epoch_field(turn: Turn, name: str) -> datetime | None:
    value = turn.session.get(name)
    return datetime.fromtimestamp(int(value), UTC) if value.isascii() and value.isdigit() and len(value) < 12 else None


def page(turn: Turn) -> int:
    value = turn.session.get("page", "0")
    return int(value) if value.isascii() and value.isdigit() else 0


def held(turn: Turn) -> tuple[date, str] | None:
    """(day, token) of the customer's hold, if the session has one."""
    token, hold_day = turn.session.get("hold"), parse_day(turn.session.get("hold_day"))
    return (hold_day, token) if token and hold_day else None


def moving(turn: Turn) -> Moving | None:
    """The booking being moved, if the customer is rescheduling one whose place the session knows."""
    ref, resource, on = turn.session.get("moving"), turn.session.get("moving_res"), turn.session.get("moving_day")
    moving_day = parse_day(on)
    return Moving(ref, resource, moving_day) if ref and resource and moving_day else None


def forget(turn: Turn, names: tuple[str, ...]) -> None:
    """Remove ``names`` from the session."""
    for name in names:
        turn.session.set(name, None)


def drop_hold(turn: Turn) -> None:
    """Give the held time back (the engine releases it with this tap's write)."""
    forget(turn, HOLD_FIELDS)


def end_flow(turn: Turn) -> None:
    """Leave booking, rescheduling or managing: forget the flow's fields (and so any hold)."""
    forget(turn, FLOW_FIELDS)

"""The booking conversation's fields in the session, and leaving a flow cleanly."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ..booking.catalog import Service
from ..turn import Turn

# svc: service id; day: YYYYMMDD being looked at; page: list page; hold/hday/at/hexp: the held
# time (token, its day, start epoch, expiry in Redis ms); resched: the REF being moved, rocc: its
# place among the day's entries (see Booking.place);
# ref: the booking being looked at; alt: the start the alternatives are nearest to.
FLOW_FIELDS = ("svc", "day", "page", "hold", "hday", "at", "hexp", "resched", "rocc", "ref", "alt")


def service(turn: Turn) -> Service | None:
    return turn.desk.catalog.service(turn.session.get("svc"))


def day(turn: Turn) -> date | None:
    try:
        return datetime.strptime(turn.session.get("day"), "%Y%m%d").date()
    except ValueError:
        return None


def epoch_field(turn: Turn, name: str) -> datetime | None:
    value = turn.session.get(name)
    return datetime.fromtimestamp(int(value), UTC) if value.isdigit() else None


def page(turn: Turn) -> int:
    value = turn.session.get("page", "0")
    return int(value) if value.isdigit() else 0


def held(turn: Turn) -> tuple[date, str] | None:
    """(day, token) of the customer's live hold, if the session has one."""
    token, hday = turn.session.get("hold"), turn.session.get("hday")
    if not token or not hday:
        return None
    try:
        return datetime.strptime(hday, "%Y%m%d").date(), token
    except ValueError:
        return None


HOLD_FIELDS = ("hold", "hday", "at", "hexp")


def forget(turn: Turn, names: tuple[str, ...]) -> None:
    """Remove ``names`` from the session (without touching any hold in the store)."""
    for name in names:
        turn.session.set(name, None)


def drop_hold(turn: Turn) -> None:
    """Give the held time back at once (instead of waiting for it to expire)."""
    hold, svc = held(turn), service(turn)
    if hold and svc:
        turn.desk.release(turn, svc, *hold)
    forget(turn, HOLD_FIELDS)


def end_flow(turn: Turn) -> None:
    """Leave booking, rescheduling or managing: release any hold, forget the flow's fields."""
    drop_hold(turn)
    forget(turn, FLOW_FIELDS)

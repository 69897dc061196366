"""A business's numbers for its owner (issue 17): bookings per week, the no-show rate, and the share
of reminded bookings the customers confirmed; and a small inline SVG bar chart of the weeks.

Read from the bookings alone, in two round trips (the REFs of the period, then their records in
one pipeline), whatever their number. Weeks start on Monday in the business's time zone; a
booking counts in the week its start falls in, on the business's wall clock.

What counts:

* ``made``: confirmed and cancelled bookings; ``kept``: the confirmed ones. A moved booking's old
  record (``rescheduled``) is left out: the booking it became counts instead, in its own week.
* the no-show rate: confirmed bookings that ended by ``now`` and that the owner marked
  (``attendance`` is ``attended`` or ``no_show``; no field: not marked): the share marked
  ``no_show``; None when none is marked.
* the confirmed share: confirmed bookings of the period a reminder went for (a ``reminded:<offset>``
  field): the share the customer confirmed (``customer_confirmed_at`` set); None when no reminder went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from babel.core import UnknownLocaleError
from babel.dates import format_date
from markupsafe import Markup, escape

from .tenants import Tenant

ATTENDED = "attended"
NO_SHOW = "no_show"
REMINDED = "reminded:"


@dataclass(frozen=True)
class Week:
    """One Monday-start week of bookings."""

    start: date  # its Monday
    label: str  # "12 Jan"
    made: int  # confirmed + cancelled
    kept: int  # confirmed


@dataclass(frozen=True)
class Figures:
    """A business's numbers over its last weeks (see the module docstring)."""

    weeks: tuple[Week, ...]  # oldest first, ending with the current week
    no_show_rate: float | None
    no_shows: int
    marked: int
    confirmed_share: float | None
    confirmed: int  # confirmed by the customer, among the reminded
    reminded: int


def week_label(day: date, language: str = "en") -> str:
    """``12 Jan`` (in ``language`` when Babel knows it)."""
    try:
        return format_date(day, "d MMM", locale=language)
    except (UnknownLocaleError, ValueError):
        return format_date(day, "d MMM", locale="en")


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def figures(shop: Tenant, now: datetime, weeks: int = 8) -> Figures:
    """The numbers of the ``weeks`` weeks ending with the one ``now`` is in. Two round trips."""
    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    tz = shop.business.timezone
    this_week = monday(now.astimezone(tz).date())
    mondays = [this_week - timedelta(weeks=weeks - 1 - index) for index in range(weeks)]
    start = datetime.combine(mondays[0], time(0), tz)
    end = datetime.combine(this_week + timedelta(weeks=1), time(0), tz)
    records = shop.bookings.bookings(shop.bookings.refs_between(int(start.timestamp()), int(end.timestamp())))
    now_epoch = int(now.timestamp())

    made = dict.fromkeys(mondays, 0)
    kept = dict.fromkeys(mondays, 0)
    attended = no_shows = reminded = confirmed = 0
    for data in records:
        status = data.get("status", "")
        if status not in ("confirmed", "cancelled") or "start" not in data:
            continue  # rescheduled: its new booking counts; or a record gone
        week = monday(datetime.fromtimestamp(int(data["start"]), UTC).astimezone(tz).date())
        if week not in made:
            continue  # outside the period (only a record changed between the two reads)
        made[week] += 1
        if status != "confirmed":
            continue
        kept[week] += 1
        if int(data.get("end") or data["start"]) <= now_epoch:
            mark = data.get("attendance", "")
            attended += mark == ATTENDED
            no_shows += mark == NO_SHOW
        if any(name.startswith(REMINDED) for name in data):
            reminded += 1
            confirmed += bool(data.get("customer_confirmed_at"))

    marked = attended + no_shows
    language = shop.default_language
    return Figures(
        weeks=tuple(Week(day, week_label(day, language), made[day], kept[day]) for day in mondays),
        no_show_rate=no_shows / marked if marked else None,
        no_shows=no_shows,
        marked=marked,
        confirmed_share=confirmed / reminded if reminded else None,
        confirmed=confirmed,
        reminded=reminded,
    )


def rate_text(rate: float | None) -> str:
    """``12 %``, or ``—`` when there is no rate."""
    if rate is None:
        return "—"
    return f"{int(rate * 100 + 0.5)} %"


def _number(value: float) -> str:
    """A coordinate, short: ``12``, ``12.5``."""
    return f"{value:.1f}".removesuffix(".0")


def bar_chart(weeks: Sequence[Week], *, width: int = 320, height: int = 120) -> Markup:
    """An accessible inline SVG: a bar per week of the bookings made, the kept part darker, every
    other week labelled (the current one always), the highest count written above its bar. Its
    colour is the text's (``currentColor``); every text in it is escaped."""
    top, bottom = 14, 16  # room for the highest count, and for the week labels
    plot = max(height - top - bottom, 1)
    slot = width / max(len(weeks), 1)
    bar = slot * 0.7
    peak = max((week.made for week in weeks), default=0)
    scale = plot / peak if peak else 0.0
    summary = "Bookings per week: " + (
        "; ".join(f"{week.label}: {week.made} made, {week.kept} kept" for week in weeks) or "no weeks"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bar-chart" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-label="{escape(summary)}">',
        f"<title>{escape(summary)}</title>",
    ]
    peak_drawn = False
    for index, week in enumerate(weeks):
        x = index * slot + (slot - bar) / 2
        made_height = week.made * scale
        kept_height = min(week.kept, week.made) * scale
        base = top + plot
        parts.append(
            f'<g class="week"><rect class="made" x="{_number(x)}" y="{_number(base - made_height)}"'
            f' width="{_number(bar)}" height="{_number(made_height)}" fill="currentColor" fill-opacity="0.3"/>'
            f'<rect class="kept" x="{_number(x)}" y="{_number(base - kept_height)}"'
            f' width="{_number(bar)}" height="{_number(kept_height)}" fill="currentColor"/></g>'
        )
        middle = _number(x + bar / 2)
        if (len(weeks) - 1 - index) % 2 == 0:
            parts.append(
                f'<text class="label" x="{middle}" y="{height - 4}" text-anchor="middle" font-size="10"'
                f' fill="currentColor">{escape(week.label)}</text>'
            )
        if peak and week.made == peak and not peak_drawn:
            peak_drawn = True
            parts.append(
                f'<text class="peak" x="{middle}" y="{_number(base - made_height - 3)}" text-anchor="middle"'
                f' font-size="10" fill="currentColor">{peak}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))

"""Dates and times as the customer reads them, in their language (Babel)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from babel.units import format_unit

from ..i18n import Translator

if TYPE_CHECKING:
    from .catalog import Catalog
    from .records import Booking


def day_label(day: date, t: Translator) -> str:
    """``Tue 14 Jan`` / ``mar 14 ene`` / ``ter. 14 jan.``"""
    return format_date(day, "EEE d MMM", locale=t.locale)


def time_label(at: datetime, tz: ZoneInfo, t: Translator) -> str:
    """``10:30``, on the business's wall clock."""
    return format_time(at.astimezone(tz).time(), "HH:mm", locale=t.locale)


def slot_label(at: datetime, tz: ZoneInfo, t: Translator) -> str:
    """``Tue 14 Jan 10:30``: a time on another day than the one being looked at."""
    return f"{day_label(at.astimezone(tz).date(), t)} {time_label(at, tz, t)}"


def times_label(start: datetime, end: datetime, tz: ZoneInfo, t: Translator) -> str:
    """``10:30–11:00``, readable on the nights the clocks change too.

    When either end is a wall time the clock shows twice (the hour repeated when the clocks go
    back), or the offset changes during the span, both ends carry their UTC offset in the
    language's own GMT format; when the clock's difference is not the real length, the length
    follows. A 60-minute booking at 02:00 on 25 Oct 2026 in Madrid reads
    ``02:00 GMT+2 – 02:00 GMT+1 (60 min)`` (``02:00 +2 GMT – 02:00 +1 GMT (60 min)`` in pt),
    and one at 01:30 on 29 Mar 2026 ``01:30 GMT+1 – 03:30 GMT+2 (60 min)``.
    Every other span keeps its plain ``10:30–11:00``.
    """
    first, last = start.astimezone(tz), end.astimezone(tz)
    crosses = first.utcoffset() != last.utcoffset()
    if not (crosses or _repeated(first) or _repeated(last)):
        return f"{time_label(start, tz, t)}–{time_label(end, tz, t)}"
    label = f"{time_label(start, tz, t)} {_gmt(first, t)} – {time_label(end, tz, t)} {_gmt(last, t)}"
    if last.replace(tzinfo=None) - first.replace(tzinfo=None) != end - start:
        minutes = int((end - start) / timedelta(minutes=1))
        label += f" ({format_unit(minutes, 'duration-minute', length='short', locale=t.locale)})"
    return label


def _repeated(local: datetime) -> bool:
    """Whether the wall clock shows this time twice that night (the hour repeated when the clocks go back)."""
    return local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()


def _gmt(local: datetime, t: Translator) -> str:
    """The UTC offset in the language's GMT format, short: ``GMT+2``, ``GMT-3:30``, ``+1 GMT`` (pt), ``GMT``."""
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset / timedelta(minutes=1))
    hours, rest = divmod(abs(minutes), 60)
    number = f"{'-' if minutes < 0 else '+'}{hours}{f':{rest:02d}' if rest else ''}" if minutes else ""
    return (t.locale.zone_formats["gmt"] % number).strip()


def span_label(start: datetime, end: datetime, tz: ZoneInfo, t: Translator) -> str:
    """``Tue 14 Jan, 10:30–11:00``"""
    return f"{day_label(start.astimezone(tz).date(), t)}, {times_label(start, end, tz, t)}"


def booking_label(catalog: Catalog, booking: Booking, t: Translator) -> str:
    """``Haircut, Tue 14 Jan, 10:30–11:00 (K7Q2MX)``"""
    service = catalog.service(booking.service_id)
    name = service.name(t.code) if service else booking.service_id
    return f"{name}, {span_label(booking.start, booking.end, catalog.business.timezone, t)} ({booking.ref})"

"""Dates and times as the customer reads them, in their language (Babel)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time

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


def span_label(start: datetime, end: datetime, tz: ZoneInfo, t: Translator) -> str:
    """``Tue 14 Jan, 10:30–11:00``"""
    return f"{day_label(start.astimezone(tz).date(), t)}, {time_label(start, tz, t)}–{time_label(end, tz, t)}"


def booking_label(catalog: Catalog, booking: Booking, t: Translator) -> str:
    """``Haircut, Tue 14 Jan, 10:30–11:00 (K7Q2MX)``"""
    service = catalog.service(booking.service_id)
    name = service.name(t.code) if service else booking.service_id
    return f"{name}, {span_label(booking.start, booking.end, catalog.business.timezone, t)} ({booking.ref})"

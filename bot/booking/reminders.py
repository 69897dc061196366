"""When a booking's reminders are due: plain values in, epoch milliseconds out.

A business lists its offsets in the catalog (``reminders = ["24h", "2h"]``). An offset of whole
days (``24h``, ``48h``, ``1d``) means the same local wall-clock time that many days before, so a
10:00 booking is reminded at 10:00 the day before even when the clocks changed in between (23 or
25 real hours). Any other offset (``2h``, ``90m``) is that much real time before. A booking made
less than an offset ahead gets no reminder for that offset.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

OFFSET = re.compile(r"([1-9][0-9]{0,3})([mhd])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
#: the longest offset accepted (a reminder further ahead than the horizon would never be due)
LONGEST = timedelta(days=30)


def parse_offset(label: str) -> timedelta | None:
    """``"24h"`` → 24 hours; None for anything else (``"0h"``, ``"1w"``, ``"2 h"``)."""
    match = OFFSET.fullmatch(label)
    if match is None:
        return None
    offset = int(match[1]) * _UNITS[match[2]]
    return offset if offset <= LONGEST else None


def due_at(start: datetime, offset: timedelta, tz: ZoneInfo) -> datetime:
    """When the reminder ``offset`` before ``start`` is due (see the module docstring)."""
    if offset % timedelta(days=1):
        return start - offset
    wall = start.astimezone(tz).replace(tzinfo=None) - offset
    return wall.replace(tzinfo=tz).astimezone(UTC)  # a wall time skipped by the clocks reads as the one before


def schedule(offsets: tuple[str, ...], start: datetime, now: datetime, tz: ZoneInfo) -> tuple[tuple[str, int], ...]:
    """``(offset, due epoch ms)`` of each reminder of a booking at ``start`` made at ``now``: only
    those still ahead."""
    found = []
    for label in offsets:
        offset = parse_offset(label)
        if offset is None:
            continue
        due = due_at(start, offset, tz)
        if due > now:
            found.append((label, int(due.timestamp() * 1000)))
    return tuple(found)

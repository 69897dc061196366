"""A customer's booking actions through the webhook, by option titles, for tests outside the flows."""

from __future__ import annotations

import re

import redis

from .whatsapp import WhatsApp


def age_holds(db: redis.Redis, prefix: str = "tapbook") -> int:
    """Make every hold lapse now, as ``hold_minutes`` of the Redis clock would; returns how many.

    Hold expiry is an epoch-ms stamp inside each day's occupancy entry, checked against Redis
    ``TIME``; rewriting the stamp into the past is the clock seam (no sleeping).
    """
    aged = 0
    for key in db.scan_iter(f"{prefix}:*:occ:*", count=1000):
        for entry, value in db.hgetall(key).items():
            start, end, expires, *_ = value.split(",")  # bookings: "start,end,0,count"
            if expires != "0":
                db.hset(key, entry, f"{start},{end},1")
                aged += 1
    return aged


def book(wa: WhatsApp, day: str = "Wed 14 Jan", at: str = "12:00", service: str = "Haircut") -> str:
    """Book ``service`` at ``day`` ``at``; returns the reference."""
    answer = wa.choose(wa.choose(wa.choose(wa.choose(wa.send("menu"), "Book"), service), day), at)
    done = wa.choose(answer, "Confirm")
    match = re.search(r"Your booking reference: (\w+)", done.text)
    assert match, done.text
    return match.group(1)


def reschedule(wa: WhatsApp, title: str, day: str, at: str) -> str:
    mine = wa.choose(wa.send("menu"), "My bookings")
    booking = wa.choose(mine, title)
    done = wa.choose(wa.choose(wa.choose(wa.choose(booking, "Reschedule"), day), at), "Confirm")
    assert done.text.startswith("Moved!"), done.text
    return done.text


def cancel(wa: WhatsApp, title: str) -> str:
    mine = wa.choose(wa.send("menu"), "My bookings")
    done = wa.choose(wa.choose(wa.choose(mine, title), "Cancel booking"), "Yes, cancel it")
    assert "Your booking is cancelled" in done.text, done.text
    return done.text

"""A signed request captured and re-posted later changes nothing: every message answered is
remembered per customer (48 bits of its MessageSid) for at least 48 hours, and the last 100 for 30
days after the customer's last message, whatever newer messages came in between."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask

from bot import create_app, get_services
from bot.store import ANSWERED_KEEP

from .bookings import cancel
from .conftest import TOKEN, Clock, app_config
from .whatsapp import WhatsApp

PHONE = "+34600111222"
BOOK_BY_TYPING = ["hi", "1", "1", "1", "1", "1"]  # Book, Haircut, Wed 14 Jan, 12:00, Confirm


def forget_what_expires(db: redis.Redis) -> None:
    """What time does to the keys with a short life: the reply records (60 s) and the session (30 min)."""
    for key in [*db.scan_iter("tapbook:{test}:msg:*"), f"tapbook:{{test}}:session:{PHONE}"]:
        db.delete(key)


def bookings(db: redis.Redis) -> dict[str, str]:
    return {db.hget(k, "ref"): db.hget(k, "status") for k in db.scan_iter("tapbook:{test}:booking:*")}


def setup(backend: dict[str, Any]) -> tuple[Flask, Clock, WhatsApp, redis.Redis]:
    clock = Clock()
    app = create_app(app_config(CLOCK=clock, **backend))
    return app, clock, WhatsApp(app.test_client(), TOKEN, phone=PHONE), get_services(app).redis


def test_a_cancelled_conversation_re_posted_days_later_books_nothing(backend: dict[str, Any]) -> None:
    app, clock, wa, db = setup(backend)
    captured = [wa.form(text) for text in BOOK_BY_TYPING]
    assert [wa.post(form) for form in captured][-1].text.startswith("Booked!")
    cancel(wa, "Wed 14 Jan 12:00")
    before = bookings(db)
    clock.advance(days=3)
    forget_what_expires(db)
    replays = [wa.post(form) for form in captured]
    assert [(r.status, r.text) for r in replays] == [(200, "")] * len(captured)  # answered with nothing
    assert bookings(db) == before  # the one cancelled booking, nothing new
    assert not db.exists(f"tapbook:{{test}}:session:{PHONE}")  # not even a new conversation
    assert get_services(app).stats.get("taps.duplicate") == len(captured)


def test_a_re_posted_message_changes_nothing_in_a_conversation_that_moved_on(backend: dict[str, Any]) -> None:
    app, clock, wa, db = setup(backend)
    wa.send("hi")
    captured = wa.form("3")  # Language
    wa.post(captured)
    wa.send("menu")
    for _ in range(ANSWERED_KEEP - 10):  # many newer messages, over days
        clock.advance(hours=2)
        wa.send("menu")
    forget_what_expires(db)
    wa.send("1")  # the customer is choosing a service now
    state = db.hgetall(f"tapbook:{{test}}:session:{PHONE}")
    again = wa.post(captured)
    assert (again.status, again.text) == (200, "")
    assert db.hgetall(f"tapbook:{{test}}:session:{PHONE}") == state  # still choosing a service


def test_the_memory_of_answered_messages_is_small(redis_server: Any) -> None:
    """Measured on a real server: bytes per message remembered (the figure docs/security.md gives)."""
    app, clock, wa, db = setup({"REDIS_URL": redis_server.url})
    db.flushdb()
    key = f"tapbook:{{test}}:answered:{PHONE}"
    wa.send("hi")
    one = db.memory_usage(key)
    for _ in range(99):
        clock.advance(minutes=5)
        wa.send("menu")
    hundred = db.memory_usage(key)
    per_message = (hundred - one) / 99
    print(f"answered set: {one} B with 1 message, {hundred} B with 100: {per_message:.1f} B per message")
    assert db.object("encoding", key) == "listpack"
    assert per_message < 20

"""The hot path's Redis budget: two round trips a tap, one for a retried delivery.

Counted where they happen: every request redis-py writes to a socket.
"""

from __future__ import annotations

import pytest
import redis.connection
from flask import Flask

from bot import create_app, get_services
from bot.sessions import Session

from .conftest import TOKEN, app_config
from .whatsapp import WhatsApp


@pytest.fixture
def real_app(redis_server) -> Flask:  # type: ignore[no-untyped-def]
    redis.Redis.from_url(redis_server.url).flushdb()
    return create_app(app_config(REDIS_URL=redis_server.url))


def test_each_tap_costs_two_round_trips(real_app: Flask, sends: list[object]) -> None:
    wa = WhatsApp(real_app.test_client(), TOKEN)
    wa.send("hi")  # connects and loads the script once
    per_tap = []
    for typed in ["3", "2", "idioma", "help", "menu", "banana"]:
        before = len(sends)
        assert wa.send(typed).status == 200
        per_tap.append(len(sends) - before)
    tap = wa.form("", ButtonPayload="nav1:language", ButtonText="Language", MessageType="button")
    before = len(sends)
    wa.post(tap)
    per_tap.append(len(sends) - before)
    assert per_tap == [2] * 7


def test_a_retried_delivery_costs_one_and_a_forgery_none(real_app: Flask, sends: list[object]) -> None:
    wa = WhatsApp(real_app.test_client(), TOKEN)
    form = wa.form("hi")
    wa.post(form)
    before = len(sends)
    wa.post(form)
    assert len(sends) - before == 1
    before = len(sends)
    assert wa.post(wa.form("hi"), signature="forged").status == 403
    assert len(sends) == before
    assert get_services(real_app).stats.get("taps.duplicate") == 1


def test_round_trips_along_a_tapped_booking(real_app: Flask, sends: list[object]) -> None:
    """Tapped buttons: 2 each. A service, day or time button names what its reply reads, so that read
    rides in the load; a time's hold and a Confirm's booking ride in the one write with the session."""
    wa = WhatsApp(real_app.test_client(), TOKEN)
    db = get_services(real_app).redis

    def tap(number: int) -> tuple[str, int]:
        """The reply's text and the round trips of the tap (reading the offered IDs is not counted)."""
        button = Session(db.hgetall("tapbook:{test}:session:+34600111222")).offered[number - 1]
        before = len(sends)
        answer = wa.tap(button)
        assert answer.status == 200
        return answer.text, len(sends) - before

    wa.send("menu")  # a first booking connects and loads the scripts
    for number in [1, 1, 1, 1, 1]:
        tap(number)
    per_tap = []
    before = len(sends)
    wa.send("hi")
    per_tap.append(len(sends) - before)
    for number in [1, 1, 2, 2, 1]:  # Book, Haircut, day 2, time 2, Confirm
        text, trips = tap(number)
        per_tap.append(trips)
    assert text.startswith("Booked!")
    assert per_tap == [2, 2, 2, 2, 2, 2]


def test_round_trips_along_a_typed_booking(real_app: Flask, sends: list[object]) -> None:
    """Typed numbers: hi, Book, Confirm: 2 each. Service, day, time: 3 each (the store is read once the
    session says what the number means)."""
    wa = WhatsApp(real_app.test_client(), TOKEN)
    for typed in ["menu", "1", "1", "1", "1", "1"]:  # a first booking connects and loads the scripts
        wa.send(typed)
    per_tap = []
    for typed in ["hi", "1", "1", "2", "2", "1"]:  # a second one: menu, Book, Haircut, day 2, time 2, Confirm
        before = len(sends)
        assert wa.send(typed).status == 200
        per_tap.append(len(sends) - before)
    assert per_tap == [2, 2, 3, 3, 3, 2]

"""The owner's calendar feed (``/calendar/<token>.ics``): the bookings as a calendar app reads them.

Real Redis, bookings made through the webhook, the feed parsed back with ``icalendar``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from icalendar import Calendar, Event

from bot import create_app, get_services
from bot.feeds import FeedOwner, digest, feed_token, feed_url, rotate_feed_token, sequence

from .bookings import book, cancel, reschedule
from .conftest import TOKEN, Clock, app_config
from .redis_server import RedisServer
from .test_businesses import NORTH, SOUTH, two, writing_to
from .whatsapp import WhatsApp

ANA = "+34600111222"
MADRID = ZoneInfo("Europe/Madrid")
LOOKUP = "tapbook:calendar-feeds"


@pytest.fixture
def db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def app(redis_server: RedisServer, db: redis.Redis, clock: Clock) -> Iterator[Flask]:
    app = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock, PUBLIC_BASE_URL="https://bot.example.com"))
    yield app
    get_services(app).redis.close()


@pytest.fixture
def ana(app: Flask) -> WhatsApp:
    return WhatsApp(app.test_client(), TOKEN, phone=ANA, name="Ana")


def path_of(app: Flask, business: str | None = None) -> str:
    services = get_services(app)
    url = feed_url(services, services.business(business))
    assert url.startswith("https://bot.example.com/calendar/") and url.endswith(".ics")
    return url.removeprefix("https://bot.example.com")


def fetch(app: Flask, path: str) -> Calendar:
    response = app.test_client().get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    return Calendar.from_ical(response.data)


def events(cal: Calendar) -> dict[str, Event]:
    return {str(event["UID"]): event for event in cal.events}


# -- the feed ---------------------------------------------------------------------------------------
def test_a_booking_is_an_event_in_the_business_time_zone(app: Flask, ana: WhatsApp) -> None:
    ref = book(ana, day="Thu 15 Jan", at="10:00")
    cal = fetch(app, path_of(app))
    assert str(cal["X-WR-CALNAME"]) == str(cal["NAME"]) == "Test Salon"
    assert [str(zone["TZID"]) for zone in cal.timezones] == ["Europe/Madrid"]
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT5M" in cal.to_ical().decode()
    (event,) = cal.events
    assert str(event["UID"]) == f"{ref}@test.tapbook"
    assert event["DTSTART"].params["TZID"] == "Europe/Madrid"
    assert event.start == datetime(2026, 1, 15, 10, 0, tzinfo=MADRID)
    assert event.end == datetime(2026, 1, 15, 10, 30, tzinfo=MADRID)
    assert str(event["SUMMARY"]) == "Haircut — Ana"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert event["SEQUENCE"] == 0
    assert str(event["DESCRIPTION"]).splitlines() == [f"Booking {ref}", "Customer: Ana", f"Phone: {ANA}"]
    assert "DTSTAMP" in event


def test_a_cancelled_booking_stays_as_a_cancelled_event_with_a_higher_sequence(
    app: Flask, ana: WhatsApp, clock: Clock
) -> None:
    ref = book(ana, day="Thu 15 Jan", at="10:00")
    path = path_of(app)
    before = events(fetch(app, path))[f"{ref}@test.tapbook"]
    clock.advance(minutes=5)
    cancel(ana, "Thu 15 Jan 10:00")
    after = events(fetch(app, path))[f"{ref}@test.tapbook"]
    assert str(after["STATUS"]) == "CANCELLED"
    assert after["SEQUENCE"] > before["SEQUENCE"] == 0
    assert after.start == before.start


def test_a_move_cancels_the_old_event_and_adds_the_new_one(app: Flask, ana: WhatsApp, clock: Clock) -> None:
    old = book(ana, day="Thu 15 Jan", at="10:00")
    clock.advance(minutes=1)
    reschedule(ana, "Thu 15 Jan 10:00", "Sat 17 Jan", "11:00")
    found = events(fetch(app, path_of(app)))
    moved = found.pop(f"{old}@test.tapbook")
    ((uid, new),) = found.items()
    assert str(moved["STATUS"]) == "CANCELLED" and moved["SEQUENCE"] > 0
    assert f"Moved to {uid.split('@')[0]}" in str(moved["DESCRIPTION"])
    assert str(new["STATUS"]) == "CONFIRMED" and new["SEQUENCE"] == 0
    assert new.start == datetime(2026, 1, 17, 11, 0, tzinfo=MADRID)


def test_the_feed_spans_30_days_back_to_the_horizon(app: Flask, ana: WhatsApp, clock: Clock) -> None:
    book(ana, day="Thu 15 Jan", at="10:00")
    path = path_of(app)
    clock.advance(days=30)
    assert len(fetch(app, path).events) == 1
    clock.advance(days=2)
    cal = fetch(app, path)
    assert cal.events == [] and [str(zone["TZID"]) for zone in cal.timezones] == ["Europe/Madrid"]


def test_sequence_only_grows() -> None:
    assert sequence({"created_at": "100"}) == 0
    assert sequence({"created_at": "100", "changed_at": "100"}) == 1  # changed within its first second
    assert sequence({"created_at": "100", "changed_at": "400"}) == 300
    assert sequence({"changed_at": "400"}) == 1  # a booking of an early release


# -- the token --------------------------------------------------------------------------------------
def test_the_token_is_kept_and_only_its_digest_is_shared(app: Flask, db: redis.Redis) -> None:
    services = get_services(app)
    shop = services.business()
    token = feed_token(services, shop)
    assert feed_token(services, shop) == token and len(token) == 32
    assert db.hgetall("tapbook:{test}:calendar-feed") == {"business": token}
    assert db.hgetall(LOOKUP) == {digest(token): json.dumps({"business": "test"})}


def test_rotating_turns_the_old_url_away_at_once(app: Flask) -> None:
    old = path_of(app)
    result = app.test_cli_runner().invoke(args=["calendar", "rotate"])
    assert result.exit_code == 0, result.output
    new = result.stdout.strip().removeprefix("https://bot.example.com")
    assert new != old and new == path_of(app)
    assert app.test_client().get(old).status_code == 404
    fetch(app, new)
    result = app.test_cli_runner().invoke(args=["calendar", "url"])
    assert result.exit_code == 0 and result.stdout == f"https://bot.example.com{new}\n"


def test_a_pointer_left_behind_by_a_rotation_is_refused_and_dropped(app: Flask, db: redis.Redis) -> None:
    services = get_services(app)
    old = feed_token(services, services.business())
    db.hset(LOOKUP, digest(old), FeedOwner("test").record())  # as if a rotation stopped half-way
    rotate_feed_token(services, services.business())
    db.hset(LOOKUP, digest(old), FeedOwner("test").record())
    assert app.test_client().get(f"/calendar/{old}.ics").status_code == 404
    assert not db.hexists(LOOKUP, digest(old))


@pytest.mark.parametrize("token", ["unknown-token-of-the-right-length", "x", "%00", "é" * 40])
def test_an_unknown_token_is_not_found(app: Flask, token: str) -> None:
    path_of(app)  # a feed exists
    response = app.test_client().get(f"/calendar/{token}.ics")
    assert response.status_code == 404
    assert response.mimetype == "text/plain" and response.data == b"Not found\n"


def test_a_staff_token_is_not_served_before_staff_exist(app: Flask, db: redis.Redis) -> None:
    token = "a-staff-token-made-by-hand-000000"
    db.hset("tapbook:{test}:calendar-feed", "staff:ines", token)
    db.hset(LOOKUP, digest(token), FeedOwner("test", "ines").record())
    assert FeedOwner.parse(db.hget(LOOKUP, digest(token)) or "") == FeedOwner("test", "ines")
    assert app.test_client().get(f"/calendar/{token}.ics").status_code == 404


def test_without_public_base_url_the_url_is_a_path(redis_server: RedisServer, db: redis.Redis) -> None:
    app = create_app(app_config(REDIS_URL=redis_server.url))
    result = app.test_cli_runner().invoke(args=["calendar", "url"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("/calendar/") and "PUBLIC_BASE_URL is not set" in result.stderr
    get_services(app).redis.close()


def test_a_redis_outage_answers_503_for_the_app_to_come_back(own_redis_server: RedisServer) -> None:
    app = create_app(app_config(REDIS_URL=own_redis_server.url))
    path = feed_url(get_services(app), get_services(app).business())
    own_redis_server.stop()
    response = app.test_client().get(path)
    assert response.status_code == 503 and response.headers["Retry-After"] == "60"
    assert response.mimetype == "text/plain"


# -- many businesses --------------------------------------------------------------------------------
def test_each_business_feed_holds_only_its_own_bookings(redis_server: RedisServer, db: redis.Redis) -> None:
    app = create_app(app_config(REDIS_URL=redis_server.url, CATALOG=two()))
    north = book(writing_to(app, NORTH), day="Thu 15 Jan", at="10:00")
    bea = writing_to(app, SOUTH, phone="+34600999000", name="Bea")
    bea.choose(bea.choose(bea.send("menu"), "Idioma"), "English")  # she reads English; the salon, Spanish
    south = book(bea, day="Thu 15 Jan", at="10:00")
    services = get_services(app)
    feeds = {shop: feed_url(services, services.business(shop)) for shop in ("north", "south")}
    assert feeds["north"] != feeds["south"]
    north_cal, south_cal = fetch(app, feeds["north"]), fetch(app, feeds["south"])
    assert list(events(north_cal)) == [f"{north}@north.tapbook"]
    assert list(events(south_cal)) == [f"{south}@south.tapbook"]
    assert str(north_cal["X-WR-CALNAME"]) == "North Salon" and str(south_cal["X-WR-CALNAME"]) == "South Clinic"
    assert str(south_cal.events[0]["SUMMARY"]) == "Corte — Bea"  # the business's default language
    result = app.test_cli_runner().invoke(args=["calendar", "url"])
    assert result.exit_code == 1 and "--business" in result.output
    result = app.test_cli_runner().invoke(args=["calendar", "url", "--business", "south"])
    assert result.exit_code == 0 and result.stdout.strip() == feeds["south"]
    services.redis.close()

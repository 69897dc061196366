"""Bookings kept no longer than the business's ``retention_days`` (issue 19): then anonymised,
by a sweep with bounded work per run that never looks at a booking twice once past it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.retention import sweep

from .bookings import book
from .conftest import TOKEN, Clock, app_config
from .content_phone import content_config, synced_worker
from .redis_server import RedisServer
from .twilio_fake import FakeTwilio
from .whatsapp import WhatsApp

ANA, BOB = "+34600111222", "+447700900123"
#: 366 days after Thu 15 Jan 2026 12:00 UTC: Wed 14 Jan's and Thu 15 Jan's morning bookings are past a
#: 365-day retention, Sat 17 Jan's not
A_YEAR_ON = datetime(2027, 1, 16, 12, 0, tzinfo=UTC)


@pytest.fixture
def app(redis_server: RedisServer, clock: Clock) -> Iterator[Flask]:
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock))
    yield app
    get_services(app).redis.close()


def test_bookings_past_retention_lose_phone_and_name_and_nothing_else(app: Flask, clock: Clock) -> None:
    ana = WhatsApp(app.test_client(), TOKEN, phone=ANA, name="Ana")
    old = book(ana, at="12:00")
    recent = book(ana, day="Sat 17 Jan", at="10:00")
    bob = book(WhatsApp(app.test_client(), TOKEN, phone=BOB, name="Bob"), day="Thu 15 Jan", at="10:00")
    db = get_services(app).redis
    clock.now = A_YEAR_ON
    result = app.test_cli_runner().invoke(args=["customers", "retention"])
    assert result.exit_code == 0, result.output
    assert result.output == "test: 2 bookings older than 365 days anonymised (2 looked at)\n"
    for ref in (old, bob):
        booking = db.hgetall(f"tapbook:{{test}}:booking:{ref}")
        assert (booking["phone"], booking["name"], booking["status"]) == ("erased", "", "confirmed")
    assert db.hget(f"tapbook:{{test}}:booking:{recent}", "phone") == ANA
    assert db.zrange(f"tapbook:{{test}}:customer:{ANA}", 0, -1) == [recent]  # the index trimmed
    assert db.zcard("tapbook:{test}:bookings") == 3  # the owner's counts stay
    again = app.test_cli_runner().invoke(args=["customers", "retention"])
    assert again.output == "test: 0 bookings older than 365 days anonymised (0 looked at)\n"  # the cursor moved on


def test_each_run_does_bounded_work_and_the_sweep_catches_up(app: Flask, clock: Clock) -> None:
    phones = [f"+3460011{n:04d}" for n in range(5)]
    times = [("Wed 14 Jan", "12:00"), ("Wed 14 Jan", "12:30"), ("Thu 15 Jan", "10:00"), ("Thu 15 Jan", "10:30"),
             ("Thu 15 Jan", "11:00")]  # fmt: skip
    refs = [
        book(WhatsApp(app.test_client(), TOKEN, phone=phone, name=f"C{n}"), day=day, at=at)
        for n, (phone, (day, at)) in enumerate(zip(phones, times, strict=True))
    ]
    clock.now = A_YEAR_ON
    (shop,) = get_services(app).directory
    db = get_services(app).redis
    runs = []
    while True:
        swept = sweep(db, shop, clock(), budget=2)
        runs.append((swept.looked_at, swept.anonymised))
        if swept.caught_up:
            break
    assert all(looked <= 3 for looked, _ in runs) and sum(n for _, n in runs) == 5
    assert all(db.hget(f"tapbook:{{test}}:booking:{ref}", "phone") == "erased" for ref in refs)
    assert sweep(db, shop, clock(), budget=2).looked_at == 0


def test_the_outbox_worker_sweeps_with_its_housekeeping(app: Flask, clock: Clock, redis_server: RedisServer) -> None:
    old = book(WhatsApp(app.test_client(), TOKEN, phone=ANA, name="Ana"), at="12:00")
    buttons = create_app(content_config(FakeTwilio(), REDIS_URL=redis_server.url, CLOCK=clock))
    clock.now = A_YEAR_ON
    synced_worker(buttons).sweep()  # every 5 minutes in the worker's loop
    assert get_services(app).redis.hget(f"tapbook:{{test}}:booking:{old}", "phone") == "erased"
    get_services(buttons).redis.close()

"""Time off the owner adds: the bot stops offering it, the booking script refuses it, bookings
already in it are reported (not cancelled), and removing it offers the times again. Real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.blocks import add_block, blocks, remove_block

from .bookings import book
from .conftest import TOKEN, Clock, app_config
from .redis_server import RedisServer
from .whatsapp import WhatsApp

MADRID = ZoneInfo("Europe/Madrid")


@pytest.fixture
def app(redis_server: RedisServer, clock: Clock) -> Iterator[Flask]:
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock))
    yield app
    get_services(app).redis.close()


def thursday_times(app: Flask, phone: str) -> list[str]:
    wa = WhatsApp(app.test_client(), TOKEN, phone=phone)
    return wa.choose(wa.choose(wa.choose(wa.send("menu"), "Book"), "Haircut"), "Thu 15 Jan").options


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 15, hour, minute, tzinfo=MADRID).astimezone(UTC)


def test_a_block_takes_its_times_off_the_bot_and_reports_the_bookings_in_it(app: Flask) -> None:
    services = get_services(app)
    (shop,) = services.directory
    ana = WhatsApp(app.test_client(), TOKEN, phone="+34600111222")
    kept = book(ana, day="Thu 15 Jan", at="10:30")
    bob = WhatsApp(app.test_client(), TOKEN, phone="+34622000000")
    listed = bob.choose(bob.choose(bob.choose(bob.send("menu"), "Book"), "Haircut"), "Thu 15 Jan")  # before the block
    assert "11:00" in listed.options

    block, covered = add_block(services, shop, at(10), at(11, 30), "dentist")
    assert [b.ref for b in covered] == [kept]  # reported, not cancelled
    assert services.redis.hget(f"tapbook:{{test}}:booking:{kept}", "status") == "confirmed"
    offered = thursday_times(app, "+34633000000")
    assert {"10:00", "10:30", "11:00"}.isdisjoint(offered) and {"09:30", "11:30"} <= set(offered)
    taken = bob.choose(listed, "11:00")  # the list Bob saw before: the script refuses it now
    assert "11:00" not in taken.options and "taken" in taken.text.lower()
    assert [b.reason for b in blocks(services, shop)] == ["dentist"]

    assert remove_block(services, shop, block.id) and not remove_block(services, shop, block.id)
    assert {"10:00", "11:00"} <= set(thursday_times(app, "+34644000000"))
    assert blocks(services, shop) == []


def test_a_block_over_midnight_is_filed_under_each_day(app: Flask) -> None:
    services = get_services(app)
    (shop,) = services.directory
    start = datetime(2026, 1, 15, 12, 0, tzinfo=MADRID).astimezone(UTC)
    end = datetime(2026, 1, 17, 10, 0, tzinfo=MADRID).astimezone(UTC)  # Thursday noon to Saturday 10:00
    add_block(services, shop, start, end, "")
    days = sorted(key.rsplit(":", 1)[1] for key in services.redis.scan_iter("tapbook:{test}:occ:cut:*"))
    assert days == ["20260115", "20260116", "20260117"]
    wa = WhatsApp(app.test_client(), TOKEN, phone="+34655000000")
    days_offered = wa.choose(wa.choose(wa.send("menu"), "Book"), "Haircut").options
    assert "Thu 15 Jan" in days_offered and "Sat 17 Jan" in days_offered  # mornings left on both
    assert "Fri 16 Jan" not in days_offered  # (closed that day anyway)

"""A customer's data rights (issue 19): export everything kept about them, and forget them.

On the real server: a customer books twice (one cancelled), writes STOP, gets button replies
through the outbox, one of which Twilio refuses. After ``flask customers forget`` no key name and
no value anywhere in Redis holds their number or their name; their bookings are still in the diary,
without phone or name; another customer's data is untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from bot import create_app, get_services

from .bookings import book, cancel
from .conftest import TOKEN, Clock, app_config
from .content_phone import content_config, synced_worker
from .redis_server import RedisServer
from .twilio_fake import BAD_NUMBER, FakeTwilio
from .whatsapp import WhatsApp

ZOE, ZOE_NAME, DIGITS = "+34611222333", "Zoë Quintanilla", "611222333"
BOB = "+447700900123"
PASSWORD = "owner-secret"


@pytest.fixture
def apps(redis_server: RedisServer, fake: FakeTwilio, clock: Clock) -> Iterator[tuple[Flask, Flask]]:
    """The same store answered in plain text (bookings) and through the Content API (the outbox)."""
    redis.Redis.from_url(redis_server.url).flushdb()
    plain = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock, ADMIN_PASSWORD=PASSWORD))
    buttons = create_app(content_config(fake, REDIS_URL=redis_server.url, CLOCK=clock))
    yield plain, buttons
    for app in (plain, buttons):
        get_services(app).redis.close()


def everything(db: redis.Redis) -> list[str]:
    """Every key and every value in the store, as text."""
    found = []
    readers = {
        "string": lambda key: db.get(key),
        "hash": lambda key: db.hgetall(key),
        "zset": lambda key: db.zrange(key, 0, -1, withscores=True),
        "stream": lambda key: db.xrange(key),
        "list": lambda key: db.lrange(key, 0, -1),
        "set": lambda key: db.smembers(key),
    }
    for key in db.scan_iter(count=1000):
        found.append(f"{key} {readers[db.type(key)](key)}")
    return found


def test_a_forgotten_customer_leaves_nothing_but_anonymous_bookings(
    apps: tuple[Flask, Flask], fake: FakeTwilio
) -> None:
    plain, buttons = apps
    zoe = WhatsApp(plain.test_client(), TOKEN, phone=ZOE, name=ZOE_NAME)
    kept = book(zoe, at="12:00")
    gone = book(zoe, day="Thu 15 Jan", at="10:00")
    cancel(zoe, "Thu 15 Jan 10:00")
    later = book(zoe, day="Mon 19 Jan", at="09:00")  # with a reminder scheduled
    bob_ref = book(WhatsApp(plain.test_client(), TOKEN, phone=BOB, name="Bob"), day="Sat 17 Jan", at="11:00")
    on_buttons = WhatsApp(buttons.test_client(), TOKEN, phone=ZOE, name=ZOE_NAME)
    on_buttons.send("hi")
    fake.plan.append(BAD_NUMBER)
    synced_worker(buttons).run_once()  # refused: on the business's given-up list
    on_buttons.send("stop")  # the confirmation waits in her outbox
    db = get_services(plain).redis
    assert any(DIGITS in line or "Quintanilla" in line for line in everything(db))

    exported = plain.test_cli_runner().invoke(args=["customers", "export", ZOE])
    assert exported.exit_code == 0, exported.output
    (mine,) = json.loads(exported.output)
    assert mine["business"] == "test" and mine["phone"] == ZOE
    assert {b["ref"] for b in mine["bookings"]} == {kept, gone, later} and mine["opted_out_at"] > 0
    assert {"session", "window", "delivery", "outbox", "active_bookings", "messages_given_up"} <= set(mine)
    assert mine["messages_answered"] >= 7

    forgotten = plain.test_cli_runner().invoke(args=["customers", "forget", ZOE, "--yes"])
    assert forgotten.exit_code == 0, forgotten.output
    assert (
        forgotten.output.startswith("test: forgot +34*****333:")
        and "3 bookings kept without phone or name" in forgotten.output
    )
    left = [line for line in everything(db) if DIGITS in line or "Quintanilla" in line or "Zoë" in line]
    assert left == []
    assert db.zrange("tapbook:{test}:reminders", 0, -1) == [f"{bob_ref}:24h"]  # nobody to remind
    for ref in (kept, gone, later):
        booking = db.hgetall(f"tapbook:{{test}}:booking:{ref}")
        assert booking["phone"] == "erased" and booking["name"] == "" and booking["start"]
    assert db.hget(f"tapbook:{{test}}:booking:{bob_ref}", "phone") == BOB  # nobody else's
    page = plain.test_client().get("/admin", auth=("owner", PASSWORD))
    assert page.status_code == 200 and "Bob" in page.text and "— · *****" in page.text  # still in the diary

    again = plain.test_cli_runner().invoke(args=["customers", "forget", ZOE, "--yes"])
    assert again.exit_code == 0 and again.output == "test: nothing kept about +34*****333\n"
    exported = plain.test_cli_runner().invoke(args=["customers", "export", ZOE])
    assert json.loads(exported.output) == [{"business": "test", "phone": ZOE}]


def test_a_phone_that_is_not_one_is_refused_with_one_line(apps: tuple[Flask, Flask]) -> None:
    plain, _ = apps
    result = plain.test_cli_runner().invoke(args=["customers", "forget", "612345678", "--yes"])
    assert result.exit_code == 2 and "E.164" in result.output


def test_forgetting_asks_first(apps: tuple[Flask, Flask]) -> None:
    plain, _ = apps
    result = plain.test_cli_runner().invoke(args=["customers", "forget", ZOE], input="n\n")
    assert result.exit_code == 1 and "Forget +34611222333 at test? This cannot be undone" in result.output

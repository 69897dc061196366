"""A cancel by the business reaches the customer through the outbox, when WhatsApp allows it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from bot import create_app, get_services

from .bookings import book
from .conftest import TOKEN, Clock, app_config
from .content_phone import content_config, shown, synced_worker
from .redis_server import RedisServer
from .twilio_fake import FakeTwilio
from .whatsapp import WhatsApp

ANA = "+34600111222"


@pytest.fixture
def booked(redis_server: RedisServer, clock: Clock) -> Iterator[list[str]]:
    """Two of Ana's bookings, made on a number answering in plain text (what the test customer reads)."""
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock))
    ana = WhatsApp(app.test_client(), TOKEN, phone=ANA, name="Ana")
    yield [book(ana, at="12:00"), book(ana, day="Sat 17 Jan", at="10:00")]
    get_services(app).redis.close()


@pytest.fixture
def fake() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
def app(redis_server: RedisServer, fake: FakeTwilio, clock: Clock) -> Iterator[Flask]:
    """The same store, now sending through the Content API (outbox and worker)."""
    app = create_app(content_config(fake, REDIS_URL=redis_server.url, CLOCK=clock))
    yield app
    get_services(app).redis.close()


def sent_texts(fake: FakeTwilio) -> list[str]:
    return [m["Body"] for m in fake.accepted if m.get("Body")]


def test_the_customer_is_told_after_what_is_already_queued(
    app: Flask, fake: FakeTwilio, booked: list[str], clock: Clock
) -> None:
    first, _ = booked
    assert WhatsApp(app.test_client(), TOKEN, phone=ANA).send("hi").status == 200  # opens the 24-hour window
    clock.advance(hours=1)
    result = app.test_cli_runner().invoke(args=["bookings", "cancel", first, "--yes"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "A WhatsApp message telling the customer is on its way."
    worker = synced_worker(app)
    while worker.run_once():
        pass
    assert len(fake.accepted) == 2  # the reply to "hi", then the notice (a template: no approval needed in the window)
    assert shown(fake, fake.accepted[-1]).text == (
        f"Your booking with Test Salon is cancelled: Haircut, Wed 14 Jan, 12:00–12:30 ({first}). "
        "Write to us to book another time."
    )
    assert get_services(app).stats.get("notify.queued") == 1


def test_outside_the_24_hour_window_nothing_is_queued_until_the_template_is_approved(
    app: Flask, booked: list[str], clock: Clock
) -> None:
    _, second = booked
    WhatsApp(app.test_client(), TOKEN, phone=ANA).send("hi")
    clock.advance(hours=24, seconds=1)
    outbox = get_services(app).outboxes["test"]
    queued = outbox.pending(ANA)
    result = app.test_cli_runner().invoke(args=["bookings", "cancel", second, "--yes"])
    assert result.exit_code == 0
    assert "The customer was not told (they last wrote over 24 hours ago and WhatsApp has not approved" in result.output
    assert outbox.pending(ANA) == queued
    assert get_services(app).stats.get("notify.not_approved") == 1


def test_the_cancel_and_its_notice_are_one_write(
    redis_server: RedisServer, booked: list[str], fake: FakeTwilio, clock: Clock
) -> None:
    """Redis refuses the notice (here: an ACL without XADD): the cancel is not stored either, and the
    owner reads that nothing was cancelled, never a cancel the customer is not told of by mistake."""
    first, second = booked
    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    db.execute_command("ACL", "SETUSER", "no-xadd", "on", ">owner-pw", "~*", "&*", "+@all", "-xadd")
    try:
        app = create_app(content_config(fake, REDIS_URL=redis_server.url, CLOCK=clock))
        assert WhatsApp(app.test_client(), TOKEN, phone=ANA).send("hi").status == 200  # the window is open
        restricted = redis_server.url.replace("redis://", "redis://no-xadd:owner-pw@")
        owner_app = create_app(content_config(fake, REDIS_URL=restricted, CLOCK=clock, ADMIN_PASSWORD="owner-secret"))
        result = owner_app.test_cli_runner().invoke(args=["bookings", "cancel", first, "--yes"])
        assert result.exit_code != 0 and "redis" in result.output.lower(), result.output
        assert db.hget(f"tapbook:{{test}}:booking:{first}", "status") == "confirmed"
        owner = owner_app.test_client()
        page = owner.get("/admin", auth=("owner", "owner-secret")).get_data(as_text=True)
        token = re.search(rf'value="{second}">\s*<input type="hidden" name="token" value="([^"]+)"', page)[1]
        response = owner.post("/admin/cancel", data={"ref": second, "token": token}, auth=("owner", "owner-secret"))
        assert response.status_code == 503
        assert db.hget(f"tapbook:{{test}}:booking:{second}", "status") == "confirmed"
    finally:
        db.execute_command("ACL", "DELUSER", "no-xadd")
        db.close()


def test_a_notice_queued_before_stop_is_not_sent_and_none_is_queued_after(
    app: Flask, fake: FakeTwilio, booked: list[str]
) -> None:
    """The business cancels, queueing a notice for Ana; she writes STOP before the worker gets to it:
    the notice is given up (visibly), her STOP's confirmation goes out, and the next is not even queued."""
    first, second = booked
    ana = WhatsApp(app.test_client(), TOKEN, phone=ANA)
    ana.send("hi")
    services = get_services(app)
    outbox = services.outboxes["test"]
    told = app.test_cli_runner().invoke(args=["bookings", "cancel", first, "--yes"])
    assert told.output.splitlines()[-1] == "A WhatsApp message telling the customer is on its way."
    ana.send("stop")
    synced_worker(app).run_once()
    sent = [shown(fake, m).text for m in fake.accepted]
    assert not any("is cancelled" in text for text in sent)
    assert any(text.startswith("Done: Test Salon will not send you reminders") for text in sent)
    (given_up,) = outbox.undelivered()
    assert given_up.state == "undeliverable" and "wrote STOP" in given_up.reason
    assert services.stats.get("outbox.opted_out") == 1
    refused = app.test_cli_runner().invoke(args=["bookings", "cancel", second, "--yes"])
    assert "they asked for no messages (STOP)" in refused.output and outbox.pending(ANA) == 0

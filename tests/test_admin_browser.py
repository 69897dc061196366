"""The owner's page in a real headless Chromium (Debian's, driven by Playwright) on a real server.

The app runs in a werkzeug server thread on a free loopback port against the real Redis;
customers book through the signed webhook first. Nothing is downloaded: Chromium comes from
``apt-get install chromium`` (``.ci/run``), Playwright's driver ships inside its wheel.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from werkzeug.serving import make_server

from bot import create_app, get_services

from .bookings import book
from .conftest import REQUIRE_REAL, TOKEN, app_config
from .content_phone import content_config, synced_worker
from .redis_server import RedisServer, free_port
from .test_outbox import ANA, customer_writes
from .twilio_fake import BAD_NUMBER, FakeTwilio
from .whatsapp import WhatsApp

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "owner-secret"
PHONE_SCREEN = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = "chromium is not installed (apt-get install chromium)"
        if REQUIRE_REAL:
            pytest.fail(message + " but TAPBOOK_REQUIRE_REAL_REDIS=1 (CI installs it)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def serve(app: Flask) -> Iterator[tuple[Flask, str]]:
    """``app`` behind a real HTTP server thread."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=10)
    get_services(app).redis.close()


@pytest.fixture
def live_app(redis_server: RedisServer) -> Iterator[tuple[Flask, str]]:
    """The app behind a real HTTP server thread, on the real Redis."""
    redis.Redis.from_url(redis_server.url).flushdb()
    yield from serve(create_app(app_config(REDIS_URL=redis_server.url, ADMIN_PASSWORD=PASSWORD)))


@pytest.fixture
def live_buttons_app(redis_server: RedisServer, fake: FakeTwilio) -> Iterator[tuple[Flask, str]]:
    """The same in Content API mode: replies go through the outbox to the fake Twilio."""
    redis.Redis.from_url(redis_server.url).flushdb()
    yield from serve(create_app(content_config(fake, REDIS_URL=redis_server.url, ADMIN_PASSWORD=PASSWORD)))


def test_no_or_a_wrong_password_is_refused(browser, live_app: tuple[Flask, str]) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import Error

    _, base = live_app
    for credentials in (None, {"username": "owner", "password": "guess"}):
        context = browser.new_context(http_credentials=credentials)
        page = context.new_page()
        try:
            response = page.goto(base + "/admin")
        except Error as exc:  # headless Chromium may give up at the 401 instead of showing it
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
        else:
            assert response is not None and response.status == 401
        assert page.locator("h1").count() == 0
        answer = context.request.get(base + "/admin")  # what it was told, with the browser's credentials
        assert (answer.status, answer.text()) == (401, "Log in with the admin password.\n")
        assert answer.headers["www-authenticate"].startswith("Basic")
        context.close()


def test_the_owner_sees_the_day_and_cancels_a_booking(browser, live_app: tuple[Flask, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, base = live_app
    ana = book(WhatsApp(app.test_client(), TOKEN, name="Ana"), at="12:00")
    bob_phone = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    bob = book(bob_phone, day="Thu 15 Jan", at="10:00")
    bob_phone.send("STOP")
    context = browser.new_context(http_credentials={"username": "owner", "password": PASSWORD}, viewport=PHONE_SCREEN)
    page = context.new_page()
    questions: list[str] = []

    def answer(dialog) -> None:  # type: ignore[no-untyped-def]
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    response = page.goto(base + "/admin")
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text() == "Test Salon: bookings"
    assert page.locator("h2").all_inner_texts() == ["Wed 14 Jan", "Thu 15 Jan"]
    row = page.locator(f"#booking-{ana}")
    assert row.inner_text().split("\n")[0].startswith("12:00–12:30")
    assert "Ana · +34*****222" in row.inner_text() and row.locator(".optout").count() == 0
    assert page.locator(f"#booking-{bob} .optout").inner_text() == "no messages (STOP)"  # Bob wrote STOP
    # readable on a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)

    with page.expect_navigation():
        row.get_by_role("button", name=f"Cancel {ana}").click()
    assert questions == [f"Cancel booking {ana}?"]
    assert page.url == base + "/admin"  # the outcome travels in the session cookie, not in the URL
    assert page.locator(".notice").inner_text() == (
        f"Booking {ana} is cancelled. The customer was not told (no message channel is set up): please tell them."
    )
    assert context.cookies() == []  # read once, the notice leaves the cookie, and the emptied cookie is gone
    cancelled = page.locator(f"#booking-{ana}")
    assert cancelled.get_attribute("class") == "cancelled"
    assert cancelled.get_by_role("button").count() == 0
    assert page.locator(f"#booking-{bob}").get_by_role("button", name=f"Cancel {bob}").count() == 1
    assert get_services(app).redis.hget(f"tapbook:{{test}}:booking:{ana}", "status") == "cancelled"
    page.reload()
    assert page.locator(".notice").count() == 0  # shown once
    context.close()


def test_the_owner_sees_which_messages_did_not_reach_customers(
    browser,
    live_buttons_app: tuple[Flask, str],
    fake: FakeTwilio,  # type: ignore[no-untyped-def]
) -> None:
    """Twilio refuses Ana's reply for good: the owner's page says so, on top, readable on a phone."""
    app, base = live_buttons_app
    customer_writes(app, ANA)
    fake.plan.append(BAD_NUMBER)
    synced_worker(app).run_once()
    context = browser.new_context(http_credentials={"username": "owner", "password": PASSWORD}, viewport=PHONE_SCREEN)
    page = context.new_page()
    response = page.goto(base + "/admin")
    assert response is not None and response.status == 200
    section = page.locator("#undelivered")
    assert section.locator("h2").inner_text() == "Messages that did not reach customers"
    (row,) = section.locator("li").all_inner_texts()
    assert row.startswith("Wed 14 Jan 10:00") and "+34*****222" in row and "21211" in row
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()

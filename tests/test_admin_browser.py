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


def logged_in(browser, base: str, **context: object):  # type: ignore[no-untyped-def]
    """A browser context whose owner logged in with the form (and its page, on the diary)."""
    context_ = browser.new_context(**context)
    page = context_.new_page()
    page.goto(base + "/admin/login")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/admin/diary")
    return context_, page


def test_the_owner_logs_in_with_the_form_and_a_wrong_password_is_refused(browser, live_app: tuple[Flask, str]) -> None:  # type: ignore[no-untyped-def]
    _, base = live_app
    context = browser.new_context(viewport=PHONE_SCREEN)
    page = context.new_page()
    page.goto(base + "/admin")
    assert page.url == base + "/admin/login?next=/admin" and page.locator("h1").inner_text() == "Log in"
    page.get_by_label("Password").fill("a guess")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 401 and page.get_by_role("alert").inner_text() == "That password is not right."
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/admin")  # where it was going
    assert page.locator("h1").inner_text() == "Test Salon: bookings"
    cookie = next(c for c in context.cookies() if c["name"] == "tapbook_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(base + "/admin/login")
    page.goto(base + "/admin/diary")
    assert page.url.startswith(base + "/admin/login")  # logged out
    # scripts may still use HTTP basic; without credentials a non-browser client is told how
    answer = context.request.get(base + "/admin", headers={"Accept": "text/plain"})
    assert (answer.status, answer.text()) == (401, "Log in with the admin password.\n")
    assert answer.headers["www-authenticate"].startswith("Basic")
    context.close()


def test_the_owner_sees_the_day_and_cancels_a_booking(browser, live_app: tuple[Flask, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, base = live_app
    ana = book(WhatsApp(app.test_client(), TOKEN, name="Ana"), at="12:00")
    bob_phone = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    bob = book(bob_phone, day="Thu 15 Jan", at="10:00")
    bob_phone.send("STOP")
    context, page = logged_in(browser, base, viewport=PHONE_SCREEN)
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
    (cookie,) = context.cookies()  # the login's; the notice was read once and left it
    assert cookie["name"] == "tapbook_admin" and "_flashes" not in page.evaluate("document.cookie")  # HttpOnly anyway
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
    context, page = logged_in(browser, base, viewport=PHONE_SCREEN)
    response = page.goto(base + "/admin")
    assert response is not None and response.status == 200
    section = page.locator("#undelivered")
    assert section.locator("h2").inner_text() == "Messages that did not reach customers"
    (row,) = section.locator("li").all_inner_texts()
    assert row.startswith("Wed 14 Jan 10:00") and "+34*****222" in row and "21211" in row
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()

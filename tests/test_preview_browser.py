"""``/try`` in a real headless Chromium at phone size: book, move and cancel as WhatsApp shows it.

The app runs behind a real HTTP server thread (as the owner's page's browser tests do); every
tap on the page goes through the real, signed webhook from a preview phone that never reaches
Twilio (the fake Twilio here would fail the test on any request it did not expect).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services

from .conftest import app_config
from .content_phone import content_config
from .redis_server import RedisServer
from .test_admin_browser import PASSWORD, PHONE_SCREEN, browser, logged_in, serve
from .twilio_fake import FakeTwilio

__all__ = ["browser"]  # the fixture, shared with the owner's page's tests


@pytest.fixture
def embedded_app() -> Iterator[tuple[Flask, str]]:
    """The app on the embedded store (as the README's first command runs it): /try is open."""
    yield from serve(create_app(app_config()))


@pytest.fixture
def deployed_app(redis_server: RedisServer, fake: FakeTwilio) -> Iterator[tuple[Flask, str]]:
    """A real deployment in button mode: /try needs the owner's login."""
    redis.Redis.from_url(redis_server.url).flushdb()
    yield from serve(create_app(content_config(fake, REDIS_URL=redis_server.url, ADMIN_PASSWORD=PASSWORD)))


def last(page: Any) -> Any:
    """The latest message the bot sent with buttons (a quick reply or a list's opener)."""
    return page.locator(".group").last


def answered(page: Any, before: int) -> None:
    """Wait until the bot answered (a new message, and the last one not the customer's)."""
    page.wait_for_function(f"document.querySelectorAll('.group, .bubble.bot').length > {before}")
    page.wait_for_function("!document.querySelector('#chat').lastElementChild.classList.contains('me')")


def pick(page: Any, title: str) -> str:
    """Tap ``title`` under the bot's latest message: a quick-reply button, or a row of its list's
    sheet (opened with the list's button); which it was."""
    before = page.locator(".group, .bubble.bot").count()
    message = last(page)
    if message.locator(".opener").count():
        message.locator(".opener").click()
        assert page.locator("#sheet").is_visible()
        page.locator("#sheet .row", has_text=title).first.click()
        how = "list"
    else:
        message.get_by_role("button", name=title, exact=True).click()
        how = "button"
    answered(page, before)
    return how


def said(page: Any) -> str:
    return str(page.locator(".bot").last.inner_text())


def test_book_move_and_cancel_through_the_preview_at_phone_size(
    browser: Any, deployed_app: tuple[Flask, str], fake: FakeTwilio
) -> None:
    app, base = deployed_app
    context, page = logged_in(browser, base, viewport=PHONE_SCREEN)  # the owner's desk login
    assert page.goto(base + "/try").status == 200
    page.fill("#text", "hi")
    page.press("#text", "Enter")
    page.wait_for_selector(".group")
    assert "Welcome to Test Salon." in said(page)
    assert last(page).locator(".quick").all_inner_texts() == ["Book", "My bookings", "Language"]

    assert pick(page, "Book") == "button"
    assert said(page) == "Which service would you like?"
    assert last(page).locator(".quick").all_inner_texts() == ["Haircut", "Blow-dry"]  # two: quick replies
    pick(page, "Haircut")
    assert last(page).locator(".opener").inner_text() == "Choose"  # more than three days: a list
    last(page).locator(".opener").click()
    rows = [row.split("\n") for row in page.locator("#sheet .row").all_inner_texts()]
    assert rows[0] == ["Wed 14 Jan", "or type 1"] and ["Thu 15 Jan", "or type 2"] in rows
    page.locator("#close-sheet").click()
    assert pick(page, "Thu 15 Jan") == "list"
    pick(page, "10:00")
    assert said(page).startswith("Please check your booking:")
    pick(page, "Confirm")
    booked = page.locator(".bot").filter(has_text="Booked!").last.inner_text()
    ref = re.search(r"Your booking reference: (\w+)", booked)
    assert ref, booked
    db = get_services(app).redis
    assert db.hget(f"tapbook:{{test}}:booking:{ref[1]}", "phone").startswith("+999")  # a preview phone

    pick(page, "My bookings")
    pick(page, "Thu 15 Jan 10:00")
    pick(page, "Reschedule")
    pick(page, "Sat 17 Jan")
    pick(page, "11:00")
    pick(page, "Confirm")
    assert page.locator(".bot").filter(has_text="Moved!").count() == 1

    pick(page, "My bookings")
    pick(page, "Sat 17 Jan 11:00")
    pick(page, "Cancel booking")
    pick(page, "Yes, cancel it")
    assert page.locator(".bot").filter(has_text="Your booking is cancelled").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits a phone
    assert not fake.accepted and not fake.surprises  # nothing went to Twilio
    assert db.zcard("tapbook:{test}:due") == 0 and db.zcard("tapbook:{test}:reminders") == 0
    context.close()


def test_on_a_deployment_the_preview_needs_the_owners_login(deployed_app: tuple[Flask, str]) -> None:
    app, _ = deployed_app
    client = app.test_client()
    assert client.get("/try").status_code == 401
    assert client.get("/try", auth=("owner", "a guess")).status_code == 401
    assert client.get("/try", auth=("owner", PASSWORD)).status_code == 200
    forged = client.post("/try/send", json={"token": "made-up", "text": "hi"}, auth=("owner", PASSWORD))
    assert forged.status_code == 403  # a cross-site page cannot drive it without the page's signed token


def test_on_the_embedded_store_it_is_open_to_anyone(browser: Any, embedded_app: tuple[Flask, str]) -> None:
    _, base = embedded_app
    context = browser.new_context(viewport=PHONE_SCREEN)
    page = context.new_page()
    assert page.goto(base + "/try").status == 200
    page.fill("#text", "hi")
    page.press("#text", "Enter")
    page.wait_for_selector(".group")
    pick(page, "Book")
    pick(page, "Haircut")
    assert "which day suits you" in said(page)
    context.close()

"""The owner's desk in a real headless Chromium, at phone and desktop sizes: log in, find the day,
add a walk-in the bot then refuses to sell, move a booking, mark a no-show, search, log out.

The app runs behind a real HTTP server thread on the real Redis, on the test's clock (moved by the
test); customers book through the signed webhook.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from flask import Flask
from icalendar import Calendar

from bot import create_app, get_services

from .bookings import book
from .conftest import TOKEN, Clock, app_config
from .redis_server import RedisServer
from .test_admin_browser import PASSWORD, PHONE_SCREEN, browser, logged_in, serve
from .whatsapp import WhatsApp

__all__ = ["browser"]

DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def live(redis_server: RedisServer, clock: Clock) -> Iterator[tuple[Flask, str]]:
    redis.Redis.from_url(redis_server.url).flushdb()
    yield from serve(create_app(app_config(REDIS_URL=redis_server.url, ADMIN_PASSWORD=PASSWORD, CLOCK=clock)))


def notice_ref(db: Any, name: str) -> str:
    """The reference of the booking made for ``name``."""
    for ref in db.zrange("tapbook:{test}:bookings", 0, -1):
        if db.hget(f"tapbook:{{test}}:booking:{ref}", "name") == name:
            return str(ref)
    raise AssertionError(f"no booking for {name}")


def notice(page: Any) -> str:
    return str(page.locator(".notice").last.inner_text())


def unlabelled_inputs(page: Any) -> int:
    """Form controls a screen reader could not name (no label, no aria-label)."""
    return int(
        page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select')]
               .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).length"""
        )
    )


@pytest.mark.parametrize("screen", [PHONE_SCREEN, DESKTOP], ids=["phone", "desktop"])
def test_the_owner_runs_the_day_from_the_diary(
    browser: Any, live: tuple[Flask, str], clock: Clock, screen: dict[str, int]
) -> None:
    app, base = live
    ana = WhatsApp(app.test_client(), TOKEN, phone="+34600111222", name="Ana")
    ref = book(ana, at="12:00")  # Wed 14 Jan, today
    db = get_services(app).redis
    context, page = logged_in(browser, base, viewport=screen)
    assert page.locator("h1").inner_text() == "Test Salon: day of Wed 14 Jan"
    assert page.locator(".card").count() == 1 and "Ana" in page.locator(".card").inner_text()
    details = page.locator(f"#b-{ref}")
    assert "+34600111222" in details.inner_text()  # the full phone, for the owner only
    assert details.get_by_role("link", name="Call Ana").get_attribute("href") == "tel:+34600111222"
    assert details.get_by_role("link", name="WhatsApp").get_attribute("href") == "https://wa.me/34600111222"
    assert page.locator(".lane:not(.closed)").count() == 8  # 09:00-13:00, an hour of closed either side
    assert page.locator(".lane.closed").count() == 4
    assert unlabelled_inputs(page) == 0
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    # navigation: the next day, then the week
    page.get_by_role("link", name="Next day →").click()
    assert page.locator("h1").inner_text() == "Test Salon: day of Thu 15 Jan"
    page.get_by_role("link", name="Week view").click()
    assert page.locator(".col h2").all_inner_texts()[:3] == ["Mon 12 Jan", "Tue 13 Jan", "Wed 14 Jan"]
    page.get_by_role("link", name="Today").click()

    # a walk-in at 11:00 on Thursday: booked through the script, and the bot no longer offers 11:00
    page.goto(base + "/admin/diary?day=2026-01-15")
    page.get_by_label("Service", exact=True).select_option("cut")
    page.get_by_label("Time", exact=True).fill("11:00")
    page.get_by_label("Customer's name").fill("Walk In")
    page.get_by_label("Phone (+34…)").fill("+34611000000")
    page.get_by_role("button", name="Book", exact=True).click()
    assert notice(page).startswith("Booked ") and "Haircut, 2026-01-15 11:00, Walk In." in notice(page)
    bob = WhatsApp(app.test_client(), TOKEN, phone="+34622000000", name="Bob")
    times = bob.choose(bob.choose(bob.choose(bob.send("menu"), "Book"), "Haircut"), "Thu 15 Jan")
    assert "11:00" not in times.options and "10:30" in times.options
    page.get_by_label("Time", exact=True).fill("11:00")
    page.get_by_label("Customer's name").fill("Another")
    page.get_by_label("Phone (+34…)").fill("+34611000001")
    page.get_by_role("button", name="Book", exact=True).click()
    assert notice(page) == "11:00 on 2026-01-15 is not free for Haircut."  # never sold twice

    # the calendar feed: subscribed, a cancel shows as cancelled, a new address retires the old one
    url = page.get_by_label("Feed address").input_value()
    feed = Calendar.from_ical(context.request.get(url).body())
    walk_in_ref = notice_ref(db, "Walk In")
    (event,) = [e for e in feed.walk("VEVENT") if str(e["UID"]).startswith(walk_in_ref)]
    assert str(event["STATUS"]) == "CONFIRMED" and feed.walk("VTIMEZONE")
    page.goto(base + "/admin/diary?day=2026-01-15")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Cancel {walk_in_ref}").click()
    page.wait_for_url("**/admin**")
    again = Calendar.from_ical(context.request.get(url).body())
    (cancelled,) = [e for e in again.walk("VEVENT") if str(e["UID"]).startswith(walk_in_ref)]
    assert str(cancelled["STATUS"]) == "CANCELLED" and int(cancelled["SEQUENCE"]) > int(event["SEQUENCE"])
    page.goto(base + "/admin/diary")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="New address").click()
    assert notice(page).startswith("The calendar feed has a new address")
    new_url = page.get_by_label("Feed address").input_value()
    assert new_url != url and context.request.get(url).status == 404 and context.request.get(new_url).status == 200

    # Ana's booking moved to Thursday 10:00
    page.goto(base + "/admin/diary")
    page.locator(f"#move-time-{ref}").fill("10:00")
    page.locator(f"#move-day-{ref}").fill("2026-01-15")
    page.get_by_role("button", name=f"Move {ref}").click()
    assert notice(page).startswith(f"Moved {ref} to 2026-01-15 10:00")
    assert db.hget(f"tapbook:{{test}}:booking:{ref}", "status") == "rescheduled"

    # an hour after Thursday 10:00, the owner marks Ana a no-show
    clock.advance(days=1, hours=1, minutes=1)
    page.goto(base + "/admin/diary")
    moved = db.hget(f"tapbook:{{test}}:booking:{ref}", "rescheduled_to")
    page.get_by_role("button", name=f"Mark {moved} no-show").click()
    assert notice(page) == f"Booking {moved} marked no-show."
    assert page.locator(f"#b-{moved} .status").first.inner_text() == "no-show"
    assert db.hget(f"tapbook:{{test}}:booking:{moved}", "attendance") == "no_show"
    numbers = page.locator(".numbers")
    assert "No-show rate: 100 % (1 of 1 marked)" in " ".join(numbers.inner_text().split())
    assert numbers.locator("svg[role=img]").get_attribute("aria-label")  # the chart, named for screen readers

    # time off on Saturday afternoon... the salon's Saturday is 09:00-13:00: block 09:00-10:00
    page.goto(base + "/admin/diary?day=2026-01-17")
    page.get_by_label("Day off or hours off on").fill("2026-01-17")
    page.get_by_label("From", exact=True).fill("09:00")
    page.get_by_label("To", exact=True).fill("10:00")
    page.get_by_label("Why (for you)").fill("training")
    page.get_by_role("button", name="Block this time").click()
    assert notice(page).startswith("Blocked 2026-01-17 09:00–10:00: the bot offers none of it.")
    assert page.locator(".blocked").inner_text() == "time off 09:00–10:00: training"
    cy = WhatsApp(app.test_client(), TOKEN, phone="+34633000000", name="Cy")
    saturday = cy.choose(cy.choose(cy.choose(cy.send("menu"), "Book"), "Haircut"), "Sat 17 Jan")
    assert "09:00" not in saturday.options and "09:30" not in saturday.options and "10:00" in saturday.options
    page.get_by_role("button", name="Remove the time off of Sat 17 Jan 09:00–10:00").click()
    assert notice(page) == "The time off is removed: those times are offered again."

    # search by name, then log out
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Reference, name or phone").fill("walk")
    page.get_by_role("button", name="Search").click()
    assert page.locator("h2").inner_text() == "1 found"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(base + "/admin/login")
    context.close()


def test_a_cross_site_form_is_refused(live: tuple[Flask, str]) -> None:
    """A page elsewhere posting to the owner's desk with the owner's cookie: no CSRF token, refused."""
    app, _ = live
    owner = app.test_client()
    login = owner.get("/admin/login").get_data(as_text=True)
    token = login.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    assert owner.post("/admin/login", data={"password": PASSWORD, "csrf_token": token}).status_code == 303
    forged = owner.post(
        "/admin/walk-in",
        data={"service": "cut", "day": "2026-01-15", "time": "11:00", "name": "Eve", "phone": "+34699999999"},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 400 and "not sent from this site" in forged.get_data(as_text=True)
    assert get_services(app).redis.zcard("tapbook:{test}:bookings") == 0


def test_the_same_walk_in_form_sent_twice_books_once(live: tuple[Flask, str]) -> None:
    """A double click or a browser's resend on a service with room for three: one booking, not two."""
    app, _ = live
    owner = app.test_client()
    login = owner.get("/admin/login").get_data(as_text=True)
    token = login.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    assert owner.post("/admin/login", data={"password": PASSWORD, "csrf_token": token}).status_code == 303
    diary = owner.get("/admin/diary").get_data(as_text=True)
    form_token = diary.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": form_token, "service": "dry", "day": "2026-01-15", "time": "10:00"}
    form.update(name="Walk In", phone="+34611000000")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: owner.post("/admin/walk-in", data=form).status_code, range(2)))
    assert answers == [303, 303]
    assert get_services(app).redis.zcard("tapbook:{test}:bookings") == 1

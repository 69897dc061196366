"""Forged button IDs with real turn codes: nothing changes, the customer gets the current step back.

test_booking_flow covers tampered time buttons and made-up IDs; here the forger knows the
turn code of the message they are answering and swaps what the button points at: another
customer's booking reference, another action, an overlong or unknown ID.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from flask import Flask

from .conftest import TOKEN
from .test_booking_flow import BK, book, bookings, offered
from .whatsapp import WhatsApp

STALE = "That menu is out of date. Here is where we are now:"
BOB = "+447700900123"


def snapshot(db: redis.Redis) -> dict[str, object]:
    """Everything the booking store holds: booking records, indexes and day occupancy."""
    state: dict[str, object] = {}
    for key in sorted(db.keys(f"{BK}:*")):
        if key.split(":")[2] not in ("occ", "booking", "customer", "bookings", "from-hold"):
            continue  # the conversation's keys (session, message records) change with every tap
        kind = db.type(key)
        state[key] = db.hgetall(key) if kind == "hash" else db.zrange(key, 0, -1, withscores=True) if kind == "zset" \
            else db.get(key)  # fmt: skip
    return state


@pytest.fixture
def two_bookings(app: Flask, wa: WhatsApp, db: redis.Redis) -> tuple[WhatsApp, str, str]:
    """Ana booked 12:00 and Bob 12:30; returns Bob, Ana's REF and Bob's REF."""
    assert wa.choose(book(wa), "Confirm").text.startswith("Booked!")
    bob = WhatsApp(app.test_client(), TOKEN, phone=BOB, name="Bob")
    assert bob.choose(book(bob, at="12:30"), "Confirm").text.startswith("Booked!")
    refs = {b["phone"]: b["ref"] for b in bookings(db)}
    return bob, refs["+34600111222"], refs[BOB]


@pytest.mark.parametrize("step", ["booking", "cancel"])
def test_swapping_in_another_customers_reference_changes_nothing(
    db: redis.Redis, two_bookings: tuple[WhatsApp, str, str], step: str
) -> None:
    bob, ana_ref, bob_ref = two_bookings
    mine = bob.choose(bob.send("menu"), "My bookings")
    detail = bob.send("1")
    current = detail
    if step == "cancel":
        current = bob.choose(detail, "Cancel booking")
    before = snapshot(db)
    forgeries = [b.replace(bob_ref, ana_ref) for b in offered(db, BOB) if bob_ref in b]
    assert len(forgeries) >= 2  # reschedule and cancel, or yes and keep
    for forged in forgeries:
        answer = bob.tap(forged, "Yes")
        assert answer.text == f"{STALE}\n\n{current.text}"
        assert answer.options == current.options
    assert snapshot(db) == before
    assert bob_ref in mine.text and ana_ref not in mine.text  # Bob never even sees Ana's reference


def test_opening_another_customers_booking_from_my_list_changes_nothing(
    db: redis.Redis, two_bookings: tuple[WhatsApp, str, str]
) -> None:
    bob, ana_ref, bob_ref = two_bookings
    mine = bob.choose(bob.send("menu"), "My bookings")
    (button,) = offered(db, BOB)
    assert button.startswith("bkg1.")
    answer = bob.tap(button.replace(bob_ref, ana_ref), "Wed 14 Jan 12:00")
    assert answer.text.startswith(STALE)
    assert answer.options == mine.options
    assert ana_ref not in answer.text


TAMPER: dict[str, Callable[[str], str]] = {
    "wrong turn": lambda i: i.split(".")[0] + ".zz9:" + i.split(":", 1)[1],
    "no turn": lambda i: i.split(".")[0] + ":" + i.split(":", 1)[1],
    "other action": lambda i: i.replace(":confirm", ":confirmed"),
    "unknown prefix": lambda i: "hacked1." + i.split(".", 1)[1],
    "other version": lambda i: i.replace("hold1.", "hold2.", 1),
    "oversized": lambda i: i + "x" * 200,
    "control characters": lambda i: i + "\x00\x1b[2J",
}


@pytest.mark.parametrize("how", list(TAMPER))
def test_a_tampered_confirm_books_nothing_and_shows_the_summary_again(wa: WhatsApp, db: redis.Redis, how: str) -> None:
    summary = book(wa)
    confirm = next(i for i in offered(db) if i.endswith(":confirm"))
    before = snapshot(db)
    answer = wa.tap(TAMPER[how](confirm), "Confirm")
    assert answer.status == 200
    assert answer.text.startswith(STALE)
    assert answer.options == summary.options == ["Confirm", "Change", "Cancel"]
    assert bookings(db) == []
    assert snapshot(db) == before  # the hold is untouched too
    assert wa.tap(confirm, "Confirm").text.startswith("Booked!")  # the real button still works


@pytest.mark.parametrize("day", ["99991231", "00010101"])
def test_a_forged_day_at_the_end_of_the_calendar_is_out_of_date(wa: WhatsApp, db: redis.Redis, day: str) -> None:
    """The read-ahead plans a tapped day's listing before the tap is checked: it must not trip over it."""
    menu = wa.send("menu")
    answer = wa.tap(f"day1.1:cut:{day}", "Mon 1 Jan")
    assert answer.text.startswith(STALE) and answer.options == menu.options

"""Booking through POST /webhook, as a customer does it: book, see, move, cancel.

The test salon (tests/catalogs.py) opens Mon-Sat 09:00-13:00 in Madrid, 2 h notice, 14 days
ahead, closed Fri 16 Jan 2026. The clock stands at Wed 14 Jan 2026, 10:00 in Madrid.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.sessions import Session

from .bookings import age_holds
from .concurrency import run_together
from .conftest import TOKEN, Clock, app_config
from .whatsapp import Answer, WhatsApp

SESSION = "tapbook:{test}:session:+34600111222"
BK = "tapbook:{test}"


def book(wa: WhatsApp, service: str = "Haircut", day: str = "Wed 14 Jan", at: str = "12:00") -> Answer:
    """Menu → Book → service → day → time: returns the held summary."""
    menu = wa.send("menu")
    services = wa.choose(menu, "Book")
    days = wa.choose(services, service)
    while day not in days.options:  # later pages
        days = wa.choose(days, "More")
    times = wa.choose(days, day)
    return wa.choose(times, at)


def offered(db: redis.Redis, phone: str = "+34600111222") -> list[str]:
    """The button IDs the last reply offered (what WhatsApp would send back on a tap)."""
    return Session(db.hgetall(f"tapbook:{{test}}:session:{phone}")).offered


def bookings(db: redis.Redis) -> list[dict[str, str]]:
    keys = sorted(k for k in db.keys(f"{BK}:booking:*"))
    return [db.hgetall(k) for k in keys]


# -- the happy path --------------------------------------------------------------------------
def test_book_a_haircut_end_to_end(wa: WhatsApp, db: redis.Redis) -> None:
    menu = wa.send("hi")
    assert menu.options == ["Book", "My bookings", "Language"]
    services = wa.choose(menu, "Book")
    assert services.text.startswith("Which service would you like?")
    assert services.options == ["Haircut", "Blow-dry"]
    days = wa.choose(services, "Haircut")
    assert days.text.startswith("Haircut: which day suits you?")
    assert days.options[:4] == ["Wed 14 Jan", "Thu 15 Jan", "Sat 17 Jan", "Mon 19 Jan"]  # Fri closed, Sun shut
    times = wa.choose(days, "Wed 14 Jan")
    assert times.text.startswith("Which time on Wed 14 Jan?")
    assert times.options == ["12:00", "12:30"]  # 2 h notice from 10:00; the last one ends at 13:00
    summary = wa.choose(times, "12:00")
    assert summary.text.splitlines()[:3] == ["Please check your booking:", "Haircut, 25 EUR", "Wed 14 Jan, 12:00–12:30"]
    assert summary.text.splitlines()[3].startswith("Held for you until ")
    assert summary.options == ["Confirm", "Change", "Cancel"]
    done = wa.choose(summary, "Confirm")
    assert done.text.startswith("Booked! ✅ Haircut, Wed 14 Jan, 12:00–12:30.")
    (record,) = bookings(db)
    assert f"Your booking reference: {record['ref']}" in done.text
    assert done.options == ["Book", "My bookings", "Language"]
    assert record["status"] == "confirmed" and record["phone"] == "+34600111222" and record["name"] == "Ana"
    assert db.ttl(f"{BK}:booking:{record['ref']}") == -1  # bookings never expire
    mine = wa.choose(done, "My bookings")
    assert mine.text.splitlines()[1] == f"• Haircut, Wed 14 Jan, 12:00–12:30 ({record['ref']})"
    assert mine.options == ["Wed 14 Jan 12:00"]


def test_a_booked_time_is_no_longer_offered_to_anyone(app: Flask, wa: WhatsApp) -> None:
    wa.choose(book(wa), "Confirm")
    other = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    times = wa.choose(wa.choose(wa.choose(other.send("hi"), "Book"), "Haircut"), "Wed 14 Jan")
    assert times.options == ["12:30"]


def test_a_held_time_is_not_offered_to_others_until_released(app: Flask, wa: WhatsApp) -> None:
    summary = book(wa)
    other = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    days = other.choose(other.choose(other.send("hi"), "Book"), "Haircut")
    assert other.choose(days, "Wed 14 Jan").options == ["12:30"]
    assert wa.choose(summary, "Cancel").text.startswith("No problem, nothing was booked.")
    days = other.send("back")
    assert other.choose(days, "Wed 14 Jan").options == ["12:00", "12:30"]


def test_in_spanish_dates_and_words_are_spanish(wa: WhatsApp) -> None:
    wa.send("hola", path="/webhook?lang=es")
    services = wa.send("1", path="/webhook?lang=es")
    assert services.text.startswith("¿Qué servicio quieres?")
    days = wa.send("1", path="/webhook?lang=es")
    assert days.text.startswith("Corte: ¿qué día te viene bien?")
    assert days.options[:3] == ["mié 14 ene", "jue 15 ene", "sáb 17 ene"]
    summary = wa.send("1", path="/webhook?lang=es")
    summary = wa.send("1", path="/webhook?lang=es")
    assert summary.text.splitlines()[:3] == ["Revisa tu reserva:", "Corte, 25 EUR", "mié 14 ene, 12:00–12:30"]
    assert summary.options == ["Confirmar", "Cambiar", "Cancelar"]
    done = wa.send("Confirmar", path="/webhook?lang=es")
    assert done.text.startswith("¡Reservado! ✅ Corte, mié 14 ene, 12:00–12:30.")


# -- paging, back, menu ------------------------------------------------------------------------
def test_dates_are_paged_with_more_and_back(wa: WhatsApp) -> None:
    days = wa.choose(wa.choose(wa.send("hi"), "Book"), "Haircut")
    # Wed 14 .. Wed 28 Jan without Sundays and the closed Friday: 12 days
    assert days.options == [
        "Wed 14 Jan", "Thu 15 Jan", "Sat 17 Jan", "Mon 19 Jan", "Tue 20 Jan",
        "Wed 21 Jan", "Thu 22 Jan", "Fri 23 Jan", "Sat 24 Jan", "More",
    ]  # fmt: skip
    more = wa.choose(days, "More")
    assert more.options == ["Mon 26 Jan", "Tue 27 Jan", "Wed 28 Jan", "Back"]
    assert wa.choose(more, "Back").options == days.options
    assert wa.choose(wa.choose(days, "More"), "Tue 27 Jan").text.startswith("Which time on Tue 27 Jan?")


def test_typed_back_walks_one_step_back_at_every_step(wa: WhatsApp) -> None:
    summary = book(wa)
    times = wa.send("back")
    assert times.text.startswith("Which time on Wed 14 Jan?")
    assert times.options == ["12:00", "12:30"]  # going back released the hold
    assert wa.send("back").text.startswith("Haircut: which day suits you?")
    assert wa.choose(wa.send("back"), "Blow-dry").text.startswith("Blow-dry: which day")
    assert wa.send("back").text.startswith("Which service")
    assert wa.send("back").text.startswith("What would you like to do?")
    assert summary.options == ["Confirm", "Change", "Cancel"]


def test_typed_menu_works_at_every_step_and_releases_a_hold(app: Flask, wa: WhatsApp) -> None:
    book(wa)
    assert wa.send("menu").options == ["Book", "My bookings", "Language"]
    other = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    days = other.choose(other.choose(other.send("hi"), "Book"), "Haircut")
    assert other.choose(days, "Wed 14 Jan").options == ["12:00", "12:30"]


def test_change_goes_back_to_the_times_and_a_new_pick_replaces_the_hold(app: Flask, wa: WhatsApp) -> None:
    summary = book(wa)
    times = wa.choose(summary, "Change")
    assert times.options == ["12:00", "12:30"]
    wa.choose(times, "12:30")
    other = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    days = other.choose(other.choose(other.send("hi"), "Book"), "Haircut")
    assert other.choose(days, "Wed 14 Jan").options == ["12:00"]


def test_switching_language_mid_booking_re_renders_the_step(wa: WhatsApp) -> None:
    days = wa.choose(wa.choose(wa.send("hi"), "Book"), "Haircut")
    picker = wa.send("language")
    answer = wa.choose(picker, "Español")
    assert answer.text.startswith("¡Hecho! A partir de ahora te escribiré en español.")
    assert "Corte: ¿qué día te viene bien?" in answer.text
    assert answer.options[0] == "mié 14 ene"
    assert len(answer.options) == len(days.options)


# -- retries, double taps, stale buttons ----------------------------------------------------------
def test_the_same_confirm_webhook_twice_books_once_with_one_reply(wa: WhatsApp, db: redis.Redis) -> None:
    summary = book(wa)
    form = wa.form(summary.number("Confirm"))
    first, again = wa.post(form), wa.post(form)
    assert again.body == first.body
    assert len(bookings(db)) == 1


def test_confirm_tapped_twice_books_once_and_the_second_tap_is_out_of_date(wa: WhatsApp, db: redis.Redis) -> None:
    book(wa)
    confirm = next(i for i in offered(db) if i.startswith("hold1.") and i.endswith(":confirm"))
    first = wa.tap(confirm, "Confirm")
    second = wa.tap(confirm, "Confirm")
    assert first.text.startswith("Booked! ✅")
    assert second.text.startswith("That menu is out of date. Here is where we are now:")
    assert second.options == ["Book", "My bookings", "Language"]
    assert len(bookings(db)) == 1


def test_confirm_tapped_together_many_times_books_once(redis_server: Any) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(app_config(REDIS_URL=redis_server.url))
    wa = WhatsApp(app.test_client(), TOKEN)
    book(wa)
    db = get_services(app).redis
    confirm = next(i for i in offered(db) if i.endswith(":confirm"))
    answers = run_together(20, lambda i: WhatsApp(app.test_client(), TOKEN).tap(confirm, "Confirm"))
    assert all(a.status == 200 for a in answers)
    assert sum(a.text.startswith("Booked! ✅") for a in answers) == 1
    assert len(bookings(db)) == 1


def test_an_old_time_button_after_moving_on_does_nothing(wa: WhatsApp, db: redis.Redis) -> None:
    wa.choose(wa.choose(wa.choose(wa.send("hi"), "Book"), "Haircut"), "Wed 14 Jan")
    old_time = offered(db)[0]
    wa.send("back")  # the conversation moves on to the dates
    answer = wa.tap(old_time, "12:00")
    assert answer.text.startswith("That menu is out of date. Here is where we are now:")
    assert "Haircut: which day suits you?" in answer.text
    assert not db.keys(f"{BK}:occ:*") or not any(db.hgetall(k) for k in db.keys(f"{BK}:occ:*"))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda i: i.replace(".", ".zz", 1),  # wrong turn code
        lambda i: i.split(".")[0] + ":" + i.split(":", 1)[1],  # no turn code
        lambda i: i[:-1] + ("1" if i[-1] != "1" else "2"),  # another time
        lambda i: "zzz1.1:1",  # unknown prefix
        lambda i: i + "0" * 130,  # oversized
    ],
    ids=["turn", "no-turn", "other-time", "prefix", "oversized"],
)
def test_tampered_time_buttons_change_nothing(wa: WhatsApp, db: redis.Redis, tamper: Any) -> None:
    wa.choose(wa.choose(wa.choose(wa.send("hi"), "Book"), "Haircut"), "Wed 14 Jan")
    answer = wa.tap(tamper(offered(db)[0]), "12:00")
    assert answer.text.startswith("That menu is out of date.")
    assert answer.options == ["12:00", "12:30"]
    assert not any(db.hgetall(k) for k in db.keys(f"{BK}:occ:*"))


def test_after_the_session_expires_an_old_button_says_the_menu_is_out_of_date(wa: WhatsApp, db: redis.Redis) -> None:
    book(wa)
    confirm = next(i for i in offered(db) if i.endswith(":confirm"))
    db.delete(SESSION)  # 30 quiet minutes later
    answer = wa.tap(confirm, "Confirm")
    assert answer.text.startswith("That menu is out of date.")
    assert answer.options == ["Book", "My bookings", "Language"]
    assert bookings(db) == []


# -- holds that lapse ----------------------------------------------------------------------------
def test_a_lapsed_hold_still_books_when_the_time_is_free(backend: dict[str, Any]) -> None:
    app = create_app(app_config(**backend))
    wa = WhatsApp(app.test_client(), TOKEN)
    summary = book(wa)
    age_holds(get_services(app).redis)
    assert wa.choose(summary, "Confirm").text.startswith("Booked! ✅ Haircut, Wed 14 Jan, 12:00–12:30.")


def test_a_lapsed_hold_taken_meanwhile_offers_the_nearest_times(backend: dict[str, Any]) -> None:
    app = create_app(app_config(**backend))
    ana = WhatsApp(app.test_client(), TOKEN)
    bob = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    summary = book(ana)
    age_holds(get_services(app).redis)
    bob.choose(book(bob), "Confirm")  # Ana's hold lapsed: Bob gets 12:00
    answer = ana.choose(summary, "Confirm")
    assert answer.text.startswith("Sorry, 12:00 on Wed 14 Jan was just taken.\n\nThe nearest free times:")
    assert answer.options == [
        "Wed 14 Jan 12:30",
        "Thu 15 Jan 09:00",
        "Thu 15 Jan 09:30",
        "Thu 15 Jan 10:00",
        "Thu 15 Jan 10:30",
    ]
    summary = ana.choose(answer, "Wed 14 Jan 12:30")
    assert ana.choose(summary, "Confirm").text.startswith("Booked! ✅ Haircut, Wed 14 Jan, 12:30–13:00.")
    assert len(bookings(get_services(app).redis)) == 2


# -- rules the server enforces ---------------------------------------------------------------------
def test_a_fourth_upcoming_booking_is_refused_in_one_line(wa: WhatsApp, db: redis.Redis) -> None:
    for day in ("Thu 15 Jan", "Sat 17 Jan", "Mon 19 Jan"):
        assert wa.choose(book(wa, day=day, at="09:00"), "Confirm").text.startswith("Booked!")
    answer = wa.choose(book(wa, day="Tue 20 Jan", at="09:00"), "Confirm")
    assert answer.text.startswith(
        "You already have 3 upcoming bookings, the most we allow. Please cancel one first.\n\nWhat would you like"
    )
    assert len(bookings(db)) == 3


def test_capacity_three_takes_three_blow_dries_at_once(app: Flask) -> None:
    people = [WhatsApp(app.test_client(), TOKEN, phone=f"+3460000000{i}", name=f"P{i}") for i in range(4)]
    for person in people[:3]:
        assert person.choose(book(person, service="Blow-dry"), "Confirm").text.startswith("Booked! ✅ Blow-dry")
    fourth = people[3]
    days = fourth.choose(fourth.choose(fourth.send("hi"), "Book"), "Blow-dry")
    assert days.options[0] == "Thu 15 Jan"  # 12:00 was Wednesday's only time, and it is full


# -- my bookings: cancel and reschedule ---------------------------------------------------------------
def open_booking(wa: WhatsApp) -> Answer:
    mine = wa.choose(wa.send("menu"), "My bookings")
    return wa.send("1") if mine.options else mine


def test_cancel_asks_once_more_then_frees_the_time(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    wa.choose(book(wa), "Confirm")
    detail = open_booking(wa)
    assert detail.options == ["Reschedule", "Cancel booking", "Back"]
    question = wa.choose(detail, "Cancel booking")
    assert question.text.startswith("Cancel this booking?\nHaircut, Wed 14 Jan, 12:00–12:30")
    assert question.options == ["Yes, cancel it", "No, keep it"]
    detail = wa.choose(question, "No, keep it")
    assert detail.options == ["Reschedule", "Cancel booking", "Back"]
    question = wa.choose(detail, "Cancel booking")
    done = wa.choose(question, "Yes, cancel it")
    assert done.text.startswith("Your booking is cancelled: Haircut, Wed 14 Jan, 12:00–12:30")
    (record,) = bookings(db)
    assert record["status"] == "cancelled"  # kept, as history
    other = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    days = other.choose(other.choose(other.send("hi"), "Book"), "Haircut")
    assert other.choose(days, "Wed 14 Jan").options == ["12:00", "12:30"]


def test_cancel_inside_the_cutoff_is_refused_in_one_line(backend: dict[str, Any]) -> None:
    clock = Clock()
    app = create_app(app_config(CLOCK=clock, **backend))
    wa = WhatsApp(app.test_client(), TOKEN)
    wa.choose(book(wa), "Confirm")  # 12:00, booked at 10:00
    clock.advance(minutes=30)  # 10:30: 90 minutes before the start
    question = wa.choose(open_booking(wa), "Cancel booking")
    answer = wa.choose(question, "Yes, cancel it")
    assert answer.text.startswith("Sorry, bookings can't be changed online less than 2 h before they start.")
    assert bookings(get_services(app).redis)[0]["status"] == "confirmed"


def test_reschedule_into_its_own_old_time_and_elsewhere(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    wa.choose(book(wa, day="Thu 15 Jan", at="10:00"), "Confirm")
    days = wa.choose(open_booking(wa), "Reschedule")
    assert days.text.startswith("Haircut: which day suits you?")
    times = wa.choose(days, "Thu 15 Jan")
    assert "10:00" in times.options  # its own time is not taken by itself
    summary = wa.choose(times, "10:30")
    assert summary.text.startswith("Please check your new time:")
    moved = wa.choose(summary, "Confirm")
    assert moved.text.startswith("Moved! ✅ Haircut, Thu 15 Jan, 10:30–11:00.")
    old, new = sorted(bookings(db), key=lambda b: b["start"])
    assert (old["status"], new["status"]) == ("rescheduled", "confirmed")
    assert old["rescheduled_to"] == new["ref"] and new["rescheduled_from"] == old["ref"]
    other = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    days = other.choose(other.choose(other.send("hi"), "Book"), "Haircut")
    assert "10:00" in other.choose(days, "Thu 15 Jan").options  # the old time is free again
    mine = wa.choose(wa.send("menu"), "My bookings")
    assert mine.options == ["Thu 15 Jan 10:30"]


def test_a_failed_reschedule_leaves_the_booking_intact(backend: dict[str, Any]) -> None:
    app = create_app(app_config(**backend))
    ana = WhatsApp(app.test_client(), TOKEN)
    bob = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    ana.choose(book(ana, day="Thu 15 Jan", at="10:00"), "Confirm")
    summary = ana.choose(ana.choose(ana.choose(open_booking(ana), "Reschedule"), "Thu 15 Jan"), "11:00")
    age_holds(get_services(app).redis)  # Ana's hold on 11:00 lapses and Bob books it
    bob.choose(book(bob, day="Thu 15 Jan", at="11:00"), "Confirm")
    answer = ana.choose(summary, "Confirm")
    assert answer.text.startswith("Sorry, 11:00 on Thu 15 Jan was just taken.")
    db = get_services(app).redis
    mine = [b for b in bookings(db) if b["phone"] == "+34600111222"]
    assert [(b["status"], b["day"]) for b in mine] == [("confirmed", "20260115")]
    assert ana.choose(ana.send("menu"), "My bookings").options == ["Thu 15 Jan 10:00"]


def test_no_one_can_see_or_touch_another_customers_booking(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    wa.choose(book(wa), "Confirm")
    ref = bookings(db)[0]["ref"]
    bob = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    assert bob.choose(bob.send("hi"), "My bookings").text.startswith("You have no upcoming bookings.")
    for forged in (f"mng1.1:yes:{ref}", f"mng1.1:cancel:{ref}", f"bkg1.1:{ref}:1768388400"):
        answer = bob.tap(forged, "Yes")
        assert answer.text.startswith("That menu is out of date.")
    assert bookings(db)[0]["status"] == "confirmed"


def test_help_mid_booking_keeps_the_customers_place(wa: WhatsApp) -> None:
    times = wa.choose(wa.choose(wa.choose(wa.send("hi"), "Book"), "Haircut"), "Wed 14 Jan")
    answer = wa.send("help")
    assert answer.text.startswith("Tap a button, or reply with the number of an option.")
    assert "Which time on Wed 14 Jan?" in answer.text
    assert answer.options == times.options
    assert wa.choose(answer, "12:00").text.startswith("Please check your booking:")

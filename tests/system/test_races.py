"""Many customers, one slot; one customer, many taps: exactly-once under gunicorn's workers.

Holds last ``hold_minutes`` by the Redis clock; where a scenario needs a hold to have lapsed,
it ages the hold's expiry in Redis (``age_holds``) instead of waiting ten minutes.
"""

from __future__ import annotations

import pytest

from bot.sessions import Session

from ..bookings import age_holds
from ..concurrency import run_together
from .conftest import System
from .harness import BOOKED, PREFIX, REF, Customer, bookings, customers, in_parallel

CUSTOMERS = 100
CHECK = "Please check your booking:"


@pytest.mark.parametrize(("service", "capacity"), [("Solo", 1), ("Trio", 3)])
def test_race_for_the_last_slot(system: System, service: str, capacity: int) -> None:
    people = customers(system.twilio, CUSTOMERS, area=str(capacity))
    days = people[0].to_days(service)
    day = days.options[2]  # a day at least a full day ahead, whatever the time now
    times = people[0].send(day)
    at = times.options[0]
    walked = in_parallel(people[1:], lambda c: (c.to_days(service), c.send(day))[1])
    assert all(t.options == times.options for t in walked)

    # everyone taps the same time at once: the holds go to exactly `capacity` of them
    picks = run_together(CUSTOMERS, lambda i: people[i].send(at))
    assert [p.status for p in picks] == [200] * CUSTOMERS
    held = [p.text.startswith(CHECK) for p in picks]
    assert sum(held) == capacity
    assert all(p.text.startswith("Sorry, that time was just taken.") for p, h in zip(picks, held, strict=True) if not h)

    # the others get there too, one after the other, each once the holds before had lapsed
    for person, was_held in zip(people, held, strict=True):
        if not was_held:
            age_holds(system.db, PREFIX)
            assert person.to_summary(service, day, at).text.startswith(CHECK)
    age_holds(system.db, PREFIX)

    # ...and all confirm together
    answers = run_together(CUSTOMERS, lambda i: people[i].send("Confirm"))
    assert [a.status for a in answers] == [200] * CUSTOMERS
    booked = [a for a in answers if a.text.startswith(BOOKED)]
    refused = [a for a in answers if not a.text.startswith(BOOKED)]
    assert len(booked) == capacity
    for answer in refused:
        assert "was just taken." in answer.text and "The nearest free times:" in answer.text, answer.text
        assert answer.options and at not in answer.options

    found = bookings(system.db)
    assert len(found) == capacity
    assert {b["status"] for b in found} == {"confirmed"}
    assert len({b["phone"] for b in found}) == capacity
    assert len({b["start"] for b in found}) == 1
    assert sorted(b["ref"] for b in found) == sorted(REF.search(a.text)[1] for a in booked)
    system.report.scenario(
        f"race for the last slot (capacity {capacity})",
        customers=CUSTOMERS,
        bookings_expected=capacity,
        bookings_found=len(found),
        refusals_with_alternatives=len(refused),
    )


def confirm_button(system: System, person: Customer) -> str:
    """The Confirm button's ID the summary offered (what WhatsApp sends back on a tap)."""
    offered = Session(system.db.hgetall(f"system:{{system}}:session:{person.phone}")).offered
    return next(button for button in offered if button.endswith(":confirm"))


def test_double_tap_storm_books_once(system: System) -> None:
    (person,) = customers(system.twilio, 1, area="7")
    days = person.to_days("Solo")
    times = person.send(days.options[2])
    assert person.send(times.options[0]).text.startswith(CHECK)
    confirm = confirm_button(system, person)
    answers = run_together(20, lambda i: person.tap(confirm, "Confirm"))
    assert [a.status for a in answers] == [200] * 20
    booked = [a for a in answers if a.text.startswith(BOOKED)]
    assert len(booked) == 1
    others = {a.text.split("\n")[0] for a in answers if not a.text.startswith(BOOKED)}
    assert others <= {"That menu is out of date. Here is where we are now:"}
    found = bookings(system.db)
    assert [b["ref"] for b in found] == [REF.search(booked[0].text)[1]]
    assert system.db.zcard(f"system:{{system}}:customer:{person.phone}") == 1
    system.report.scenario("double-tap storm", taps=20, bookings_expected=1, bookings_found=len(found))

"""One tap, one write, under gunicorn's workers and threads, with two businesses on the deployment.

* Bursts from one phone leave at most one live hold: the one its conversation shows.
* Two options tapped together (Confirm and Cancel, buttons or typed): what is stored and what the
  replies say always agree.
* Random concurrent taps (hypothesis) keep both true.
* Workers SIGKILLed at random while customers of both businesses book: every booking is there once,
  no hold is left that no conversation names.
* The two businesses share service ids, hours and customers, and nothing of one reaches the other.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.booking.records import hold_token
from bot.sessions import Session

from ..concurrency import run_together
from .conftest import System
from .harness import PREFIX, Customer, Reply, bookings, customers, holds, in_parallel, keys, redis_ms

#: what each business says, in its own language
SAYS = {
    "system": {"check": "Please check your booking:", "booked": "Booked! ✅", "ref": "Your booking reference: ",
               "nothing": "No problem, nothing was booked.", "no-bookings": "You have no upcoming bookings."},
    "other": {"check": "Revisa tu reserva:", "booked": "¡Reservado! ✅", "ref": "Tu código de reserva: ",
              "nothing": "Sin problema, no se ha reservado nada.", "no-bookings": "No tienes reservas pendientes."},
}  # fmt: skip
SOLO, TRIO, GROUP = "1", "2", "3"  # the services' numbers in either business's list


def to_times(person: Customer, service: str = GROUP, day: int = 2) -> Reply:
    """hi → Book → service → a day (``day``-th offered): the times, by typed numbers (any language)."""
    assert person.send("menu").status == 200
    person.send("1")  # Book
    days = person.send(service)
    return person.send(str(day + 1)) if len(days.options) > day else days


def to_summary(person: Customer, service: str = GROUP, time_number: int = 1) -> Reply:
    to_times(person, service)
    summary = person.send(str(time_number))
    assert summary.text.startswith(SAYS[person.business]["check"]), summary.text
    return summary


class Tracked(Customer):
    """A customer whose every message is remembered, so the holds its taps placed can be told apart."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sids: list[str] = []

    def form(self, text: str, **extra: str) -> dict[str, str]:
        form = super().form(text, **extra)
        self.sids.append(form["MessageSid"])
        return form

    def holds(self, db: redis.Redis) -> set[str]:
        """The live holds this customer's messages placed."""
        mine = {hold_token(sid) for sid in self.sids}
        return {token for token in live_holds(db, self.business) if token in mine}


def tracked(twilio: object, count: int, *, area: str, business: str) -> list[Tracked]:
    return [Tracked(twilio, f"+1555{area}{i:04d}", f"C{area}{i}", business) for i in range(count)]


def session(db: redis.Redis, person: Customer) -> Session:
    return Session(db.hgetall(keys(person.business).session(person.phone)))


def live_holds(db: redis.Redis, business: str) -> dict[str, int]:
    """The holds still live by the Redis clock: token -> expiry."""
    now = redis_ms(db)
    return {key.rsplit("/", 1)[1]: expires for key, expires in holds(db, business).items() if expires > now}


def refs_in(replies: list[Reply], business: str) -> set[str]:
    said = SAYS[business]["ref"]
    return {m[1] for r in replies if (m := re.search(re.escape(said) + r"([A-Z0-9]{6})", r.text))}


def booked_by(db: redis.Redis, person: Customer) -> list[dict[str, str]]:
    return [b for b in bookings(db, person.business) if b["phone"] == person.phone]


# -- bursts ------------------------------------------------------------------------------------------
def test_ten_taps_of_one_phone_within_a_millisecond_leave_at_most_one_hold(system: System) -> None:
    """At the times step, ten taps at once, ten rounds in each business: "1"…"9" typed with a time
    tapped, or ten different times tapped."""
    after: list[int] = []
    for business, area in (("system", "40"), ("other", "41")):
        (person,) = tracked(system.twilio, 1, area=area, business=business)
        for burst in range(10):
            to_times(person)
            offered = session(system.db, person).offered
            if burst % 2:  # ten taps on the times offered
                forms = [person.form("", ButtonPayload=b, ButtonText="t", MessageType="button") for b in offered[:10]]
            else:  # "1" to "9" typed at once, and a time tapped with them
                forms = [person.form(str(n)) for n in range(1, 10)]
                forms.append(person.form("", ButtonPayload=offered[4], ButtonText="t", MessageType="button"))
            replies = run_together(len(forms), lambda i, forms=forms: system.twilio.deliver(forms[i]))
            assert {r.status for r in replies} == {200}
            held = live_holds(system.db, business)
            after.append(len(held))
            assert len(held) <= 1
            assert set(held) == ({session(system.db, person).get("hold")} - {""})  # the one it shows
    system.report.scenario(
        "bursts of 10 taps in 1 ms at the times step (10 rounds x 2 businesses)",
        live_holds_after_a_burst=f"at most {max(after)} ({after.count(1)} bursts left 1, {after.count(0)} left 0)",
    )


# -- two options at once ----------------------------------------------------------------------------
TRIALS = 30  # per kind and business: 4 x 30 = 120 trials


def trial(person: Customer, kind: str, db: redis.Redis) -> tuple[int, list[Reply]]:
    """Confirm and Cancel of one held summary at once; the bookings stored for this hold and the replies."""
    summary = to_summary(person)
    before = {b["ref"] for b in booked_by(db, person)}
    if kind == "buttons":
        offered = session(db, person).offered
        confirm = next(b for b in offered if b.endswith(":confirm"))
        cancel = next(b for b in offered if b.endswith(":cancel"))
        forms = [person.form("", ButtonPayload=b, ButtonText="b", MessageType="button") for b in (confirm, cancel)]
    else:
        assert summary.options[0] and summary.options[2]  # Confirm is 1, Cancel is 3
        forms = [person.form("1"), person.form("3")]
    replies = run_together(2, lambda i: person.twilio.deliver(forms[i]))
    made = [b for b in booked_by(db, person) if b["ref"] not in before]
    return len(made), replies


def test_confirm_and_cancel_tapped_together_say_what_was_stored(system: System) -> None:
    outcomes: dict[str, int] = {"booked": 0, "not booked": 0}
    agreed = 0
    for business, area in (("system", "42"), ("other", "43")):
        people = tracked(system.twilio, TRIALS, area=area, business=business)
        for kind in ("buttons", "typed"):
            results = in_parallel(people, lambda p, kind=kind: (p, *trial(p, kind, system.db)), threads=10)
            for person, made, replies in results:
                says = SAYS[business]
                assert {r.status for r in replies} == {200}
                booked_replies = [r for r in replies if says["booked"] in r.text]
                nothing_replies = [r for r in replies if says["nothing"] in r.text]
                assert made in (0, 1)
                if made:
                    assert len(booked_replies) == 1 and not nothing_replies, [r.text for r in replies]
                    assert refs_in(replies, business) <= {b["ref"] for b in booked_by(system.db, person)}
                    outcomes["booked"] += 1
                else:
                    assert not booked_replies, [r.text for r in replies]
                    outcomes["not booked"] += 1
                agreed += 1
                assert person.holds(system.db) <= {session(system.db, person).get("hold")}
    system.report.scenario(
        "Confirm and Cancel tapped together (buttons and typed, two businesses)",
        trials=agreed,
        stored_and_replies_agree=agreed,
        **{k.replace(" ", "_"): v for k, v in outcomes.items()},
    )


# -- random concurrent taps --------------------------------------------------------------------------
_phones = itertools.count()
ACTIONS = st.one_of(
    st.integers(1, 9).map(str),
    st.sampled_from(["menu", "back", "hi", "Book", "Confirm", "Cancel", "Change"]),
    st.integers(0, 9).map(lambda n: f"#{n}"),  # tap the n-th offered button
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds=st.lists(st.lists(ACTIONS, min_size=2, max_size=6), min_size=1, max_size=5))
def test_random_concurrent_taps_keep_one_hold_and_honest_replies(system: System, rounds: list[list[str]]) -> None:
    n = next(_phones)
    business = ("system", "other")[n % 2]
    person = Tracked(system.twilio, f"+155544{n:05d}", f"R{n}", business)
    to_times(person)
    announced: set[str] = set()
    for actions in rounds:
        offered = session(system.db, person).offered
        forms = []
        for action in actions:
            if action.startswith("#"):
                index = int(action[1:])
                button = offered[index] if index < len(offered) else "nav1:menu"
                forms.append(person.form("", ButtonPayload=button, ButtonText="b", MessageType="button"))
            else:
                forms.append(person.form(action))
        replies = run_together(len(forms), lambda i, forms=forms: system.twilio.deliver(forms[i]))
        assert {r.status for r in replies} == {200}
        announced |= refs_in(replies, business)
        held = person.holds(system.db)
        assert len(held) <= 1 and held <= {session(system.db, person).get("hold")}
        assert announced == {b["ref"] for b in booked_by(system.db, person)}  # every booking told, nothing else


# -- workers killed at random -----------------------------------------------------------------------
@pytest.fixture
def killer(system: System) -> Iterator[threading.Event]:
    """A thread that SIGKILLs a random gunicorn worker every 100 ms until the event is set."""
    stop = threading.Event()
    kills = []

    def kill() -> None:
        rng = random.Random(7)
        while not stop.wait(0.1):
            workers = system.app.workers()
            if workers:
                victim = rng.choice(workers)
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills.append(victim)
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    yield stop
    stop.set()
    thread.join(timeout=5)
    system.app.wait_for_workers()
    system.report.scenario("worker kill storm", workers_killed=len(kills))


def deliver_until_answered(person: Customer, form: dict[str, str]) -> Reply:
    """As Twilio does: a dropped connection is retried (the same MessageSid), a few times."""
    for _ in range(20):
        reply = person.twilio.deliver(form)
        if reply.status:
            return reply
        time.sleep(0.05)
    raise AssertionError("no answer after 20 deliveries")


def book_through(person: Customer) -> Reply:
    """hi, Book, Group class, day 3, a time of one's own, Confirm: each delivered until answered."""
    says = SAYS[person.business]
    for text in ["menu", "1", GROUP, "3"]:
        deliver_until_answered(person, person.form(text))
    number = str(int(person.phone[-2:]) % 9 + 1)
    summary = deliver_until_answered(person, person.form(number))
    if not summary.text.startswith(says["check"]):  # a retry landed after its reply: show the step again
        summary = deliver_until_answered(person, person.form(number))
    return deliver_until_answered(person, person.form("1"))


def test_workers_killed_at_random_while_both_businesses_book(system: System, killer: threading.Event) -> None:
    people = [
        *customers(system.twilio, 20, area="45", business="system"),
        *customers(system.twilio, 20, area="45", business="other"),  # the same phones, at the other business
    ]
    done = in_parallel(people, book_through, threads=8)
    killer.set()
    for person, reply in zip(people, done, strict=True):
        assert reply.text.startswith(SAYS[person.business]["booked"]), reply.text
        assert len(booked_by(system.db, person)) == 1  # once, whatever was killed under it
    for business in ("system", "other"):
        named = {session(system.db, p).get("hold") for p in people if p.business == business} - {""}
        assert live_holds(system.db, business).keys() <= named  # no hold that no conversation shows
    system.report.scenario(
        "bookings under a worker kill storm (two businesses)",
        customers=len(people),
        bookings_found=sum(len(bookings(system.db, b)) for b in ("system", "other")),
        orphan_holds=0,
    )


# -- two businesses, no cross-talk --------------------------------------------------------------------
def test_the_same_phones_race_for_the_same_slot_at_both_businesses(system: System) -> None:
    people = {business: customers(system.twilio, 30, area="46", business=business) for business in ("system", "other")}
    everyone = [*people["system"], *people["other"]]
    in_parallel(everyone, lambda p: to_times(p, SOLO), threads=12)
    picks = run_together(len(everyone), lambda i: everyone[i].send("1"))
    for business in ("system", "other"):
        winners = [p for p, r in zip(everyone, picks, strict=True)
                   if p.business == business and r.text.startswith(SAYS[business]["check"])]  # fmt: skip
        assert len(winners) == 1  # one place in each business: the other's hold is not in its way
    confirms = in_parallel(everyone, lambda p: p.send("1"), threads=12)
    for business in ("system", "other"):
        found = bookings(system.db, business)
        assert len(found) == 1
        (winner,) = [p for p in people[business] if p.phone == found[0]["phone"]]
        told = [r for p, r in zip(everyone, confirms, strict=True) if p is winner]
        assert told[0].text.startswith(SAYS[business]["booked"])
    # nothing crosses over: keys, bookings lists, languages
    assert all(key.startswith((f"{PREFIX}:{{system}}:", f"{PREFIX}:{{other}}:")) for key in system.db.scan_iter("*"))
    for person in everyone:
        mine = person.send("menu")
        listing = person.send("2")  # My bookings
        theirs = booked_by(system.db, person)
        if theirs:
            assert theirs[0]["ref"] in listing.text
        else:
            assert listing.text.startswith(SAYS[person.business]["no-bookings"]), listing.text
        assert mine.options[0] == ("Book" if person.business == "system" else "Reservar")
    system.report.scenario(
        "the same 30 phones racing for one slot at both businesses",
        taps_at_once=len(everyone),
        holds_won={"system": 1, "other": 1},
        bookings_found={b: len(bookings(system.db, b)) for b in ("system", "other")},
    )

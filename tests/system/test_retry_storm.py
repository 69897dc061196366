"""Twilio retries: every webhook of 50 conversations delivered three times, partly late."""

from __future__ import annotations

from .conftest import System
from .harness import BOOKED, REF, Customer, Reply, bookings, customers, in_parallel

CONVERSATIONS = 50
DELIVERIES = 3
# hi, Book, Group class, the third day, its first time, Confirm: typed numbers, as customers do
SCRIPT = ["hi", "1", "3", "3", "1", "1"]


def converse_with_retries(person: Customer) -> list[list[Reply]]:
    """Each message is delivered twice at once; its third delivery comes late, with the next message."""
    forms = [person.form(text) for text in SCRIPT]
    replies: list[list[Reply]] = [[] for _ in forms]
    late: int | None = None
    for step in [*range(len(forms)), None]:
        batch = [] if step is None else [step, step]
        if late is not None:
            batch.append(late)
        delivered = in_parallel(batch, lambda i: person.twilio.deliver(forms[i]), threads=3)
        for index, reply in zip(batch, delivered, strict=True):
            replies[index].append(reply)
        late = step
    return replies


def test_retry_storm_books_each_conversation_once(system: System) -> None:
    people = customers(system.twilio, CONVERSATIONS, area="2")
    conversations = in_parallel(people, converse_with_retries, threads=10)
    system.report.add_duplicates(CONVERSATIONS * len(SCRIPT) * (DELIVERIES - 1))

    refs = {}
    for person, replies in zip(people, conversations, strict=True):
        for deliveries in replies:
            assert len(deliveries) == DELIVERIES
            assert {r.status for r in deliveries} == {200}
            assert len({r.body for r in deliveries}) == 1  # every retry gets the first reply, byte for byte
        done = replies[-1][0]
        assert done.text.startswith(BOOKED), done.text
        refs[person.phone] = REF.search(done.text)[1]

    found = bookings(system.db)
    assert len(found) == CONVERSATIONS
    assert {b["phone"]: b["ref"] for b in found} == refs  # one booking per customer, the one confirmed
    for person in people:
        assert system.db.zcard(f"system:{{system}}:customer:{person.phone}") == 1
    system.report.scenario(
        "retry storm",
        conversations=CONVERSATIONS,
        webhooks=CONVERSATIONS * len(SCRIPT) * DELIVERIES,
        duplicates=CONVERSATIONS * len(SCRIPT) * (DELIVERIES - 1),
        bookings_expected=CONVERSATIONS,
        bookings_found=len(found),
    )

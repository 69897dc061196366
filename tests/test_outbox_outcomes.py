"""Every way a send can end, on a real redis-server with the real twilio client (issue 20).

A send is sent, certainly not sent, or uncertain. Uncertain sends are never repeated blind: a
status callback naming the attempt settles them, else the worker looks the message up at
Twilio. Callbacks count only for the attempt they name. Time is the app's clock, moved by the
tests, except where the test is about the Redis server's clock itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.channels.twilio import Uncertain
from bot.outbox import UNDELIVERED_KEEP_MS, UNDELIVERED_MAX, WINDOW, Outbox, epoch_ms
from bot.outbox.clock import RedisClock
from bot.outbox.worker import IN_FLIGHT, LOOKUP_ANSWERED, LOOKUP_UNANSWERED, Worker, backoff

from . import test_outbox
from .conftest import Clock
from .content_phone import content_config, synced_worker
from .test_outbox import ANA, BOB, Crash, bodies, crash_after_send, customer_writes, status_callback
from .twilio_fake import (
    ANSWER_LOST,
    BAD_NUMBER,
    PROBLEM_503,
    PROCESSED_THEN_500,
    SERVER_ERROR,
    TIMEOUT,
    TOO_MANY_WAIT_30,
    UNREADABLE,
    FakeTwilio,
)

#: the Content API app on the real server, as test_outbox's tests have it
app = test_outbox.app


def record_of(outbox: Outbox, phone: str) -> dict[str, Any]:
    (record,) = outbox.delivery(phone).values()
    return record


# -- uncertain answers: found at Twilio, or sent again -----------------------------------------------
@pytest.mark.parametrize("answer", [PROCESSED_THEN_500, UNREADABLE])
def test_an_answer_twilio_gave_after_creating_the_message_is_found_not_sent_twice(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock, answer: str
) -> None:
    customer_writes(app, ANA)
    fake.plan.append(answer)
    assert worker.run_once() == 0
    assert record_of(outbox, ANA)["state"] == "uncertain"
    clock.advance(seconds=LOOKUP_ANSWERED.total_seconds() - 1)
    worker.run_once()
    assert len(fake.sends()) == 1 and not fake.lookups()  # a callback may still settle it
    clock.advance(seconds=1)
    assert worker.run_once() == 1
    (accepted,) = fake.accepted
    sent = {"state": "sent", "at": 0, "attempts": 1, "sid": accepted["sid"], "m": ""}
    assert record_of(outbox, ANA) | {"at": 0, "m": ""} == sent
    assert len(fake.sends()) == 1 and len(fake.lookups()) == 1
    assert get_services(app).stats.get("outbox.found") == 1


@pytest.mark.parametrize("answer", [SERVER_ERROR, PROBLEM_503])
def test_a_5xx_twilio_did_not_act_on_is_sent_again_once_the_lookup_says_so(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock, answer: str
) -> None:
    customer_writes(app, ANA)
    outbox.enqueue_text(ANA, "second")
    fake.plan.append(answer)
    assert worker.run_once() == 0  # the second waits behind the first: order holds
    clock.advance(seconds=LOOKUP_ANSWERED.total_seconds())
    assert worker.run_once() == 2
    assert len(fake.accepted) == 2 and bodies(fake, ANA)[1] == "second"
    assert get_services(app).stats.get("outbox.resent") == 1


def test_an_exception_nobody_expected_leaves_the_entry_uncertain_and_the_pass_goes_on(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    customer_writes(app, BOB)

    def explode_for_ana(form: dict[str, Any]) -> None:
        if form["To"] == f"whatsapp:{ANA}":
            raise RuntimeError("something in the HTTP stack nobody planned for")

    fake.before_send = explode_for_ana
    assert worker.run_once() == 1  # Bob's reply still went in the same pass
    assert bodies(fake, BOB) and record_of(outbox, ANA)["state"] == "uncertain"
    fake.before_send = None
    clock.advance(seconds=LOOKUP_ANSWERED.total_seconds())
    assert worker.run_once() == 1  # not at Twilio: sent again, not stuck
    assert len(bodies(fake, ANA)) == 1 and outbox.pending(ANA) == 0


def test_a_lookup_that_fails_sends_nothing_and_asks_again(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    fake.plan.append(ANSWER_LOST)
    fake.list_plan.append(SERVER_ERROR)
    worker.run_once()
    clock.advance(seconds=LOOKUP_UNANSWERED.total_seconds())
    assert worker.run_once() == 0
    assert len(fake.sends()) == 1 and len(fake.lookups()) == 1 and record_of(outbox, ANA)["lookups"] == 1
    clock.advance(seconds=backoff(1).total_seconds())
    assert worker.run_once() == 1  # the second lookup finds it
    assert len(fake.sends()) == 1 and record_of(outbox, ANA)["sid"] == fake.accepted[0]["sid"]


def test_a_lookup_never_takes_another_message_to_the_customer_for_this_one(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    """Ana's menu was sent a moment ago (its sid is on record); the notice after it times out
    without reaching Twilio. The lookup sees the menu, created in the same minute, and must not
    take it for the notice: the notice is sent."""
    customer_writes(app, ANA)
    worker.run_once()
    outbox.enqueue_text(ANA, "Your stylist is running late")
    fake.plan.append(TIMEOUT)
    worker.run_once()
    clock.advance(seconds=LOOKUP_UNANSWERED.total_seconds())
    assert worker.run_once() == 1
    assert bodies(fake, ANA)[1:] == ["Your stylist is running late"] and len(fake.accepted) == 2


# -- certainly not sent --------------------------------------------------------------------------------
def test_retry_after_is_honoured(app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock) -> None:
    customer_writes(app, ANA)
    fake.plan.append(TOO_MANY_WAIT_30)
    worker.run_once()
    clock.advance(seconds=29)  # the usual backoff (2 s) is long past
    assert worker.run_once() == 0 and len(fake.sends()) == 1
    clock.advance(seconds=1)
    assert worker.run_once() == 1


# -- status callbacks ----------------------------------------------------------------------------------
def test_a_callback_naming_another_customers_entry_changes_nothing(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    """Bob's reply is waiting out an uncertain send. A callback Twilio signed for Ana's message,
    re-aimed at Bob's entry (with or without the right attempt's nonce), neither marks Bob's reply
    sent nor cuts its wait; Bob's reply is settled by its own lookup."""
    customer_writes(app, ANA)
    worker.run_once()
    (ana,) = fake.accepted
    customer_writes(app, BOB)
    fake.plan.append(TIMEOUT)  # Twilio did not take Bob's reply
    worker.run_once()
    (bob_entry,) = [e for e, r in outbox.delivery(BOB).items() if r["state"] == "uncertain"]
    nonce = outbox.delivery(BOB)[bob_entry]["nonce"]
    due = outbox.next_due_ms()
    base = ana["StatusCallback"].split("?")[0]
    for query in (f"b=test&to=%2B{BOB[1:]}&entry={bob_entry}&n=00000000", f"b=test&to=%2B{BOB[1:]}&entry={bob_entry}"):
        assert status_callback(app, f"{base}?{query}", ana["sid"], "sent", To=f"whatsapp:{ANA}") == 204
    aimed = f"{base}?b=test&to=%2B{BOB[1:]}&entry={bob_entry}&n={nonce}"  # even Bob's nonce, with Ana's To
    assert status_callback(app, aimed, ana["sid"], "sent", To=f"whatsapp:{ANA}") == 204
    assert outbox.delivery(BOB)[bob_entry]["state"] == "uncertain" and outbox.next_due_ms() == due
    assert worker.run_once() == 0  # nothing proven, nothing due
    clock.advance(seconds=LOOKUP_UNANSWERED.total_seconds())
    assert worker.run_once() == 1
    assert len(bodies(fake, BOB)) == 1 and outbox.delivery(BOB)[bob_entry]["sid"] != ana["sid"]


def test_a_proof_frees_the_customer_a_dead_worker_held(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock
) -> None:
    """A worker dies after Twilio accepted Ana's reply; its lease would keep Ana for IN_FLIGHT. The
    status callback proves the send: Ana is due at once and finished without a second send."""
    customer_writes(app, ANA)
    outbox.enqueue_text(ANA, "second")
    with pytest.raises(Crash):
        synced_worker(app, after_send=crash_after_send).run_once()
    db = get_services(app).redis
    db.set(outbox.keys.lease(ANA), "a-worker-killed-by-SIGKILL", px=15_000)  # nobody released it
    (accepted,) = fake.accepted
    assert status_callback(app, accepted["StatusCallback"], accepted["sid"], "sent") == 204
    assert not db.exists(outbox.keys.lease(ANA)) and outbox.next_due_ms() == epoch_ms(clock())
    assert synced_worker(app).run_once() == 2  # no clock moved: no waiting out the lease
    assert len(fake.sends()) == 2 and bodies(fake, ANA)[1] == "second"


def test_a_proof_that_lands_while_the_worker_writes_down_an_uncertain_send_is_not_overridden(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio answers 500 but did create Ana's reply; its status callback lands just after the worker
    wrote the attempt down as uncertain and before it let Ana go (due in 5 s, for a lookup). She is
    due now, and the proven reply is finished without a lookup or a second send."""
    customer_writes(app, ANA)
    fake.plan.append(PROCESSED_THEN_500)
    note = outbox.note

    def proof_lands(phone: str, entry_id: str, record: dict[str, Any]) -> str | None:
        written = note(phone, entry_id, record)
        (created,) = fake.accepted
        assert status_callback(app, created["StatusCallback"], created["sid"], "sent") == 204
        return written

    monkeypatch.setattr(outbox, "note", proof_lands)
    assert worker.run_once() == 0
    assert outbox.next_due_ms() == epoch_ms(clock())  # not the lookup's 5 s
    monkeypatch.undo()
    assert worker.run_once() == 1  # no clock moved
    assert len(fake.sends()) == 1 and not fake.lookups() and record_of(outbox, ANA)["state"] == "sent"


def test_a_send_proved_and_finished_elsewhere_while_it_hung_stays_finished(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock
) -> None:
    """Twilio created Ana's menu but the request hangs; its status callback proves the attempt, and
    another worker finishes the entry as sent, all before the hung request times out. The timeout
    must not turn the finished record back into an uncertain one: that record would stay in flight
    for ever, the customer's doorbell would be pushed 30 s away, and its MessageSid, no longer on
    record, would be taken by a later lookup for another reply of hers (which then never went)."""
    customer_writes(app, ANA)
    hung = synced_worker(app)
    send = hung.sender.send

    def proved_and_finished_while_hanging(phone: str, message: dict[str, Any], callback: str | None) -> str:
        try:
            return send(phone, message, callback)
        except Uncertain:
            (accepted,) = fake.accepted
            assert status_callback(app, accepted["StatusCallback"], accepted["sid"], "sent") == 204
            assert synced_worker(app).run_once() == 1  # another worker finishes it as sent
            raise

    hung.sender.send = proved_and_finished_while_hanging  # type: ignore[method-assign]
    fake.plan.append(ANSWER_LOST)
    assert hung.run_once() == 0
    (menu,) = fake.accepted
    assert record_of(outbox, ANA)["state"] == "sent" and record_of(outbox, ANA)["sid"] == menu["sid"]
    assert outbox.next_due_ms() is None  # nothing waits: not pushed 30 s away

    customer_writes(app, ANA, "menu")  # her next reply: Twilio fails it before creating anything
    fake.plan.append(SERVER_ERROR)
    worker = synced_worker(app)
    assert worker.run_once() == 0
    clock.advance(seconds=LOOKUP_ANSWERED.total_seconds())
    assert worker.run_once() == 1
    assert len(fake.accepted) == 2  # sent again: the lookup did not take the menu for it


def test_a_proof_that_cuts_a_drain_short_leaves_the_customer_due_at_once(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock
) -> None:
    """Twilio's "sent" callback can come before the worker has written its 201 down: it proves the
    attempt, makes Ana due now and drops the lease, so the worker's next send finds the lease gone
    and stops. Meanwhile the worker's own loop claimed Ana again (and skipped her: still draining),
    which moved her doorbell to the end of a claim, 15 s away. The drain that stops must leave her
    due now: her next reply must not wait out a lease nobody holds."""
    customer_writes(app, ANA)
    outbox.enqueue_text(ANA, "second")

    def proved_before_written_down(phone: str, sid: str) -> None:
        (accepted,) = fake.accepted
        assert status_callback(app, accepted["StatusCallback"], sid, "sent") == 204
        assert outbox.claim(outbox.now_ms(), 50, 15_000)[0] == [ANA]  # the loop's claim, skipped as busy

    assert synced_worker(app, after_send=proved_before_written_down).run_once() == 1
    assert outbox.next_due_ms() == epoch_ms(clock())
    assert synced_worker(app).run_once() == 1  # no clock moved
    assert bodies(fake, ANA)[1] == "second" and len(fake.accepted) == 2


def test_a_reply_queued_as_a_drain_ends_does_not_wait_out_the_lease(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock
) -> None:
    """A worker finishes Ana's last reply and finds her stream empty. That instant her next reply is
    queued and another worker claims her: the first still holds her lease, so the claim fails, and it
    has moved her doorbell to the end of a claim, 15 s away. The first worker's last word (with the
    lease's release, in one step) makes her due now, so the reply goes at once."""
    customer_writes(app, ANA)
    finish = outbox.finish
    other = synced_worker(app)
    interfered: list[int] = []

    def a_reply_and_another_worker_as_it_finishes(
        phone: str, entry_id: str, record: dict[str, Any], **kwargs: Any
    ) -> int:
        left = finish(phone, entry_id, record, **kwargs)
        if left == 0 and not interfered:
            customer_writes(app, ANA, "menu")
            interfered.append(other.run_once())
        return left

    outbox.finish = a_reply_and_another_worker_as_it_finishes  # type: ignore[method-assign]
    assert synced_worker(app).run_once() == 1
    assert interfered == [0]  # the other worker could not take her
    assert outbox.next_due_ms() == epoch_ms(clock())  # due now, not at the end of that claim
    assert other.run_once() == 1  # no clock moved
    assert len(fake.accepted) == 2 and outbox.pending(ANA) == 0 and outbox.next_due_ms() is None


# -- many in flight -------------------------------------------------------------------------------------
def test_a_hung_send_holds_up_only_its_own_customer(app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock) -> None:
    """Twilio hangs on Ana's reply until Bob's has gone through: one worker, two sends at once."""
    customer_writes(app, ANA)
    customer_writes(app, BOB)
    bob_sent = threading.Event()

    def hang_on_ana(form: dict[str, Any]) -> None:
        if form["To"] == f"whatsapp:{ANA}":
            assert bob_sent.wait(timeout=10), "Bob's reply waited behind Ana's"
        else:
            bob_sent.set()

    fake.before_send = hang_on_ana
    assert synced_worker(app, pool=4).run_once() == 2
    assert [m["To"] for m in fake.accepted] == [f"whatsapp:{BOB}", f"whatsapp:{ANA}"]


def test_a_queued_reply_wakes_the_worker_at_once(redis_server: Any, fake: FakeTwilio) -> None:
    """The worker's loop polls every 30 s here; the reply still leaves as soon as it is queued,
    because the script that queued it rang the bell (the real server's pub/sub, the server's clock)."""
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(content_config(fake, REDIS_URL=redis_server.url))
    sent = threading.Event()
    fake.before_send = lambda form: sent.set()
    worker = synced_worker(app, pool=4)
    stop = threading.Event()
    loop = threading.Thread(target=worker.run, args=(stop,), kwargs={"idle": 30.0}, daemon=True)
    loop.start()
    try:
        listening = time.monotonic() + 10
        while not get_services(app).redis.pubsub_numsub(get_services(app).shared_keys.outbox_bell)[0][1]:
            assert time.monotonic() < listening, "the worker never subscribed to the bell"
            time.sleep(0.01)
        worker.wake()  # past its first (empty) pass: the next wait is the 30 s poll
        customer_writes(app, ANA)
        assert sent.wait(timeout=10), "the reply waited for the poll"
    finally:
        stop.set()
        worker.wake()
        loop.join(timeout=10)
        get_services(app).redis.close()
    assert not loop.is_alive() and len(fake.accepted) == 1


def test_a_reply_queued_as_its_customer_is_let_go_is_not_held_for_a_lease(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ana's next tap lands just as the worker lets her go (her phone is due again now) and the loop
    claims her before the thread that drained her has finished: the claim finds her still busy
    here. She is sent at once when that thread ends, not when the claim's lease would have ended
    (the app's clock stands still here: "then" would be never)."""
    customer_writes(app, ANA)
    worker = synced_worker(app, pool=4)
    leave = outbox.leave
    keys = outbox.keys

    def next_tap_lands(phone: str, token: str, due_ms: int | None = None, entry_id: str = "") -> None:
        monkeypatch.setattr(outbox, "leave", leave)  # once
        customer_writes(app, ANA, "menu")  # queued after the last finish read an empty stream
        leave(phone, token, due_ms, entry_id)  # her phone is due now
        claimed = time.monotonic() + 10
        while float(outbox.client.zscore(keys.due, ANA) or 0) <= outbox.now_ms():  # the loop's claim
            assert time.monotonic() < claimed, "the loop never claimed her"
            time.sleep(0.005)

    monkeypatch.setattr(outbox, "leave", next_tap_lands)
    stop = threading.Event()
    loop = threading.Thread(target=worker.run, args=(stop,), kwargs={"idle": 0.02}, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while len(fake.accepted) < 2:
            assert time.monotonic() < deadline, "her second reply waited for the claim's lease"
            time.sleep(0.01)
    finally:
        stop.set()
        worker.wake()
        loop.join(timeout=10)
    sent = bodies(fake, ANA)
    assert len(sent) == 2 and sent[0] != sent[1] and outbox.pending(ANA) == 0


def test_messages_given_up_are_listed_for_the_owner_newest_first_and_bounded(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    fake.plan.append(BAD_NUMBER)
    worker.run_once()  # refused for good
    customer_writes(app, BOB)
    worker.run_once()  # sent: not listed
    clock.advance(hours=25)
    outbox.enqueue_text(BOB, "a notice a day later")
    worker.run_once()  # outside the 24-hour window
    listed = outbox.undelivered()
    assert [(m.phone, m.state) for m in listed] == [(BOB, "undeliverable"), (ANA, "failed")]
    assert "24-hour window" in listed[0].reason and "21211" in listed[1].reason
    assert listed[0].at - listed[1].at == timedelta(hours=25)
    for n in range(UNDELIVERED_MAX + 5):
        outbox.finish(BOB, f"{n + 10}-0", {"state": "failed", "at": outbox.now_ms(), "attempts": 1, "reason": str(n)})
    assert len(outbox.undelivered(limit=1000)) == UNDELIVERED_MAX
    assert 0 < outbox.client.pttl(outbox.keys.undelivered) <= UNDELIVERED_KEEP_MS
    clock.advance(days=8)
    outbox.finish(BOB, "1-0", {"state": "failed", "at": outbox.now_ms(), "attempts": 1, "reason": "a week later"})
    assert [m.reason for m in outbox.undelivered(limit=1000)] == ["a week later"]  # older than 7 days: gone


# -- one clock: the Redis server's ---------------------------------------------------------------------
def skewed(outbox: Outbox, seconds: float) -> None:
    """This host's clock is ``seconds`` off: the outbox still reads the server's."""
    outbox.clock = RedisClock(outbox.client, outbox.keys.due, local=lambda: time.time() + seconds)


@pytest.fixture
def on_redis_time(redis_server: Any, fake: FakeTwilio) -> Iterator[Flask]:
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(content_config(fake, REDIS_URL=redis_server.url))  # no CLOCK: production's clocks
    yield app
    get_services(app).redis.close()


def test_a_worker_an_hour_behind_still_sees_a_closed_window(on_redis_time: Flask, fake: FakeTwilio) -> None:
    app = on_redis_time
    worker = synced_worker(app)
    (outbox,) = worker.outboxes
    customer_writes(app, ANA)
    worker.run_once()
    db = get_services(app).redis
    silent = RedisClock(db, outbox.keys.due)() - WINDOW - (WINDOW / 24 / 12)  # 24 h 05 min ago, server time
    db.set(outbox.keys.window(ANA), epoch_ms(silent))
    entry = outbox.enqueue_text(ANA, "a notice after 24 h 05 min of silence")
    skewed(outbox, -3600)
    worker.run_once()
    assert outbox.delivery(ANA)[entry]["state"] == "undeliverable" and len(fake.accepted) == 1


def test_a_worker_150_s_ahead_does_not_settle_a_send_still_on_the_wire(on_redis_time: Flask, fake: FakeTwilio) -> None:
    app = on_redis_time
    worker = synced_worker(app)
    (outbox,) = worker.outboxes
    customer_writes(app, ANA)
    (entry,) = [entry for entry, _ in get_services(app).redis.xrange(outbox.keys.outbox(ANA))]
    on_the_wire = epoch_ms(RedisClock(outbox.client, outbox.keys.due)()) - 1300
    outbox.write_record(ANA, entry, {"state": "sending", "at": on_the_wire, "attempts": 1, "nonce": "0badcafe"})
    skewed(outbox, 150)
    assert worker.run_once() == 0
    assert not fake.sends() and not fake.lookups()  # another worker's request may still be answered
    due = outbox.next_due_ms()
    assert due is not None and abs(due - (on_the_wire + IN_FLIGHT.total_seconds() * 1000)) < 1000


# -- failures Twilio reports after accepting -------------------------------------------------------------
def test_a_rate_limit_reported_after_accepting_is_sent_again(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    worker.run_once()
    (first,) = fake.accepted
    (entry,) = outbox.delivery(ANA)
    assert status_callback(app, first["StatusCallback"], first["sid"], "failed", ErrorCode="63018") == 204
    assert outbox.delivery(ANA)[entry]["state"] == "failed"
    assert "queued again" in outbox.delivery(ANA)[entry]["reason"] and outbox.pending(ANA) == 1
    assert worker.run_once() == 0  # WhatsApp asked us to slow down: not at once
    clock.advance(seconds=5)
    assert worker.run_once() == 1
    assert len(fake.accepted) == 2 and bodies(fake, ANA)[0] == bodies(fake, ANA)[1]
    assert get_services(app).stats.get("outbox.requeued") == 1 and not outbox.undelivered()  # it did reach her


def test_a_failure_reported_after_a_newer_message_went_is_given_up_visibly(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    """Resending the older reply now would put it after the newer one: it is not sent again."""
    customer_writes(app, ANA)
    outbox.enqueue_text(ANA, "newer")
    worker.run_once()
    first, _ = fake.accepted
    assert status_callback(app, first["StatusCallback"], first["sid"], "undelivered", ErrorCode="63018") == 204
    record = next(iter(outbox.delivery(ANA).values()))
    assert record["state"] == "failed" and "superseded" in record["reason"] and outbox.pending(ANA) == 0
    assert get_services(app).stats.get("outbox.failed_after_accept") == 1
    assert [m.reason for m in outbox.undelivered()] == [record["reason"]]
    assert any("Twilio reported undelivered (63018)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("code", ["63003", "63024"])
def test_a_lasting_failure_is_given_up_visibly(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, code: str
) -> None:
    customer_writes(app, ANA)
    worker.run_once()
    (first,) = fake.accepted
    assert status_callback(app, first["StatusCallback"], first["sid"], "failed", ErrorCode=code) == 204
    record = record_of(outbox, ANA)
    assert record["state"] == "failed" and f"({code})" in record["reason"] and "m" not in record
    assert outbox.pending(ANA) == 0 and get_services(app).stats.get("outbox.failed_after_accept") == 1
    (given_up,) = outbox.undelivered()  # the owner's page lists it
    assert given_up.phone == ANA and given_up.reason == record["reason"]


def test_a_failure_naming_another_message_changes_nothing(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker
) -> None:
    customer_writes(app, ANA)
    worker.run_once()
    (first,) = fake.accepted
    other = "SM" + "e" * 32
    assert status_callback(app, first["StatusCallback"], other, "failed", ErrorCode="63018") == 204
    assert record_of(outbox, ANA)["state"] == "sent" and outbox.pending(ANA) == 0


def test_a_message_that_keeps_failing_is_queued_again_three_times_then_given_up(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    for _ in range(4):
        worker.run_once()
        message = fake.accepted[-1]
        assert status_callback(app, message["StatusCallback"], message["sid"], "failed", ErrorCode="63018") == 204
        clock.advance(seconds=5)
    worker.run_once()
    assert len(fake.accepted) == 4 and outbox.pending(ANA) == 0
    assert get_services(app).stats.get("outbox.requeued") == 3
    assert get_services(app).stats.get("outbox.failed_after_accept") == 1

"""What the outbox keeps per customer, and for how long (issue 13, item 5).

A customer's outbox stream is deleted once drained (by a script that deletes it only if it
is still empty), finished delivery records are pruned ``FINISHED_KEEP`` after they
finished (by their own time, on the app's clock), and ``acc:<id>`` proofs live only while
their entry is in flight. Time is the app's clock, moved by the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.outbox import FINISHED_KEEP, Outbox, epoch_ms
from bot.outbox.worker import LOOKUP_UNANSWERED, Worker

from .conftest import NOW, Clock
from .content_phone import content_config, synced_worker
from .test_outbox import ANA, BOB, Crash, bodies, crash_after_send, customer_writes, status_callback
from .twilio_fake import FakeTwilio

DAYS = 42  # six weeks
TAPS_A_DAY = 5
#: the most one customer's outbox keys (stream, delivery records, window stamp, lease) may take at
#: any time: about two days of records at five messages a day (release 1.x grew by ~1.1 KB a day)
BOUND = 3_000


@pytest.fixture
def app(backend: dict[str, Any], fake: FakeTwilio, clock: Clock) -> Iterator[Flask]:
    """Content API mode on the embedded fakeredis and on the real server (``backend``)."""
    app = create_app(content_config(fake, CLOCK=clock, **backend))
    yield app
    get_services(app).redis.close()


@pytest.fixture
def real_app(redis_server: Any, fake: FakeTwilio, clock: Clock) -> Iterator[Flask]:
    """Content API mode on the real server only (MEMORY USAGE)."""
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(content_config(fake, REDIS_URL=redis_server.url, CLOCK=clock))
    yield app
    get_services(app).redis.close()


def callbacks(app: Flask, message: dict[str, str], *statuses: str) -> None:
    for status in statuses:
        assert status_callback(app, message["StatusCallback"], message["sid"], status) == 204


def customer_bytes(db: redis.Redis, outbox: Outbox, phone: str) -> int:
    """MEMORY USAGE of every outbox key of ``phone`` (a key that does not exist takes nothing)."""
    keys = outbox.keys
    names = (keys.outbox(phone), keys.delivery(phone), keys.window(phone), keys.lease(phone))
    return sum(int(db.memory_usage(name, samples=0) or 0) for name in names)


# -- memory over weeks ------------------------------------------------------------------------------
def test_one_customers_memory_stays_flat_over_six_weeks_of_taps(
    real_app: Flask, fake: FakeTwilio, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five taps a day for six weeks, each reply sent by the worker and reported sent, delivered
    and read by Twilio: what the customer's outbox keys take is the same in week 6 as in week 1."""
    services = get_services(real_app)
    db, outbox, worker = services.redis, services.outboxes["test"], synced_worker(real_app)
    daily: list[int] = []
    for day in range(DAYS):
        for tap in range(TAPS_A_DAY):
            clock.now = NOW + timedelta(days=day, hours=2 * tap)
            customer_writes(real_app, ANA)
            assert worker.run_once() == 1
            callbacks(real_app, fake.accepted[-1], "sent", "delivered", "read")
        daily.append(customer_bytes(db, outbox, ANA))
    statuses = [int(db.memory_usage(key, samples=0) or 0) for key in db.scan_iter(outbox.keys.status("*"))]
    with capsys.disabled():
        days = ", ".join(f"day {d}: {daily[d - 1]}" for d in (1, 2, 3, *range(7, DAYS + 1, 7)))
        print(f"\none customer's outbox keys (stream, delivery, window, lease), bytes at the end of {days}")
        print(f"status hashes: {len(statuses)} of ~{sum(statuses) // max(1, len(statuses))} bytes (7-day expiry)")
    assert len(fake.accepted) == DAYS * TAPS_A_DAY and len(bodies(fake, ANA)) == DAYS * TAPS_A_DAY
    assert max(daily) <= BOUND, daily
    steady = daily[3:]  # from the day the first records are past FINISHED_KEEP
    assert max(steady) - min(steady) <= 256, daily  # flat: no growth from week to week
    assert not db.exists(outbox.keys.outbox(ANA)) and outbox.depth() == 0


# -- empty streams --------------------------------------------------------------------------------
def test_a_drained_customer_leaves_no_stream_behind(
    app: Flask, fake: FakeTwilio, db: redis.Redis, outbox: Outbox, worker: Worker
) -> None:
    customer_writes(app, ANA)
    outbox.enqueue_text(ANA, "see you tomorrow")
    assert worker.run_once() == 2
    assert not db.exists(outbox.keys.outbox(ANA)) and outbox.depth() == 0
    assert worker.sweep() == 0  # nothing left for the sweep to scan
    customer_writes(app, ANA)  # the next reply makes a new stream and is sent like any other
    assert worker.run_once() == 1 and len(fake.accepted) == 3
    assert not db.exists(outbox.keys.outbox(ANA))


@pytest.mark.parametrize("moment", ["before the delete", "after the delete"])
def test_a_message_appended_as_the_worker_drains_is_never_lost(
    app: Flask,
    fake: FakeTwilio,
    db: redis.Redis,
    outbox: Outbox,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
    moment: str,
) -> None:
    """The webhook appends (and rings) between the worker's last read of an empty stream and its
    delete of that stream, or right after the delete: the message is sent, nothing is left over."""
    customer_writes(app, ANA)
    appended: list[str] = []

    def a_tap_arrives() -> None:
        if not appended:
            appended.append("yes")
            customer_writes(app, ANA, "menu")

    finish, leave = outbox.finish, outbox.leave

    def finished(phone: str, entry_id: str, record: dict[str, Any], **kwargs: Any) -> int:
        left = finish(phone, entry_id, record, **kwargs)
        if left == 0 and moment == "before the delete":
            a_tap_arrives()  # the worker has just seen an empty stream
        return left

    def left(phone: str, token: str, due_ms: int | None = None, entry_id: str = "") -> None:
        leave(phone, token, due_ms, entry_id)
        if moment == "after the delete":
            a_tap_arrives()  # the stream is gone: the webhook makes a new one

    worker.sweep()  # done for the next five minutes: only the drain settles
    monkeypatch.setattr(outbox, "finish", finished)
    monkeypatch.setattr(outbox, "leave", left)
    assert worker.run_once() == 1 and appended
    assert outbox.pending(ANA) == 1 and outbox.depth() == 1  # kept, and its doorbell still rings
    assert worker.run_once() == 1
    assert len(fake.accepted) == 2 and outbox.pending(ANA) == 0 and outbox.depth() == 0
    assert not db.exists(outbox.keys.outbox(ANA))


def test_the_sweep_deletes_the_empty_streams_earlier_releases_left(
    app: Flask, fake: FakeTwilio, db: redis.Redis, outbox: Outbox, worker: Worker
) -> None:
    """Drained streams of customers who never wrote again stayed forever, each scanned every five
    minutes: the sweep deletes them, and still rings a stream with an entry whose doorbell was lost."""
    for phone in (ANA, "+5511987654321"):
        stream = outbox.keys.outbox(phone)
        db.xdel(stream, db.xadd(stream, {"m": json.dumps({"body": "sent long ago"})}))
    customer_writes(app, BOB)
    db.delete(outbox.keys.due)  # Bob's doorbell lost
    assert worker.sweep() == 3
    assert db.exists(outbox.keys.outbox(ANA), outbox.keys.outbox("+5511987654321")) == 0
    assert outbox.due_phones(epoch_ms(outbox.clock())) == [BOB]
    assert worker.run_once() == 1 and bodies(fake, BOB) and worker.sweep() == 0


def test_settle_deletes_a_stream_only_while_it_is_empty(db: redis.Redis, outbox: Outbox) -> None:
    """The delete-if-empty step on its own: a stream with an entry keeps it and stays due."""
    outbox.enqueue_text(BOB, "arrived just now")
    outbox.settle(BOB)
    assert outbox.pending(BOB) == 1 and outbox.due_phones(epoch_ms(outbox.clock())) == [BOB]
    db.xtrim(outbox.keys.outbox(BOB), maxlen=0)  # drained: an empty stream
    outbox.settle(BOB)
    assert not db.exists(outbox.keys.outbox(BOB)) and outbox.depth() == 0


def test_an_entry_id_reused_after_its_stream_was_deleted_is_sent(
    app: Flask, fake: FakeTwilio, db: redis.Redis, outbox: Outbox, worker: Worker
) -> None:
    """A new stream may hand out the id of an entry of the deleted one (the same millisecond, or
    a server clock set back): its finished record then describes another message, and the new
    one is sent all the same."""
    customer_writes(app, ANA)
    assert worker.run_once() == 1
    (entry,) = outbox.delivery(ANA)
    callbacks(app, fake.accepted[-1], "sent", "read")
    db.xadd(outbox.keys.outbox(ANA), {"m": json.dumps({"body": "a new message"})}, id=entry)
    outbox.ring(ANA)
    assert worker.run_once() == 1
    assert bodies(fake, ANA)[-1] == "a new message" and len(fake.accepted) == 2
    assert outbox.delivery(ANA)[entry]["sid"] == fake.accepted[-1]["sid"]


# -- pruning never drops what is still needed ------------------------------------------------------
def test_records_are_pruned_after_they_finished_and_late_callbacks_change_nothing(
    app: Flask, fake: FakeTwilio, db: redis.Redis, outbox: Outbox, clock: Clock
) -> None:
    """Monday's reply is sent; on Thursday a reply is interrupted mid-send and waits for its status
    callback within the grace; the callback comes and Thursday's reply is finished without a second
    send, which prunes Monday's record. Monday's late ``read`` callback is then answered 204 and
    puts nothing back into the delivery hash."""
    customer_writes(app, ANA)
    synced_worker(app).run_once()
    (monday,) = outbox.delivery(ANA)
    first = fake.accepted[-1]
    callbacks(app, first, "sent", "delivered")

    clock.advance(days=3)
    customer_writes(app, ANA)
    with pytest.raises(Crash):
        synced_worker(app, after_send=crash_after_send).run_once()
    db.delete(outbox.keys.lease(ANA))  # the dead worker's lease lapses
    recovered = synced_worker(app)
    clock.advance(seconds=LOOKUP_UNANSWERED.total_seconds() - 1)
    assert recovered.run_once() == 0 and len(fake.sends()) == 2  # still waiting for the callback
    thursday = next(entry for entry, record in outbox.delivery(ANA).items() if record["state"] == "sending")
    second = fake.accepted[-1]
    callbacks(app, second, "sent")
    assert recovered.run_once() == 1 and len(fake.sends()) == 2  # proven accepted: not sent again

    ((entry, record),) = outbox.delivery(ANA).items()
    assert entry == thursday and record.pop("m")  # kept in case Twilio reports it failed
    assert record == {"state": "sent", "at": epoch_ms(clock()), "attempts": 1, "sid": second["sid"]}
    assert set(db.hkeys(outbox.keys.delivery(ANA))) == {thursday}  # no acc: proof outlives its entry
    callbacks(app, first, "read")  # Monday's message read on Friday: its record is gone
    callbacks(app, second, "delivered")  # Thursday's, finished: no proof needed any more
    assert set(db.hkeys(outbox.keys.delivery(ANA))) == {thursday}
    assert "m" not in outbox.delivery(ANA)[thursday]  # delivered: nothing to send again
    assert outbox.status(first["sid"])["status"] == "read" and outbox.depth() == 0


def test_pruning_spares_records_of_entries_still_in_flight(app: Flask, db: redis.Redis, outbox: Outbox) -> None:
    """Records are pruned by their own time and state: an old ``sending`` (an interrupted send) or
    ``retry`` record, and the ``acc:`` proof of an entry in flight, stay however old they are."""
    now = epoch_ms(outbox.clock())
    old, recent = now - epoch_ms_of(FINISHED_KEEP) - 1, now - epoch_ms_of(FINISHED_KEEP) + 60_000
    stuck = outbox.enqueue_text(ANA, "interrupted days ago")
    outbox.write_record(ANA, stuck, {"state": "sending", "at": old, "attempts": 1, "nonce": "0badcafe"})
    backing_off = outbox.enqueue_text(BOB, "waiting out an outage")
    records = {
        "1-0": {"state": "sent", "at": old, "attempts": 1, "sid": "SM" + "1" * 32},
        "2-0": {"state": "undeliverable", "at": old, "attempts": 0, "reason": "outside the window"},
        "3-0": {"state": "failed", "at": recent, "attempts": 1, "reason": "21211"},
    }
    for entry, record in records.items():
        outbox.write_record(ANA, entry, record)
    db.hset(outbox.keys.delivery(ANA), mapping={"acc:1-0": "SM" + "1" * 32, "acc:9-0": "SM" + "9" * 32})
    outbox.record_status("SM" + "5" * 32, "sent", "", phone=ANA, entry_id=stuck, nonce="0badcafe")  # its proof
    done = outbox.enqueue_text(ANA, "finished now")
    outbox.finish(ANA, done, {"state": "sent", "at": now, "attempts": 1, "sid": "SM" + "7" * 32})

    assert set(db.hkeys(outbox.keys.delivery(ANA))) == {stuck, f"acc:{stuck}", "3-0", done}
    in_flight = {"state": "sending", "at": old, "attempts": 1, "nonce": "0badcafe"}
    head = outbox.head(ANA)
    assert head is not None and (head.entry_id, head.record, head.accepted) == (stuck, in_flight, "SM" + "5" * 32)
    outbox.write_record(BOB, backing_off, {"state": "retry", "at": old, "attempts": 9})
    outbox.finish(BOB, "1-0", {"state": "failed", "at": now, "attempts": 1})  # an entry of another stream
    assert outbox.delivery(BOB)[backing_off]["state"] == "retry"


def epoch_ms_of(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)

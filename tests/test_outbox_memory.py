"""What the outbox keeps per customer, and for how long (issue 13, item 5).

A customer's outbox stream is deleted once drained (by a script that deletes it only if it
is still empty). Time is the app's clock, moved by the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.outbox import Outbox, epoch_ms
from bot.outbox.worker import Worker

from .conftest import Clock
from .content_phone import content_config, synced_worker
from .test_outbox import ANA, BOB, bodies, customer_writes, status_callback
from .twilio_fake import FakeTwilio


@pytest.fixture
def fake() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(backend: dict[str, Any], fake: FakeTwilio, clock: Clock) -> Iterator[Flask]:
    """Content API mode on the embedded fakeredis and on the real server (``backend``)."""
    app = create_app(content_config(fake, CLOCK=clock, **backend))
    yield app
    get_services(app).redis.close()


@pytest.fixture
def db(app: Flask) -> redis.Redis:
    return get_services(app).redis


@pytest.fixture
def outbox(app: Flask) -> Outbox:
    return get_services(app).outboxes["test"]


@pytest.fixture
def worker(app: Flask) -> Worker:
    return synced_worker(app)


def callbacks(app: Flask, message: dict[str, str], *statuses: str) -> None:
    for status in statuses:
        assert status_callback(app, message["StatusCallback"], message["sid"], status) == 204


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

    read, settle = outbox.head, outbox.settle

    def head(phone: str) -> Any:
        found = read(phone)
        if found is None and moment == "before the delete":
            a_tap_arrives()  # the worker has just seen an empty stream
        return found

    def settled(phone: str) -> bool:
        deleted = settle(phone)
        if deleted and moment == "after the delete":
            a_tap_arrives()  # the stream is gone: the webhook makes a new one
        return deleted

    worker.sweep()  # done for the next five minutes: only the drain settles
    monkeypatch.setattr(outbox, "head", head)
    monkeypatch.setattr(outbox, "settle", settled)
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

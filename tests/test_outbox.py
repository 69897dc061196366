"""The outbox worker against a real redis-server and a Twilio that fails the way Twilio fails.

Time is the app's clock (moved by the tests), never a sleep: backoff, the send grace and
the 24-hour window all read it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.outbox import Outbox
from bot.outbox.worker import LEASE, LOOKUP_UNANSWERED, Worker, backoff

from .conftest import SECRET_KEY, TOKEN, Clock
from .content_phone import content_config, synced_worker
from .twilio_fake import (
    ANSWER_LOST,
    BAD_NUMBER,
    CONNECT_TIMEOUT,
    OUTSIDE_WINDOW,
    PROCESSED_THEN_500,
    RATE_LIMITED,
    SERVER_ERROR,
    TIMEOUT,
    TOO_MANY,
    UNREADABLE,
    FakeTwilio,
)
from .whatsapp import BASE_URL, WhatsApp

ROOT = Path(__file__).resolve().parent.parent
ANA, BOB = "+34600111222", "+447700900123"


class Crash(BaseException):
    """A worker dying on the spot (not an Exception: nothing in the worker may catch it)."""


@pytest.fixture
def app(redis_server: Any, fake: FakeTwilio, clock: Clock) -> Iterator[Flask]:
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(content_config(fake, REDIS_URL=redis_server.url, CLOCK=clock))
    yield app
    get_services(app).redis.close()


def customer_writes(app: Flask, phone: str, text: str = "hi") -> None:
    """An inbound WhatsApp message (opens the 24-hour window and queues the bot's reply)."""
    answer = WhatsApp(app.test_client(), TOKEN, phone=phone).send(text)
    assert answer.status == 200 and "<Response />" in answer.body


def bodies(fake: FakeTwilio, phone: str) -> list[str]:
    """Texts Twilio accepted for ``phone``, in order (the body variable of button messages)."""
    return [
        m.get("Body") or json.loads(m["ContentVariables"])["1"] for m in fake.accepted if m["To"] == f"whatsapp:{phone}"
    ]


def run_until_idle(worker: Worker, clock: Clock, outbox: Outbox, *, limit: int = 200) -> None:
    """Run the worker, moving the clock to the next due time, until nothing is queued."""
    for _ in range(limit):
        worker.run_once()
        due = outbox.next_due_ms()
        if due is None:
            return
        clock.now = max(clock.now, clock.now.fromtimestamp(due / 1000, clock.now.tzinfo))
    raise AssertionError("the outbox never emptied")


# -- sending, retries, order ------------------------------------------------------------------------
def test_a_free_form_text_is_sent_after_the_reply_in_order(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker
) -> None:
    customer_writes(app, ANA)
    entry = outbox.enqueue_text(ANA, "Your stylist is running 10 minutes late.")
    assert outbox.depth() == 1 and outbox.pending(ANA) == 2
    assert worker.run_once() == 2
    assert bodies(fake, ANA)[1] == "Your stylist is running 10 minutes late."
    assert fake.sends()[1].data.keys() == {"To", "From", "Body", "StatusCallback"}
    assert outbox.depth() == 0 and outbox.pending(ANA) == 0
    assert outbox.delivery(ANA)[entry]["state"] == "sent"
    assert get_services(app).stats.get("outbox.sent") == 2


@pytest.mark.parametrize("failure", [TOO_MANY, RATE_LIMITED, CONNECT_TIMEOUT])
def test_a_passing_failure_is_retried_with_backoff(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock, failure: Any
) -> None:
    customer_writes(app, ANA)
    fake.plan.extend([failure, failure])
    assert worker.run_once() == 0
    (entry,) = outbox.delivery(ANA)
    assert outbox.delivery(ANA)[entry]["state"] == "retry" and outbox.pending(ANA) == 1
    clock.advance(seconds=1.9)
    worker.run_once()
    assert len(fake.sends()) == 1  # not before the 2 s backoff
    clock.advance(seconds=0.1)
    worker.run_once()
    assert len(fake.sends()) == 2  # second failure: now 4 s
    clock.advance(seconds=3.9)
    worker.run_once()
    assert len(fake.sends()) == 2
    clock.advance(seconds=0.1)
    assert worker.run_once() == 1
    assert len(fake.accepted) == 1 and outbox.delivery(ANA)[entry] | {"at": 0, "m": ""} == {
        "m": "",
        "state": "sent",
        "sid": fake.accepted[0]["sid"],
        "attempts": 3,
        "at": 0,
    }
    assert get_services(app).stats.get("outbox.retry") == 2


def test_backoff_doubles_up_to_five_minutes() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 8, 9, 20)] == [2, 4, 8, 256, 300, 300]


def test_an_outage_delays_but_loses_nothing_and_keeps_each_customers_order(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    phones = [ANA, BOB, "+5511987654321"]
    for phone in phones:
        customer_writes(app, phone)
    expected = {phone: [] for phone in phones}
    for n in range(12):
        phone = phones[n % 3]
        outbox.enqueue_text(phone, f"notice {n}")
        expected[phone].append(f"notice {n}")
    failures = random.Random(5)
    answers = [TOO_MANY, SERVER_ERROR, CONNECT_TIMEOUT, TIMEOUT, ANSWER_LOST, PROCESSED_THEN_500, UNREADABLE, "ok"]
    fake.plan.extend(failures.choice(answers) for _ in range(40))
    run_until_idle(worker, clock, outbox)
    for phone in phones:
        assert bodies(fake, phone)[1:] == expected[phone]  # each once, in order, after the menu
    assert len(fake.accepted) == 15 and not fake.surprises
    assert get_services(app).stats.get("outbox.found") > 0  # some were sent, their answer lost: found


def test_one_customers_retry_does_not_hold_up_another(app: Flask, fake: FakeTwilio, worker: Worker) -> None:
    customer_writes(app, ANA)
    customer_writes(app, BOB)
    fake.plan.append(SERVER_ERROR)  # Ana's reply
    worker.run_once()
    assert [m["To"] for m in fake.accepted] == [f"whatsapp:{BOB}"]


def test_a_missing_template_waits_for_templates_sync(
    app: Flask, fake: FakeTwilio, clock: Clock, outbox: Outbox
) -> None:
    with app.app_context():
        from bot.outbox.worker import build_worker

        worker = build_worker()
    customer_writes(app, ANA)
    worker.run_once()
    assert not fake.requests and outbox.pending(ANA) == 1  # nothing to send with yet
    assert "not synced" in next(iter(outbox.delivery(ANA).values()))["reason"]
    synced_worker(app)
    clock.advance(seconds=2)
    assert worker.run_once() == 1


# -- refusals and the 24-hour window -----------------------------------------------------------------
def test_twilio_63016_marks_the_entry_undeliverable_and_the_next_one_goes(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker
) -> None:
    customer_writes(app, ANA)
    outbox.enqueue_text(ANA, "second")
    fake.plan.append(OUTSIDE_WINDOW)
    assert worker.run_once() == 2
    first, second = outbox.delivery(ANA).values()
    assert first["state"] == "undeliverable" and "63016" in first["reason"]
    assert second["state"] == "sent" and bodies(fake, ANA) == ["second"]


def test_a_refused_message_is_marked_failed_with_the_reason(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker
) -> None:
    customer_writes(app, ANA)
    fake.plan.append(BAD_NUMBER)
    assert worker.run_once() == 1
    (record,) = outbox.delivery(ANA).values()
    assert record["state"] == "failed" and "21211" in record["reason"] and record["attempts"] == 1
    assert get_services(app).stats.get("outbox.failed") == 1 and len(fake.sends()) == 1


def test_outside_the_24_hour_window_nothing_is_attempted(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    worker.run_once()
    clock.advance(hours=23, minutes=59)
    outbox.enqueue_text(ANA, "still inside")
    worker.run_once()
    clock.advance(minutes=2)
    entry = outbox.enqueue_text(ANA, "too late")
    worker.run_once()
    assert bodies(fake, ANA)[1:] == ["still inside"]
    assert outbox.delivery(ANA)[entry]["state"] == "undeliverable"
    assert "24-hour window" in outbox.delivery(ANA)[entry]["reason"]
    assert get_services(app).stats.get("outbox.undeliverable") == 1


def test_a_phone_that_never_wrote_gets_nothing(app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker) -> None:
    entry = outbox.enqueue_text(BOB, "hello?")
    worker.run_once()
    assert not fake.sends() and outbox.delivery(BOB)[entry]["state"] == "undeliverable"


# -- a worker killed mid-send ------------------------------------------------------------------------
def crash_after_send(phone: str, sid: str) -> None:
    raise Crash(f"killed after Twilio accepted {sid}")


def killed_after_send(app: Flask, outbox: Outbox) -> Worker:
    """Ana's reply accepted by Twilio, then the worker dies before writing that down; a new worker."""
    customer_writes(app, ANA)
    with pytest.raises(Crash):
        synced_worker(app, after_send=crash_after_send).run_once()
    assert outbox.pending(ANA) == 1  # the entry is still there: nothing is dropped
    get_services(app).redis.delete(outbox.keys.lease(ANA))  # the dead worker's lease lapses
    return synced_worker(app)


def status_callback(app: Flask, url: str, sid: str, status: str, **extra: str) -> int:
    """Twilio's signed status callback to ``url`` (the one the message carried)."""
    from twilio.request_validator import RequestValidator

    path = url.removeprefix(BASE_URL)
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "a" * 32, **extra}
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    response = app.test_client().post(path, base_url=BASE_URL, data=form, headers={"X-Twilio-Signature": signature})
    return response.status_code


def test_killed_after_twilio_accepted_the_status_callback_prevents_a_repeat(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock
) -> None:
    recovered = killed_after_send(app, outbox)
    (accepted,) = fake.accepted
    assert status_callback(app, accepted["StatusCallback"], accepted["sid"], "sent") == 204
    assert recovered.run_once() == 1
    assert len(fake.sends()) == 1  # not repeated
    (record,) = outbox.delivery(ANA).values()
    assert record["state"] == "sent" and record["sid"] == accepted["sid"] and outbox.pending(ANA) == 0


def test_killed_after_twilio_accepted_without_a_callback_is_found_at_twilio_not_sent_again(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock
) -> None:
    recovered = killed_after_send(app, outbox)
    clock.advance(seconds=LOOKUP_UNANSWERED.total_seconds() - 1)
    recovered.run_once()
    assert len(fake.sends()) == 1 and not fake.lookups()  # waits for a callback first
    clock.advance(seconds=1)
    assert recovered.run_once() == 1
    (accepted,) = fake.accepted
    (record,) = outbox.delivery(ANA).values()
    assert record["state"] == "sent" and record["sid"] == accepted["sid"] and len(fake.lookups()) == 1
    assert get_services(app).stats.get("outbox.found") == 1 and get_services(app).stats.get("outbox.resent") == 0


def test_killed_before_twilio_answered_sends_once_after_the_grace(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_writes(app, ANA)
    outbox.enqueue_text(ANA, "second")
    original = fake.request

    def die(*args: Any, **kwargs: Any) -> Any:
        raise Crash("killed while the request was on the wire")

    monkeypatch.setattr(fake, "request", die)
    with pytest.raises(Crash):
        worker.run_once()
    monkeypatch.setattr(fake, "request", original)
    get_services(app).redis.delete(outbox.keys.lease(ANA))
    worker.run_once()
    assert not fake.accepted and not fake.lookups()  # it may still be on the wire, or its callback may come
    clock.advance(seconds=LOOKUP_UNANSWERED.total_seconds())
    assert worker.run_once() == 2  # Twilio does not have it: sent again, then the second
    assert len(bodies(fake, ANA)) == 2 and bodies(fake, ANA)[1] == "second"  # once each, in order


def test_a_read_timeout_waits_for_the_callback_instead_of_sending_twice(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    fake.plan.append(ANSWER_LOST)  # Twilio took it, the answer never came back
    assert worker.run_once() == 0
    clock.advance(seconds=10)
    worker.run_once()
    assert len(fake.sends()) == 1  # not re-sent after a mere backoff
    (accepted,) = fake.accepted
    assert status_callback(app, accepted["StatusCallback"], accepted["sid"], "sent") == 204
    assert outbox.next_due_ms() == int(clock().timestamp() * 1000)  # the proof made Ana due now
    assert worker.run_once() == 1
    assert len(fake.sends()) == 1 and outbox.pending(ANA) == 0 and not fake.lookups()


def test_a_read_timeout_without_a_callback_is_sent_again_after_the_grace(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    fake.plan.append(TIMEOUT)  # Twilio did not take it
    worker.run_once()
    clock.advance(seconds=LOOKUP_UNANSWERED.total_seconds())
    assert worker.run_once() == 1  # looked up, not there: sent again
    assert len(fake.sends()) == 2 and len(fake.accepted) == 1 and len(fake.lookups()) == 1


def test_a_lost_doorbell_is_found_by_the_sweep(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker, clock: Clock
) -> None:
    customer_writes(app, ANA)
    get_services(app).redis.delete(outbox.keys.due)  # as if the webhook died between commit and ring
    worker.run_once()  # its first run sweeps
    assert len(fake.accepted) == 1
    customer_writes(app, BOB)
    get_services(app).redis.delete(outbox.keys.due)
    worker.run_once()
    assert len(fake.accepted) == 1  # the next sweep is due later
    clock.advance(minutes=5)
    worker.run_once()
    assert len(fake.accepted) == 2


def test_two_workers_never_send_one_customers_messages_at_once(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock
) -> None:
    customer_writes(app, ANA)
    first, second = synced_worker(app), synced_worker(app)
    token = "held-by-the-first"
    assert outbox.take(ANA, token, 60_000)[0]
    assert second.run_once() == 0 and not fake.sends()
    outbox.release(ANA, token)  # a holder that died without a word: Ana is due again when the claim ends
    assert first.run_once() == 0
    clock.advance(seconds=LEASE.total_seconds())
    assert first.run_once() == 1


def test_callbacks_after_the_last_message_went_out_make_nobody_due(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker
) -> None:
    """Delivered and read arrive after the outbox drained: the gauge of customers waiting stays 0."""
    customer_writes(app, ANA)
    assert worker.run_once() == 1 and outbox.depth() == 0
    (accepted,) = fake.accepted
    for status in ("sent", "delivered", "read"):
        assert status_callback(app, accepted["StatusCallback"], accepted["sid"], status) == 204
    assert outbox.depth() == 0 and outbox.next_due_ms() is None
    assert "tapbook_outbox_due_customers 0.0" in app.test_client().get("/metrics").get_data(as_text=True)


def test_a_worker_whose_lease_ran_out_mid_batch_stops_before_its_next_message(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock
) -> None:
    """Slow sends (Twilio answering after 10-20 s each) outlast the one-minute lease; another
    worker then holds this customer, and the first must not send their next message alongside it."""
    db = get_services(app).redis
    customer_writes(app, ANA)
    outbox.enqueue_text(ANA, "second")
    outbox.enqueue_text(ANA, "third")

    def lease_lapsed_and_taken(phone: str, sid: str) -> None:
        db.set(outbox.keys.lease(phone), "another-worker", px=60_000)  # the lease expired during the send

    slow = synced_worker(app, after_send=lease_lapsed_and_taken)
    assert slow.run_once() == 1  # the message on the wire is written down, nothing more
    assert len(fake.accepted) == 1 and outbox.pending(ANA) == 2
    assert db.get(outbox.keys.lease(ANA)) == "another-worker"  # not released from under its holder
    db.delete(outbox.keys.lease(ANA))  # the other worker died too: Ana is due when its claim ends
    clock.advance(seconds=LEASE.total_seconds())
    assert synced_worker(app).run_once() == 2
    assert bodies(fake, ANA)[1:] == ["second", "third"]  # each once, in order


# -- the status callback ---------------------------------------------------------------------------
SID = "SM" + "b" * 32
STATUS_URL = BASE_URL + "/webhook/status"


@pytest.mark.parametrize(
    ("sequence", "final"),
    [
        (["sent", "delivered", "read"], "read"),
        (["read", "sent", "delivered"], "read"),  # a late sent never overwrites read
        (["sent", "undelivered"], "undelivered"),
        (["delivered", "failed"], "delivered"),
        (["queued", "failed", "sent"], "failed"),
    ],
)
def test_statuses_are_recorded_monotonically(app: Flask, outbox: Outbox, sequence: list[str], final: str) -> None:
    for status in sequence:
        assert status_callback(app, STATUS_URL, SID, status) == 204
    assert outbox.status(SID)["status"] == final


def test_a_failure_callback_keeps_its_error_code(app: Flask, outbox: Outbox) -> None:
    status_callback(app, STATUS_URL, SID, "failed", ErrorCode="63016")
    assert outbox.status(SID) | {"at": ""} == {"status": "failed", "error": "63016", "at": ""}


def test_a_forged_or_malformed_status_callback_changes_nothing(app: Flask, outbox: Outbox) -> None:
    client = app.test_client()
    form = {"MessageSid": SID, "MessageStatus": "read"}
    forged = client.post("/webhook/status", base_url=BASE_URL, data=form, headers={"X-Twilio-Signature": "bad"})
    assert forged.status_code == 403
    assert status_callback(app, STATUS_URL, "not-a-sid", "read") == 400
    assert status_callback(app, STATUS_URL, SID, "exploded") == 400
    assert outbox.status(SID) == {}


def test_commit_appends_to_the_outbox_in_the_same_script(app: Flask, outbox: Outbox) -> None:
    db = get_services(app).redis
    customer_writes(app, ANA)
    ((entry_id, fields),) = db.xrange(outbox.keys.outbox(ANA))
    assert json.loads(fields["m"])["template"] == "tapbook_buttons3_v1"
    assert db.zscore(outbox.keys.due, ANA) is not None
    assert int(db.get(outbox.keys.window(ANA))) == int(get_services(app).clock().timestamp() * 1000)
    assert 0 < db.pttl(outbox.keys.window(ANA)) <= 2 * 86_400_000


def test_a_worker_process_killed_mid_send_neither_drops_nor_repeats(
    app: Flask, fake: FakeTwilio, outbox: Outbox, clock: Clock, redis_server: Any, tmp_path: Path
) -> None:
    customer_writes(app, ANA)
    synced_worker(app)  # templates recorded in Redis for both workers
    marker = tmp_path / "on-the-wire.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.worker_process", redis_server.url, str(marker)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():  # a real process we started: poll, bounded
            assert process.poll() is None and time.monotonic() < deadline, "the worker process never sent"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait(timeout=10)
    on_the_wire = json.loads(marker.read_text())
    assert on_the_wire["To"] == f"whatsapp:{ANA}"
    db = get_services(app).redis
    deadline = time.monotonic() + 10
    while db.exists(outbox.keys.lease(ANA)):  # the dead worker's one-second lease lapses
        assert time.monotonic() < deadline
        time.sleep(0.05)
    recovered = synced_worker(app)
    assert recovered.run_once() == 0 and not fake.sends()  # its status callback may still come
    assert outbox.pending(ANA) == 1
    clock.advance(seconds=LOOKUP_UNANSWERED.total_seconds())
    assert recovered.run_once() == 1  # the hung request never reached this Twilio: sent again
    (accepted,) = fake.accepted
    same = {k: v for k, v in on_the_wire.items() if k != "StatusCallback"}  # a new attempt, a new nonce
    assert {k: accepted[k] for k in same} == same  # the same message, sent once
    assert outbox.pending(ANA) == 0


def test_an_unreadable_entry_is_marked_failed_and_the_rest_go(
    app: Flask, fake: FakeTwilio, outbox: Outbox, worker: Worker
) -> None:
    customer_writes(app, ANA)
    worker.run_once()
    bad = get_services(app).redis.xadd(outbox.keys.outbox(ANA), {"m": "{not json"})
    outbox.enqueue_text(ANA, "after the bad one")
    assert worker.run_once() == 2
    assert outbox.delivery(ANA)[bad]["state"] == "failed"
    assert bodies(fake, ANA)[-1] == "after the bad one"


def test_the_procfile_worker_starts_and_stops_on_sigterm(redis_server: Any, tmp_path: Path) -> None:
    """``flask --app wsgi worker`` for real (nothing is queued, so it never calls Twilio)."""
    assert "worker: flask --app wsgi worker" in (ROOT / "Procfile").read_text().splitlines()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": "procfile-worker",
        "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM": "whatsapp:+14155238886",
        "PUBLIC_BASE_URL": "https://bot.example.com",
        "SECRET_KEY": SECRET_KEY,
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--idle", "0.05"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while b"outbox worker" not in log.read_bytes():  # a real process we started: poll, bounded
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()
    assert "stopped" in log.read_text()

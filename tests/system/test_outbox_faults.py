"""The outbox's fault matrix against real processes: every reply still reaches Twilio once, in order.

Each scenario runs customers' taps (several customers, each tapping in order) through the
app under gunicorn, real ``flask --app wsgi worker`` processes and the local Twilio over HTTP
(``outbox_rig.py``) while one fault is injected, then counts, from the messages Twilio created:
lost, out of order, wrong customer and duplicates (see ``outbox_rig.Tally``), all 0 everywhere.

Duplicates too: in every fault here Twilio leaves the worker a way to know. The one the worker
cannot tell (see :mod:`bot.outbox.worker`: Twilio creating a message more than 30 s after the
request, or its Messages list not showing one it created) is not among the local Twilio's faults,
which create a message when the request arrives and list it at once. A failure Twilio reports
after accepting a message is sent again as a new entry: counted apart (``resent_after_failure``),
not as a duplicate. The figures go to the system suite's report, and a line per scenario is printed.

Waits are on conditions (Twilio's records, Redis) with bounds; the worker's own timings set the
pace: 5 s before looking up a send Twilio answered with a 5xx, 30 s for one it never answered
(:data:`bot.outbox.worker.LOOKUP_ANSWERED`, ``LOOKUP_UNANSWERED``), 10 s of HTTP timeout.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from bench.tapping import Tapped

from ..conftest import need_redis_server
from ..twilio_faults import QUIET, Fault, drop, failed, hang, server_error, too_many
from .harness import Report
from .outbox_rig import OutboxRig, Tally

CUSTOMERS = 24
TAPS = 4
RATE = 40.0  # taps/s in all: each customer taps about every 0.6 s
#: what a worker must never log: an error, a bug caught by its loop, a thread that died
ERROR = re.compile(r'"level": "(ERROR|CRITICAL)"|unexpected error|Exception in thread')
#: counters the worker keeps in Redis, shown with each scenario's figures
COUNTERS = ("retry", "uncertain", "lookup", "found", "resent", "requeued", "lookup_failed")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboxRig]:
    need_redis_server()
    rig = OutboxRig(tmp_path_factory.mktemp("outbox-faults"))
    try:
        yield rig
    finally:
        rig.close()


def every(n: int, fault: Fault, count: int, *, first: int = 0) -> list[Fault]:
    """``count`` sends' plan: ``fault`` at every ``n``-th send (from send ``first``), the rest as usual."""
    return [fault if k >= first and (k - first) % n == n - 1 else Fault() for k in range(count)]


def scenario(
    rig: OutboxRig,
    report: Report,
    name: str,
    *,
    faults: list[Fault] | None = None,
    workers: int = 3,
    skews: tuple[float, ...] = (),
    customers: int = CUSTOMERS,
    taps: int = TAPS,
    rate: float = RATE,
    during: Callable[[OutboxRig, threading.Event], dict[str, object]] | None = None,
    bound: float = 60.0,
) -> Tally:
    """Run one scenario, assert what must hold everywhere, record and print its figures."""
    rig.reset(workers, skews=skews)
    rig.twilio.plan(*(faults or []))
    made = rig.conversations(customers, taps)
    phones = {taps_[0].form["From"].removeprefix("whatsapp:") for taps_ in made}
    surprises = len(rig.twilio.surprises)
    started = time.monotonic()
    extra: dict[str, object] = {}
    if during is None:
        tapped = rig.tap(made, rate)
    else:
        done = threading.Event()
        result: list[list[Tapped]] = []
        tapping = threading.Thread(target=lambda: (result.append(rig.tap(made, rate)), done.set()), daemon=True)
        tapping.start()
        extra = during(rig, done)
        tapping.join(timeout=120)
        assert result, "the taps did not finish"
        tapped = result[0]
    try:
        rig.twilio.wait_until(rig.delivered_all(made), timeout=max(1.0, started + bound - time.monotonic()))
    except AssertionError:
        pass  # counted below as lost, with the details
    rig.wait_until_quiet(phones, timeout=max(5.0, started + bound + 10 - time.monotonic()))
    seconds = time.monotonic() - started
    counters = rig.db.hgetall(rig.totals)
    died = rig.workers.died()
    logs = rig.last_logs = rig.workers.logs()
    rig.workers.stop()
    rig.clear_plan()
    tally = rig.tally(made, tapped)
    figures = {
        **tally.figures(),
        **extra,
        **{f"worker_{k}": int(counters.get(k, 0)) for k in COUNTERS if counters.get(k)},
        "seconds": round(seconds, 1),
    }
    report.scenario(f"outbox fault: {name}", **figures)
    print(f"\noutbox fault: {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)

    assert tally.not_200 == 0, tally.line(name)
    assert tally.lost == 0, tally.problems
    assert tally.out_of_order == 0, tally.problems
    assert tally.wrong_customer == 0, tally.problems
    assert tally.stale_in_flight == 0, tally.problems
    assert tally.duplicates == 0, tally.problems
    assert tally.delivered + tally.superseded + tally.gave_up == tally.expected, tally.line(name)
    assert rig.twilio.surprises[surprises:] == []
    errors = [line for line in logs.splitlines() if ERROR.search(line)]
    assert errors == [], errors[:5]
    assert died == [], f"a worker died: {died}"
    return tally


def test_429_with_retry_after(rig: OutboxRig, report: Report) -> None:
    """Every 5th of the first 80 sends is answered 429 Retry-After: 1 (nothing created): sent again after
    the wait (or the worker's backoff, 2 s doubling, when longer), the customer's later replies behind it."""
    tally = scenario(rig, report, "429 Retry-After: 1 on every 5th send", faults=every(5, too_many(1), 80))
    assert tally.delivered == tally.expected


def test_5xx_after_processing(rig: OutboxRig, report: Report) -> None:
    """500 and 503 after Twilio created the message: the status callback proves it (half of them) or,
    with no callback (the other half), the lookup 5 s later finds it. Never sent twice."""
    kinds = itertools.cycle(
        [
            server_error(500),
            server_error(503),
            replace(server_error(500), lifecycle=QUIET),
            replace(server_error(503), lifecycle=QUIET),
        ]
    )
    faults = [next(kinds) if k % 6 == 5 else Fault() for k in range(80)]
    scenario(rig, report, "500/503 after processing (created)", faults=faults, bound=40)


def test_5xx_before_processing(rig: OutboxRig, report: Report) -> None:
    """500 and 503 before Twilio created anything: the lookup 5 s later finds nothing, it is sent again."""
    kinds = itertools.cycle([server_error(500, created=False), server_error(503, created=False)])
    faults = [next(kinds) if k % 6 == 5 else Fault() for k in range(80)]
    scenario(rig, report, "500/503 before processing (not created)", faults=faults, bound=40)


def test_hangs_beyond_the_http_timeout(rig: OutboxRig, report: Report) -> None:
    """A few sends get no answer until the worker's 10 s timeout: created (proved by the callback, or,
    without one, found by the lookup 30 s on) or not (not found then: sent again)."""
    planned = {
        3: hang(created=True),
        9: hang(created=False),
        15: replace(hang(created=True), lifecycle=QUIET),
        21: hang(created=False),
    }
    faults = [planned.get(k, Fault()) for k in range(24)]
    scenario(rig, report, "hangs beyond the 10 s HTTP timeout", faults=faults, bound=60)


def test_drops_after_accept(rig: OutboxRig, report: Report) -> None:
    """Every 6th send: the connection closes unanswered after Twilio created the message; its status
    callback proves the attempt, which is finished as sent without a second send. (A created message
    left unanswered with no callback is the hang scenario's: found by the lookup 30 s on.)"""
    faults = every(6, drop(created=True), 80)
    scenario(rig, report, "connection dropped after accept", faults=faults, bound=40)


def test_failed_after_accept_is_sent_again(rig: OutboxRig, report: Report) -> None:
    """Twilio accepts every 5th of the first 60 sends, then reports it failed with 63018 (WhatsApp's rate limit): the
    callback queues it again (a new entry, 5 s later); a customer whose newer reply was already on its
    way keeps the newer one (superseded, on purpose). Every customer ends with a delivered reply."""
    faults = every(5, Fault(lifecycle=failed(63018)), 60)
    tally = scenario(rig, report, "failed 63018 after accept", faults=faults, rate=20.0, bound=50)
    assert tally.failed_after_accept > 0
    assert tally.last_reply_delivered == tally.customers == CUSTOMERS
    assert tally.resent_after_failure + tally.superseded + tally.gave_up == tally.failed_after_accept, tally.problems


def test_redis_killed_while_sends_are_in_flight(rig: OutboxRig, report: Report) -> None:
    """Redis (appendfsync always) is SIGKILLed while sends are on the wire, and restarted once Twilio
    answered them all: their answers could not be written down, nor their callbacks; the worker finds
    its attempts in flight after the restart and settles them by looking them up. Nothing twice."""

    def kill_redis(rig: OutboxRig, tapped: threading.Event) -> dict[str, object]:
        assert tapped.wait(60), "the taps did not finish"
        rig.twilio.wait_until(lambda: sum(s.outcome == "pending" for s in rig.twilio.sends) >= 3, timeout=20)
        in_flight = [s for s in rig.twilio.received() if s.outcome == "pending"]
        sids = {s.sid for s in in_flight}
        killed = time.monotonic()
        rig.redis.kill()
        # down until Twilio answered every send that was on the wire and posted their callbacks (refused)
        rig.twilio.wait_until(
            lambda: (
                all(s.outcome != "pending" for s in in_flight)
                and sids <= {c.sid for c in rig.twilio.callbacks if c.status == "delivered"}
            ),
            timeout=15,
        )
        rig.redis.start()  # same port and directory: it loads the append-only file
        return {"in_flight_at_kill": len(in_flight), "redis_down_s": round(time.monotonic() - killed, 2)}

    rig.twilio.delay = 0.5  # slower sends: more of them in flight when Redis dies
    scenario(rig, report, "redis SIGKILL + restart mid-send", during=kill_redis, rate=60.0, bound=60)


def test_worker_sigkill_storm(rig: OutboxRig, report: Report) -> None:
    """Six times during traffic, the worker holding a send on the wire is SIGKILLed and a new one
    started. Twilio created each cut send: its status callback proves it (the customer is freed at
    once), or, for every 3rd send, no callback comes and the lookup 30 s on finds it. Nothing twice."""

    kills = 0

    def storm(rig: OutboxRig, tapped: threading.Event) -> dict[str, object]:
        nonlocal kills
        cut = 0
        for _ in range(6):
            since = time.monotonic()
            if tapped.is_set():
                break  # the traffic is over: no more sends to cut
            try:
                rig.twilio.wait_until(
                    lambda s=since: any(x.outcome == "pending" and x.at > s for x in rig.twilio.sends), 5
                )
            except AssertionError:
                break
            pending = [x.to.removeprefix("whatsapp:") for x in rig.twilio.received() if x.outcome == "pending"]
            victims = [p for p in map(rig.worker_of, pending) if p is not None]
            if not victims:
                continue  # answered meanwhile: try the next one
            victim = victims[0]
            cut += victims.count(victim)
            rig.workers.kill(victim)
            kills += 1
            rig.workers.start(1)
        return {"workers_killed": kills, "sends_cut": cut}

    rig.twilio.delay = 0.4  # sends stay on the wire long enough to be cut
    faults = [Fault(lifecycle=QUIET) if k % 3 == 2 else Fault() for k in range(200)]
    scenario(
        rig, report, "worker SIGKILL storm", faults=faults, during=storm, customers=30, taps=5, rate=10.0, bound=80
    )
    assert kills >= 4, "the storm found too few sends on the wire to cut"


def test_clock_skew_between_hosts(rig: OutboxRig, report: Report) -> None:
    """Two workers whose own clocks are 1 h behind and 150 s ahead: backoffs, lookups and graces are on
    Redis's clock, so Retry-After waits as long, a 5xx after processing is found (not sent twice) and
    one before is sent again."""
    kinds = itertools.cycle(
        [too_many(1), replace(server_error(500), lifecycle=QUIET), server_error(503, created=False)]
    )
    faults = [next(kinds) if k % 6 == 5 else Fault() for k in range(80)]
    scenario(rig, report, "clock skew -1 h and +150 s", faults=faults, workers=2, skews=(-3600.0, 150.0), bound=40)
    assert rig.last_logs.count("skewed clock: ") == 2, rig.last_logs[-2000:]

"""A gunicorn worker killed in the middle of taps: nobody is left blocked, no hold outlives its expiry.

To kill a worker at a known point of a tap, Redis holds back writes (``CLIENT PAUSE … WRITE``):
reads go on, so each tap loads its state and then waits inside its hold script. The app here
gets a 5 s socket timeout, so the taps are still waiting when the worker is killed.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from ..redis_server import RedisServer, free_port
from .conftest import System
from .harness import BK, BOOKED, Gunicorn, Reply, Twilio, app_environment, customers, holds, redis_ms, worker_serving

CUSTOMERS = 6
CHECK = "Please check your booking:"
HOLD_MS = 10 * 60_000  # the catalog's hold_minutes


@pytest.fixture(scope="module")
def patient_app(durable_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    port = free_port()
    environ = app_environment(durable_redis.url, port, workers=2, socket_timeout=5)
    server = Gunicorn(tmp_path_factory.mktemp("patient-app"), port, environ)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def waiting_scripts(db: redis.Redis) -> int:
    """Clients whose script Redis is holding back (flag ``b``: blocked by the pause)."""
    return sum(c["cmd"] in ("evalsha", "eval") and "b" in c["flags"] for c in db.client_list())


def test_a_worker_killed_mid_tap_leaves_no_stuck_hold_or_lock(system: System, patient_app: Gunicorn) -> None:
    twilio = Twilio(patient_app, system.report)
    log_from = len(patient_app.log())
    people = customers(twilio, CUSTOMERS, area="6")
    day = people[0].to_days("Solo").options[2]
    times = people[0].send(day)
    for person in people[1:]:
        person.to_days("Solo")
        assert person.send(day).options == times.options
    picks = [person.form(times.options[i]) for i, person in enumerate(people)]  # a time each

    connections = [http.client.HTTPConnection("127.0.0.1", patient_app.port, timeout=15) for _ in people]
    for connection in connections:
        connection.connect()
    first: list[Reply | None] = [None] * CUSTOMERS

    def deliver(i: int) -> None:
        first[i] = twilio.deliver(picks[i], connection=connections[i])

    threads = [threading.Thread(target=deliver, args=(i,), daemon=True) for i in range(CUSTOMERS)]
    system.db.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 8
        while waiting_scripts(system.db) < CUSTOMERS:  # every tap is inside its hold script; bounded
            assert time.monotonic() < deadline, "the taps never reached their hold scripts"
            time.sleep(0.01)
        victim = worker_serving(patient_app, connections[0].sock.getsockname()[1])
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 8
        while first[0] is None:  # the victim's connections die with it; bounded
            assert time.monotonic() < deadline, "the killed worker's tap did not end"
            time.sleep(0.01)
    finally:
        system.db.execute_command("CLIENT", "UNPAUSE")
    for thread in threads:
        thread.join(timeout=10)
    assert all(r is not None for r in first)
    dropped = [i for i, r in enumerate(first) if r.status == 0]
    assert 0 in dropped  # the victim served customer 0: Twilio saw the connection die
    assert all(first[i].text.startswith(CHECK) for i in range(CUSTOMERS) if i not in dropped)
    left_behind = len(holds(system.db)) - (CUSTOMERS - len(dropped))
    assert left_behind == 0  # a killed tap's script never ran
    assert victim not in patient_app.wait_for_workers()  # the master replaced it

    # Twilio retries what failed; every customer carries on at once, nothing blocks them
    for i in dropped:
        assert twilio.deliver(picks[i]).text.startswith(CHECK)
    found = holds(system.db)
    assert len(found) == CUSTOMERS
    sessions = {system.db.hget(f"system:session:{{{p.phone}}}", "hold") for p in people}
    assert {key.rsplit("/", 1)[1] for key in found} == sessions  # each hold is a customer's own
    assert max(found.values()) <= redis_ms(system.db) + HOLD_MS  # and lapses on time
    done = [person.send("Confirm") for person in people]
    assert all(r.text.startswith(BOOKED) for r in done), [r.text for r in done]
    assert len(system.db.keys(f"{BK}:booking:*")) == CUSTOMERS

    log = patient_app.log()[log_from:]
    assert "Traceback" not in log and "webhook failed" not in log, log[-4000:]
    system.report.scenario(
        "worker SIGKILL mid-tap",
        taps_in_flight=CUSTOMERS,
        dropped_with_the_worker=len(dropped),
        retried_ok=len(dropped),
        holds_left_behind=left_behind,
        bookings_expected=CUSTOMERS,
        bookings_found=len(system.db.keys(f"{BK}:booking:*")),
    )

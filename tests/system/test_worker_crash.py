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
from collections.abc import Callable, Iterator

import pytest
import redis

from bot.sessions import Session

from ..redis_server import RedisServer, free_port
from .conftest import System
from .harness import (
    BK,
    BOOKED,
    Gunicorn,
    Reply,
    Twilio,
    app_environment,
    bookings,
    customers,
    holds,
    redis_ms,
    worker_serving,
)

CUSTOMERS = 4  # no more than one worker's threads: a gthread worker may accept them all
CHECK = "Please check your booking:"
HOLD_MS = 10 * 60_000  # the catalog's hold_minutes


@pytest.fixture(scope="module")
def patient_app(durable_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    version = redis.Redis(port=durable_redis.port).info("server")["redis_version"]
    if tuple(int(part) for part in version.split(".")[:2]) < (6, 2):
        pytest.skip(f"CLIENT PAUSE ... WRITE needs redis-server 6.2 or later (this is {version})")
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
        wait_for(lambda: waiting_scripts(system.db) == CUSTOMERS, "every tap to wait inside its hold script")
        victim = worker_serving(patient_app, connections[0].sock.getsockname()[1])
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: first[0] is not None, "the killed worker's connection to close")
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
    sessions = {Session(system.db.hgetall(f"system:{{system}}:session:{p.phone}")).get("hold") for p in people}
    assert {key.rsplit("/", 1)[1] for key in found} == sessions  # each hold is a customer's own
    assert max(found.values()) <= redis_ms(system.db) + HOLD_MS  # and lapses on time
    done = [person.send("Confirm") for person in people]
    assert all(r.text.startswith(BOOKED) for r in done), [r.text for r in done]
    assert len(system.db.keys(f"{BK}:booking:*")) == CUSTOMERS

    patient_app.assert_clean_log_since(log_from)
    system.report.scenario(
        "worker SIGKILL mid-tap",
        taps_in_flight=CUSTOMERS,
        dropped_with_the_worker=len(dropped),
        retried_ok=len(dropped),
        holds_left_behind=left_behind,
        bookings_expected=CUSTOMERS,
        bookings_found=len(system.db.keys(f"{BK}:booking:*")),
    )


def test_a_worker_killed_while_its_write_waits_leaves_no_hold_the_customer_cannot_see(
    system: System, patient_app: Gunicorn
) -> None:
    """The worst moment: the tap's one write (hold and session together) is on its way to Redis and
    the worker dies (frozen with SIGSTOP while Redis holds the script, then killed). Redis runs the
    script whole: the hold exists only with the session that names it, and Twilio's retry of the
    dropped request gets the summary the write recorded. Nothing is orphaned, nothing is doubled."""
    twilio = Twilio(patient_app, system.report)
    log_from = len(patient_app.log())
    ana, bob = customers(twilio, 2, area="9")
    day = ana.to_days("Solo").options[2]
    at = ana.send(day).options[0]
    bob.to_days("Solo")
    bob.send(day)
    pick = ana.form(at)

    connection = http.client.HTTPConnection("127.0.0.1", patient_app.port, timeout=15)
    connection.connect()
    result: list[Reply] = []
    thread = threading.Thread(target=lambda: result.append(twilio.deliver(pick, connection=connection)), daemon=True)
    victim = None
    system.db.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
    try:
        thread.start()
        wait_for(lambda: waiting_scripts(system.db) == 1, "the tap's write to wait")
        victim = worker_serving(patient_app, connection.sock.getsockname()[1])
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)  # the worker freezes: it will never answer
        system.db.execute_command("CLIENT", "UNPAUSE")  # the write runs, whole
        wait_for(lambda: len(holds(system.db)) == 1, "the hold")
    finally:
        system.db.execute_command("CLIENT", "UNPAUSE")
        if victim is not None:
            os.kill(victim, signal.SIGKILL)
        thread.join(timeout=10)
    assert result[0].status == 0  # the customer got no answer
    (held,) = holds(system.db)
    token = held.rsplit("/", 1)[1]
    assert Session(system.db.hgetall(f"system:{{system}}:session:{ana.phone}")).get("hold") == token  # hers, seen
    assert bob.send(at).text.startswith("Sorry, that time was just taken.")

    retry = twilio.deliver(pick)  # Twilio retries Ana's tap: the reply the write recorded
    assert retry.text.startswith(CHECK)
    assert ana.send("Confirm").text.startswith(BOOKED)
    assert [b["phone"] for b in bookings(system.db)] == [ana.phone]
    assert holds(system.db) == {}
    patient_app.assert_clean_log_since(log_from)
    system.report.scenario("worker SIGKILL while its write waits", orphan_holds=0, retried_ok=1)


def wait_for(done: Callable[[], bool], what: str, timeout: float = 8) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # polling Redis, bounded
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)

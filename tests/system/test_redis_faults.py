"""Redis killed mid-traffic and restarted, and Redis too slow to answer: polite replies, nothing lost."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..concurrency import run_together
from .conftest import System
from .harness import BOOKED, POLITE, REF, SOCKET_TIMEOUT, Customer, Reply, Twilio, bookings, customers, in_parallel

# hi, Book, Group class, the third day, its first time, Confirm
SCRIPT = ["hi", "1", "3", "3", "1", "1"]
# The app spends at most one socket timeout on a tap against a dead or stuck Redis (a refused
# connection is retried once, at once; a timeout never). The slack is for a busy 2-core machine.
BUDGET_MS = SOCKET_TIMEOUT * 1000 + 400
# What Twilio waits for may include queueing: a gthread worker accepts more connections than it
# has threads, so with 12 taps at once a tap can wait behind two rounds of stuck taps.
QUEUED_BUDGET_MS = 3 * SOCKET_TIMEOUT * 1000 + 1000


@dataclass
class Conversation:
    started: float
    replies: list[Reply] = field(default_factory=list)

    @property
    def ref(self) -> str | None:
        found = self.replies and REF.search(self.replies[-1].text)
        return found[1] if found else None


class Traffic:
    """New customers booking one after another on a few threads, until stopped (bounded)."""

    def __init__(self, twilio: Twilio, *, threads: int = 6, max_conversations: int = 400) -> None:
        self.twilio = twilio
        self.conversations: list[Conversation] = []
        self._ids = itertools.count()
        self._limit = max_conversations
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self._threads), "a traffic thread hung"

    def _run(self) -> None:
        while not self._stop.is_set():
            number = next(self._ids)
            if number >= self._limit:
                return
            person = Customer(self.twilio, f"+15558{number:05d}", f"T{number}")
            conversation = Conversation(time.monotonic())
            with self._lock:
                self.conversations.append(conversation)
            for text in SCRIPT:
                conversation.replies.append(person.send(text))

    def replies(self) -> list[Reply]:
        with self._lock:
            return [reply for c in self.conversations for reply in list(c.replies)]

    def wait_until(self, what: str, done: Callable[[list[Reply]], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.replies()):  # polling our own traffic threads, bounded
            assert time.monotonic() < deadline, f"traffic never got {what}"
            time.sleep(0.02)


def test_redis_killed_mid_traffic_loses_no_confirmed_booking(system: System) -> None:
    early = customers(system.twilio, 20, area="4")
    before = in_parallel(early, lambda c: [c.send(text) for text in SCRIPT][-1])
    early_refs = {REF.search(reply.text)[1] for reply in before}
    assert len(early_refs) == 20

    with Traffic(system.twilio) as traffic:
        traffic.wait_until("30 answers", lambda rs: len(rs) >= 30)
        killed_at = time.monotonic()
        system.redis.kill()
        down_at = time.monotonic()
        traffic.wait_until("100 outage answers", lambda rs: sum(r.sent_at > down_at for r in rs) >= 100)
        readiness_down = system.twilio.get("/readyz")
        restarted_at = time.monotonic()
        system.redis.start()  # same port, same directory: it loads the append-only file
        up_at = time.monotonic()
        traffic.wait_until("3 bookings after the restart", lambda rs: sum(
            r.sent_at > up_at and r.text.startswith(BOOKED) for r in rs) >= 3)  # fmt: skip
    readiness_up = system.twilio.get("/readyz")

    replies = traffic.replies()
    assert {r.status for r in replies} == {200}  # no 5xx, no dropped connection, ever
    outage = [r for r in replies if r.sent_at > down_at and r.sent_at + r.ms / 1000 < restarted_at]
    assert len(outage) >= 90
    assert {r.text for r in outage} == {POLITE}
    worst = max(r.ms for r in outage)
    assert worst < QUEUED_BUDGET_MS
    assert max(system.app.served_ms(r.sid for r in outage)) < BUDGET_MS
    assert (readiness_down, readiness_up) == (503, 200)

    confirmed_before = early_refs | {
        REF.search(r.text)[1] for r in replies if r.text.startswith(BOOKED) and r.sent_at + r.ms / 1000 < killed_at
    }
    stored = {b["ref"]: b for b in bookings(system.db)}
    missing = confirmed_before - stored.keys()
    assert not missing, f"bookings confirmed before the crash are gone: {missing}"
    assert all(stored[ref]["status"] == "confirmed" for ref in confirmed_before)
    after = [c for c in traffic.conversations if c.started > up_at and len(c.replies) == len(SCRIPT)]
    assert after and all(c.ref in stored for c in after)  # conversations carry on after the restart

    system.report.scenario(
        "redis SIGKILL + restart",
        taps=len(replies),
        outage_replies=len(outage),
        outage_worst_ms=round(worst, 1),
        outage_worst_ms_in_app=max(system.app.served_ms(r.sid for r in outage)),
        outage_seconds=round(restarted_at - killed_at, 2),
        confirmed_before_crash=len(confirmed_before),
        found_after_restart=len(confirmed_before & stored.keys()),
        booked_after_restart=len(after),
    )


def test_a_stuck_redis_costs_each_tap_one_timeout_and_hangs_no_worker(system: System) -> None:
    people = customers(system.twilio, 12, area="5")  # as many as the workers' threads: none queues
    assert all(r.text.startswith("Hi ") for r in in_parallel(people, lambda c: c.send("hi")))
    system.redis.pause()  # SIGSTOP: connections are accepted, nothing is answered
    try:
        stuck = run_together(len(people), lambda i: people[i].send("Book"))
        readiness = system.twilio.get("/readyz")
    finally:
        system.redis.resume()
    assert {(r.status, r.text) for r in stuck} == {(200, POLITE)}
    worst = max(r.ms for r in stuck)
    served = max(system.app.served_ms(r.sid for r in stuck))
    assert served < BUDGET_MS
    assert worst < QUEUED_BUDGET_MS
    assert readiness == 503

    # every worker serves again at once: nothing waits on the stuck connections
    after = in_parallel(people * 2, lambda c: c.send("menu"))
    assert all(r.status == 200 and "What would you like to do?" in r.text for r in after)
    assert system.twilio.get("/readyz") == 200
    system.report.scenario(
        "redis paused (SIGSTOP)",
        taps=len(stuck),
        polite_replies=sum(r.text == POLITE for r in stuck),
        worst_ms_in_app=round(served, 1),
        worst_ms_seen_by_twilio=round(worst, 1),
        worst_ms_after_resume=round(max(r.ms for r in after), 1),
    )

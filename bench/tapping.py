"""Customers tapping, for ``bench/outbox.py``: signed webhook POSTs, paced or all at once.

Each tap is posted as Twilio posts it (a new connection, the form signed by
``bench.conversations``), and the moment it was sent is recorded with ``time.monotonic``,
the clock the local Twilio server stamps its sends with (same process). A phone's taps go
in order: each waits until the phone's previous tap was answered.
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlencode

from bench.conversations import Tap


@dataclass(frozen=True)
class Tapped:
    """One tap as sent: the phone, its place in the phone's taps, when it left, what the app answered."""

    phone: str
    index: int
    sent_at: float
    status: int  # 0: no answer
    answered_at: float = 0.0  # when the app's answer was read (0: none)


def phone_of(tap: Tap) -> str:
    return tap.form["From"].removeprefix("whatsapp:")


class Tapper:
    """Posts taps to ``/webhook`` on ``127.0.0.1:port``."""

    def __init__(self, port: int, *, threads: int = 16, timeout: float = 30.0) -> None:
        self.port = port
        self.threads = threads
        self.timeout = timeout

    def post(self, tap: Tap) -> tuple[float, int, float]:
        """Send one tap; (the moment it was sent, the HTTP status, the moment its answer was read)."""
        body = urlencode(tap.form)
        headers = {"X-Twilio-Signature": tap.signature, "Content-Type": "application/x-www-form-urlencoded"}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        sent_at = time.monotonic()
        try:
            connection.request("POST", "/webhook", body=body, headers=headers)
            response = connection.getresponse()
            self.answered(tap, response.status, response.read())
            return sent_at, response.status, time.monotonic()
        except (OSError, http.client.HTTPException):
            return sent_at, 0, 0.0
        finally:
            connection.close()

    def answered(self, tap: Tap, status: int, body: bytes) -> None:
        """What the app answered ``tap`` (a subclass may look)."""

    def paced(self, taps: list[Tap], rate: float | None) -> list[Tapped]:
        """Send ``taps`` in list order, the k-th at start + k / ``rate`` (None: as fast as answered)."""
        done: list[Tapped] = []
        lock = threading.Lock()
        previous: dict[str, Future[None]] = {}
        counts: dict[str, int] = {}

        def send(tap: Tap, index: int, before: Future[None] | None) -> None:
            if before is not None:
                before.result(timeout=self.timeout * 2)  # the phone's previous tap was answered
            sent_at, status, answered_at = self.post(tap)
            with lock:
                done.append(Tapped(phone_of(tap), index, sent_at, status, answered_at))

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="tap") as pool:
            for k, tap in enumerate(taps):
                if rate:
                    pause = start + k / rate - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)  # pacing the load, not waiting for state
                phone = phone_of(tap)
                index = counts.get(phone, 0)
                counts[phone] = index + 1
                previous[phone] = pool.submit(send, tap, index, previous.get(phone))
        return sorted(done, key=lambda t: t.sent_at)

    def burst(self, taps: list[Tap]) -> tuple[float, list[Tapped]]:
        """Every tap at once (one thread each, released together); (the release moment, the taps)."""
        gate = threading.Barrier(len(taps) + 1)
        done: list[Tapped] = []
        lock = threading.Lock()

        def send(tap: Tap) -> None:
            gate.wait(timeout=60)
            sent_at, status, answered_at = self.post(tap)
            with lock:
                done.append(Tapped(phone_of(tap), 0, sent_at, status, answered_at))

        threads = [threading.Thread(target=send, args=(tap,)) for tap in taps]
        for thread in threads:
            thread.start()
        gate.wait(timeout=60)
        released = time.monotonic()
        for thread in threads:
            thread.join(timeout=self.timeout * 2)
        return released, sorted(done, key=lambda t: t.sent_at)

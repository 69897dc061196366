"""``flask --app wsgi worker``: sends the outbox through Twilio, in order per customer.

For each phone whose doorbell is due, the worker takes the phone's lease and sends its
stream from the oldest entry on, one at a time:

1. An entry Twilio already accepted (``acc:<id>`` in the delivery hash: written by a status
   callback that names the entry while it is in flight) is only removed.
2. Outside WhatsApp's 24-hour window (no inbound message from the phone for 24 h) the entry
   is marked ``undeliverable`` with the reason and nothing is sent.
3. Otherwise the record says ``sending`` (with the time), the message is sent, and the
   MessageSid plus ``sent`` are written and the entry removed in one transaction.

Failures: 429, 5xx, connect timeouts and a missing template are retried with exponential
backoff (2 s doubling to 5 min) by moving the phone's doorbell; the phone's later messages
wait behind it, so order holds. A Twilio outage delays messages and loses none. A read
timeout or a connection lost mid-request leaves the outcome unknown, so it is handled like
an interrupted send (below). Other 4xx mark the entry ``failed``; 63016 ``undeliverable``.

**Killed mid-send.** Twilio's Messages API takes no idempotency key, so a request whose
answer was lost cannot be asked about. A worker that finds an entry still ``sending``
(its predecessor died between the request and writing down the answer) waits
``SEND_GRACE`` for a status callback: each message carries a status callback URL naming
its entry, so if Twilio accepted the request, its first callback (``sent``, normally
seconds later) marks the entry accepted and it is not sent again. Only if no callback
arrives within the grace period is the entry sent again: a duplicate is then possible
exactly when Twilio accepted the lost request but reported nothing for two minutes, or
when no ``PUBLIC_BASE_URL`` is set (no per-message callback). Nothing is ever dropped.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import click
import redis
from flask.cli import with_appcontext

from ..channels.twilio import Refused, RetryLater, Sender, TemplateSids, Undeliverable
from ..commands.common import shared_store
from ..logs import mask_phone
from ..services import get_services
from ..stats import Stats
from . import Outbox, epoch_ms, in_window

log = logging.getLogger(__name__)

SEND_GRACE = timedelta(minutes=2)
BACKOFF_BASE = timedelta(seconds=2)
BACKOFF_CAP = timedelta(minutes=5)
LEASE = timedelta(minutes=1)
SWEEP_EVERY = timedelta(minutes=5)
#: entries sent per phone before others get a turn (each takes at most the HTTP timeout, within LEASE)
BATCH = 5


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 2 s, 4 s, 8 s, … at most 5 minutes."""
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))


class Worker:
    def __init__(
        self,
        outboxes: list[Outbox],
        sender: Sender,
        stats: Stats,
        clock: Callable[[], datetime],
        *,
        status_callback: str | None,
        after_send: Callable[[str, str], None] | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        self.outboxes = outboxes
        self.sender = sender
        self.stats = stats
        self.clock = clock
        self.status_callback = status_callback
        #: test seam: called between Twilio's answer and writing it down (a crash there)
        self.after_send = after_send or (lambda phone, sid: None)
        self.lease_ms = int(lease.total_seconds() * 1000)
        self.name = uuid.uuid4().hex
        self._last_sweep: datetime | None = None

    def run_once(self) -> int:
        """Send what is due now; the number of entries finished (sent, refused, undeliverable)."""
        now = self.clock()
        if self._last_sweep is None or now - self._last_sweep >= SWEEP_EVERY:
            self.sweep()
        finished = 0
        for outbox in self.outboxes:
            for phone in outbox.due_phones(epoch_ms(now)):
                finished += self.drain(phone, outbox)
        return finished

    def sweep(self) -> int:
        """Ring the doorbell of every phone with an outbox stream (recovers lost doorbells); a stream
        found empty (left by an earlier release, or drained since the SCAN) is deleted instead."""
        self._last_sweep = self.clock()
        found = 0
        for outbox in self.outboxes:
            phones = list(outbox.streams())
            for phone in phones:
                outbox.settle(phone)  # one script: rings a stream with entries, deletes an empty one
            found += len(phones)
        return found

    def drain(self, phone: str, outbox: Outbox | None = None) -> int:
        """Send ``phone``'s entries in order until its stream is empty or one must wait.

        The lease is renewed before each further entry (a few slow sends can outlast it); once it
        has lapsed, another worker may own the phone, so this one stops.
        """
        outbox = outbox or self.outboxes[0]
        token = f"{self.name}:{uuid.uuid4().hex}"
        if not outbox.acquire(phone, token, self.lease_ms):
            return 0  # another worker is on it
        finished = 0
        try:
            while finished < BATCH:
                if finished and not outbox.renew(phone, token, self.lease_ms):
                    log.warning("outbox lease of %s lapsed during a slow send: leaving it", mask_phone(phone))
                    return finished  # another worker may be sending this phone's next message now
                head = outbox.head(phone)
                if head is None:
                    outbox.settle(phone)
                    return finished
                wait_until = self.deliver(phone, *head, outbox=outbox)
                if wait_until is not None:
                    outbox.defer(phone, epoch_ms(wait_until))
                    return finished
                finished += 1
            outbox.defer(phone, epoch_ms(self.clock()))  # more to send: stay due
            return finished
        finally:
            outbox.release(phone, token)

    def deliver(
        self, phone: str, entry_id: str, message: dict[str, Any] | None, *, outbox: Outbox | None = None
    ) -> datetime | None:
        """Handle the head entry; the time to try again, or None when it is finished."""
        outbox = outbox or self.outboxes[0]
        now = self.clock()
        if message is None:  # never blocks the customer's later messages
            self._finish(outbox, phone, entry_id, "failed", 0, reason="unreadable outbox entry")
            return None
        record, accepted, seen = outbox.record(phone, entry_id)
        attempts = int(record.get("attempts", 0))
        if accepted:
            self._finish(outbox, phone, entry_id, "sent", attempts, sid=accepted)
            return None
        if record.get("state") == "sending":
            retry_at = datetime.fromtimestamp(record["at"] / 1000, now.tzinfo) + SEND_GRACE
            if now < retry_at:
                return retry_at  # a send was interrupted: give its status callback time to arrive
            log.warning("re-sending outbox %s of %s: an earlier send was interrupted", entry_id, mask_phone(phone))
            self.stats.incr("outbox.resent")
        if not in_window(seen, epoch_ms(now)):
            self._finish(outbox, phone, entry_id, "undeliverable", attempts, reason="outside WhatsApp's 24-hour window")
            return None
        attempts += 1
        outbox.write_record(phone, entry_id, {"state": "sending", "at": epoch_ms(now), "attempts": attempts})
        try:
            sid = self.sender.send(phone, message, self._callback(outbox, phone, entry_id))
        except RetryLater as exc:
            # an uncertain failure stays "sending": like an interrupted send, it waits for a callback first
            delay = SEND_GRACE if exc.uncertain else backoff(attempts)
            state = "sending" if exc.uncertain else "retry"
            outbox.write_record(
                phone, entry_id, {"state": state, "at": epoch_ms(now), "attempts": attempts, "reason": str(exc)}
            )
            self.stats.incr("outbox.retry")
            log.info("outbox %s for %s: %s; retry in %ss", entry_id, mask_phone(phone), exc, delay.total_seconds())
            return now + delay
        except Undeliverable as exc:
            self._finish(outbox, phone, entry_id, "undeliverable", attempts, reason=str(exc))
            return None
        except Refused as exc:
            self._finish(outbox, phone, entry_id, "failed", attempts, reason=str(exc))
            return None
        self.after_send(phone, sid)
        self._finish(outbox, phone, entry_id, "sent", attempts, sid=sid)
        return None

    def _finish(
        self, outbox: Outbox, phone: str, entry_id: str, state: str, attempts: int, *, sid: str = "", reason: str = ""
    ) -> None:
        record: dict[str, Any] = {"state": state, "at": epoch_ms(self.clock()), "attempts": attempts}
        if sid:
            record["sid"] = sid
        if reason:
            record["reason"] = reason
            log.warning("outbox %s for %s %s: %s", entry_id, mask_phone(phone), state, reason)
        outbox.finish(phone, entry_id, record)
        self.stats.incr(f"outbox.{state}")

    def _callback(self, outbox: Outbox, phone: str, entry_id: str) -> str | None:
        if not self.status_callback:
            return None
        return f"{self.status_callback}?{urlencode({'b': outbox.business, 'to': phone, 'entry': entry_id})}"

    def run(self, stop: threading.Event, *, idle: float = 1.0) -> None:
        """Until ``stop`` is set: send what is due, then wait a little when nothing was."""
        log.info("outbox worker %s started", self.name[:8])
        while not stop.is_set():
            try:
                busy = self.run_once()
            except redis.RedisError as exc:
                log.warning("outbox worker: redis error: %s: %s", type(exc).__name__, exc)
                busy = 0
            except Exception:  # a bug must not stop the sending of everyone's messages
                log.exception("outbox worker: unexpected error")
                busy = 0
            if not busy:
                stop.wait(idle)
        log.info("outbox worker %s stopped", self.name[:8])


def build_worker(**kwargs: Any) -> Worker:
    """The worker of the current app (Content API settings required)."""
    services = get_services()
    settings = services.settings
    if services.twilio is None or not any(shop.channel.out_of_band for shop in services.directory):
        raise click.UsageError(
            "the worker needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and a sender: a business's numbers or sender, "
            "or TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"
        )
    templates = TemplateSids(services.redis, services.shared_keys.templates)
    sender = Sender(
        services.twilio, templates, default=settings.twilio_messaging_service_sid or settings.twilio_from or ""
    )
    callback = f"{settings.public_base_url}/webhook/status" if settings.public_base_url else None
    outboxes = [services.outboxes[shop.id] for shop in services.directory if shop.channel.out_of_band]
    return Worker(outboxes, sender, services.stats, services.clock, status_callback=callback, **kwargs)


@click.command("worker")
@click.option("--idle", default=1.0, show_default=True, help="Seconds to wait when nothing is due.")
@with_appcontext
@shared_store
def worker_command(idle: float) -> None:
    """Send the outbox (Content API messages) through Twilio until SIGTERM or Ctrl-C."""
    worker = build_worker()
    if worker.status_callback is None:
        log.warning("PUBLIC_BASE_URL is not set: messages go out without a per-message status callback")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.run(stop, idle=idle)

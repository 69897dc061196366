"""``flask --app wsgi worker``: sends the outbox through Twilio, in order per customer, many at once.

**Waking.** The script that queues a message publishes the business's id on the bell channel;
the worker listens (one connection) and claims what is due the moment it hears it. A timed poll
(``--idle``, default 1 s) picks up retries and deferred sends, and any bell missed while the
worker was not listening (a restart, a failover). A sweep every few minutes finds streams whose
doorbell was lost.

**Many in flight.** A claimed phone goes to a pool of threads (``--pool``, default 64): each
drains one customer's stream in order, one message at a time, while the others send for other
customers, so a slow or hung Twilio request holds up only its own customer. A claim moves the
phone's doorbell to the end of the lease, so no other worker (or thread) takes it meanwhile; the
lease key says who sends, and is checked and extended in the same script that writes each
attempt down, so a worker whose lease lapsed never sends.

**Every send ends one of three ways** (:func:`bot.channels.twilio.call` sorts them):

1. *Sent*: the MessageSid is written and the entry removed in one step.
2. *Certainly not sent* (429, WhatsApp's rate limit 63018, no connection, no template yet): tried
   again after a backoff (2 s doubling to 5 min), or after Twilio's ``Retry-After`` if longer;
   the customer's later messages wait behind it, so order holds. Refusals (other 4xx) are marked
   ``failed``, 63016 ``undeliverable``, and the next message goes.
3. *Uncertain* (5xx, a read timeout, a connection lost mid-request, an answer we cannot read):
   never sent again blind. The entry is ``uncertain`` until a status callback naming it (and
   this attempt's nonce) proves Twilio took it, or, :data:`LOOKUP_ANSWERED` later when Twilio
   answered (a 5xx) and :data:`LOOKUP_UNANSWERED` when it did not, the worker looks the message
   up at Twilio (the customer's newest messages: from our sender, created since the first
   uncertain attempt, with the same text when it is text, and no sid another record already
   owns). Found: it is sent. Not found: it is sent again. A lookup that fails is asked again
   after a backoff; nothing is sent meanwhile.

**Killed mid-send.** An attempt is written down (``sending``, with its time and nonce) before the
request leaves. A worker finding one younger than :data:`IN_FLIGHT` leaves it alone (its sender
may still be waiting for Twilio's answer); an older one is uncertain and settled as above. A
status callback that proves an in-flight attempt also drops the customer's lease and makes them
due now, so a dead worker's lease does not keep them waiting.

**Alive.** Every few seconds the loop writes the worker's heartbeat (:mod:`bot.outbox.heartbeat`),
which ``flask doctor`` reads; a clean stop removes it.

**The duplicate that remains**: Twilio creates the message more than :data:`LOOKUP_UNANSWERED`
after our request left (a request hung inside Twilio), or its Messages list does not show a
message it created by the time we look. Nothing is ever dropped.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

import click
import redis
from flask.cli import with_appcontext

from .. import retention
from ..channels import proactive
from ..channels.twilio import HTTP_TIMEOUT, Found, Refused, RetryLater, Sender, TemplateSids, Uncertain, Undeliverable
from ..commands.common import shared_store
from ..logs import mask_phone
from ..services import get_services
from ..stats import Stats
from . import Head, Outbox, epoch_ms, in_window
from . import heartbeat as heartbeat_
from .heartbeat import Heartbeats
from .reminders import Reminders

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=2)
BACKOFF_CAP = timedelta(minutes=5)
#: an attempt this young may still be on the wire (Twilio's answer has not come back yet)
IN_FLIGHT = timedelta(seconds=HTTP_TIMEOUT + 5)
#: a worker's hold on a customer: covers one send (renewed before each)
LEASE = IN_FLIGHT
#: after an uncertain attempt Twilio answered (a 5xx): look it up this much later
LOOKUP_ANSWERED = timedelta(seconds=5)
#: after one it did not answer (timeout, connection lost, the worker died): Twilio may still be
#: creating it, and its status callback normally comes within seconds
LOOKUP_UNANSWERED = timedelta(seconds=30)
#: how far Twilio's clock (a message's ``date_created``, in whole seconds) may be from ours
SKEW = timedelta(seconds=60)
SWEEP_EVERY = timedelta(minutes=5)
#: entries sent per phone before others get a turn (each takes at most the HTTP timeout, within LEASE)
BATCH = 5
#: sends in flight per worker process
POOL = 64
IN_FLIGHT_STATES = ("sending", "uncertain")


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 2 s, 4 s, 8 s, … at most 5 minutes."""
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))


class ApprovalCheck(Protocol):
    """Whether WhatsApp approved a template (:class:`bot.channels.approvals.Approvals`)."""

    def approved(self, name: str) -> bool: ...


@dataclass(frozen=True)
class Later:
    """Look at the entry again at ``at_ms`` (epoch ms): a retry, or an uncertain send to settle."""

    at_ms: int


class LeaseLost(Exception):
    """Our hold on the customer lapsed (another worker may send now): stop without sending."""


class Worker:
    def __init__(
        self,
        outboxes: list[Outbox],
        sender: Sender,
        stats: Stats,
        *,
        status_callback: str | None,
        after_send: Callable[[str, str], None] | None = None,
        lease: timedelta = LEASE,
        pool: int = POOL,
        listen: Callable[[], Any] | None = None,
        housekeeping: Callable[[], None] | None = None,
        reminders: dict[str, Reminders] | None = None,
        approvals: ApprovalCheck | None = None,
        heartbeats: Heartbeats | None = None,
    ) -> None:
        self.outboxes = outboxes
        self.by_business = {outbox.business: outbox for outbox in outboxes}
        self.sender = sender
        self.stats = stats
        self.status_callback = status_callback
        #: test seam: called between Twilio's answer and writing it down (a crash there)
        self.after_send = after_send or (lambda phone, sid: None)
        self.lease_ms = int(lease.total_seconds() * 1000)
        self.pool = pool
        #: a pub/sub connection for the bell (None: poll only)
        self.listen = listen
        #: work done with every sweep (the retention of old bookings)
        self.housekeeping = housekeeping
        #: per business: its due reminders, fired into its outbox
        self.reminders = reminders or {}
        #: WhatsApp's approval of each template (what may go outside the 24-hour window)
        self.approvals = approvals
        #: where :meth:`run` says every few seconds that this worker is alive (``flask doctor`` reads it)
        self.heartbeats = heartbeats
        self.name = uuid.uuid4().hex
        self._last_sweep: datetime | None = None
        self._wake = threading.Event()
        #: outcomes counted since the last flush (a shared counter is a Redis round trip each)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    # --- counters ----------------------------------------------------------------------
    def _count(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1

    def flush_counts(self) -> None:
        """Add the outcomes counted since the last flush to the shared counters (about once a second
        while running, and when a pass or the loop ends)."""
        with self._counts_lock:
            counts, self._counts = self._counts, Counter()
        for name, amount in counts.items():
            self.stats.incr(name, amount)

    # --- one pass (tests, and the loop below) -------------------------------------------
    def run_once(self) -> int:
        """Send what is due now and wait for it; the number of entries finished."""
        self._sweep_if_due()
        limit = max(self.pool, 50)
        claimed: list[tuple[Outbox, str]] = []
        fired = 0
        for outbox in self.outboxes:
            most = self._reminder_limit(outbox, limit)
            phones, due, _ = outbox.claim_all(outbox.now_ms(), limit, self.lease_ms, reminders=most)
            for member in due:
                self.fire(member, outbox)
                fired += 1
            claimed += [(outbox, phone) for phone in phones]
        if fired:  # the phones they were queued for are due now
            claimed = [(o, p) for o in self.outboxes for p in o.claim(o.now_ms(), limit, self.lease_ms)[0]] + claimed
        try:
            if self.pool <= 1 or len(claimed) <= 1:
                return sum(self.drain(phone, outbox) for outbox, phone in claimed)
            with ThreadPoolExecutor(min(self.pool, len(claimed)), thread_name_prefix="outbox") as pool:
                return sum(f.result() for f in [pool.submit(self.drain, phone, outbox) for outbox, phone in claimed])
        finally:
            self.flush_counts()

    def _reminder_limit(self, outbox: Outbox, free: int) -> int:
        return free if outbox.business in self.reminders else 0

    def fire(self, member: str, outbox: Outbox) -> str:
        """Queue one due reminder into its customer's outbox (see :mod:`bot.outbox.reminders`)."""
        outcome = self.reminders[outbox.business].fire(member, outbox)
        self._count(f"outbox.reminder_{outcome}")
        return outcome

    def _sweep_if_due(self) -> None:
        if self._last_sweep is None or self._now() - self._last_sweep >= SWEEP_EVERY:
            self.sweep()

    def _now(self) -> datetime:
        return self.outboxes[0].clock() if self.outboxes else datetime.now(UTC)

    def sweep(self) -> int:
        """Ring the doorbell of every phone with an outbox stream (recovers lost doorbells); a stream
        found empty (left by an earlier release, or drained since the SCAN) is deleted instead."""
        self._last_sweep = self._now()
        if self.housekeeping is not None:
            try:
                self.housekeeping()
            except redis.RedisError as exc:  # next sweep
                log.warning("outbox worker: housekeeping: redis error: %s: %s", type(exc).__name__, exc)
        found = 0
        for outbox in self.outboxes:
            phones = list(outbox.streams())
            for phone in phones:
                outbox.settle(phone)  # one script: rings a stream with entries, deletes an empty one
            found += len(phones)
        return found

    # --- one customer ------------------------------------------------------------------
    def drain(self, phone: str, outbox: Outbox) -> int:
        """Send ``phone``'s entries in order until its stream is empty, one must wait, or BATCH went.

        Round trips for a customer with one reply: take (lease + head), begin, finish (says what
        is left), leave (settle + release)."""
        token = f"{self.name}:{uuid.uuid4().hex}"
        taken, head = outbox.take(phone, token, self.lease_ms)
        if not taken:
            return 0  # another worker is on it; the claim left it due when that lease ends
        # the drain's last word on the doorbell and the lease's release are one step (Outbox.leave): a
        # claim that failed on our lease meanwhile has moved the doorbell to the end of that claim, and
        # only a word said with (not before) the release undoes it
        finished, due, waited_for, left = 0, None, "", False
        try:
            while head is not None:
                try:
                    outcome = self.deliver(phone, head, outbox=outbox, token=token)
                except LeaseLost:
                    log.warning("outbox lease of %s lapsed: leaving it to the next worker", mask_phone(phone))
                    break  # settled: due now, not at the end of a claim made meanwhile (a proof dropped our lease)
                if isinstance(outcome, Later):
                    due, waited_for = outcome.at_ms, head.entry_id
                    break
                finished += 1
                if outcome == 0 or finished >= BATCH:
                    break  # nothing left; or more, and others get a turn first (settled: due now)
                head = outbox.head(phone)
            outbox.leave(phone, token, due, waited_for)
            left = True
            return finished
        finally:
            if not left:  # Redis trouble or a bug: the lease lapses by itself, the claim ends
                outbox.release(phone, token)

    def deliver(self, phone: str, head: Head, *, outbox: Outbox, token: str) -> Later | int:
        """Handle the head entry: when to look at it again, or, once it is finished, the entries left."""
        entry_id, message = head.entry_id, head.message
        now = outbox.now_ms()
        if message is None:  # never blocks the customer's later messages
            return self._finish(outbox, phone, entry_id, "failed", 0, reason="unreadable outbox entry")
        record, accepted, seen = head.record, head.accepted, head.seen
        attempts = int(record.get("attempts", 0))
        if accepted:
            return self._finish(outbox, phone, entry_id, "sent", attempts, sid=accepted, message=message)
        since = record.get("since")
        if record.get("state") in IN_FLIGHT_STATES:
            wait_until = self._settle_uncertain(outbox, phone, entry_id, message, record, now)
            if isinstance(wait_until, Found):
                self._count("outbox.found")
                return self._finish(outbox, phone, entry_id, "sent", attempts, sid=wait_until.sid, message=message)
            if wait_until is not None:
                return Later(wait_until)
            log.warning("re-sending outbox %s of %s: Twilio does not have it", entry_id, mask_phone(phone))
            self._count("outbox.resent")
            since = since or record.get("at")
        if message.get("proactive") and head.opted_out:
            self._count("outbox.opted_out")
            stopped = "the customer wrote STOP: no messages the business starts"
            return self._finish(
                outbox, phone, entry_id, "undeliverable", attempts, reason=stopped, message=message, why="opted_out"
            )
        if not in_window(seen, now):
            template = str(message.get("template", ""))
            if not message.get("approved_only"):
                return self._finish(
                    outbox, phone, entry_id, "undeliverable", attempts, reason="outside WhatsApp's 24-hour window"
                )
            if not (self.approvals is not None and self.approvals.approved(template)):
                self._count("outbox.not_approved")
                reason = (
                    f"outside WhatsApp's 24-hour window and template {template} is not approved by WhatsApp yet "
                    "(flask templates list)"
                )
                undeliverable = "undeliverable"
                return self._finish(
                    outbox, phone, entry_id, undeliverable, attempts, reason=reason, message=message, why="not_approved"
                )
        attempts += 1
        nonce = secrets.token_hex(4)
        attempt: dict[str, Any] = {"state": "sending", "at": now, "attempts": attempts, "nonce": nonce}
        if since:
            attempt["since"] = since
        booking = str(message.get("booking", ""))
        began = outbox.begin(
            phone, token, self.lease_ms, entry_id, attempt, booking=booking, version=str(message.get("version", ""))
        )
        if began == 0:
            raise LeaseLost(phone)
        if began == 2:
            return self._finish(
                outbox, phone, entry_id, "revoked", attempts - 1, reason=f"booking {booking} changed", message=message
            )
        try:
            sid = self.sender.send(phone, message, self._callback(outbox, phone, entry_id, nonce))
        except RetryLater as exc:
            delay = max(backoff(attempts), timedelta(seconds=exc.after or 0))
            if self._note(outbox, phone, entry_id, attempt, state="retry", reason=str(exc)) is None:
                raise LeaseLost(phone) from exc
            self._count("outbox.retry")
            log.info("outbox %s for %s: %s; retry in %ss", entry_id, mask_phone(phone), exc, delay.total_seconds())
            return Later(now + _ms(delay))
        except Uncertain as exc:
            look_at = now + _ms(LOOKUP_ANSWERED if exc.answered else LOOKUP_UNANSWERED)
            proved = self._note(outbox, phone, entry_id, attempt, state="uncertain", reason=str(exc), look_at=look_at)
            if proved is None:  # its status callback proved it while it hung, and another worker finished it
                raise LeaseLost(phone) from exc
            self._count("outbox.uncertain")
            log.warning("outbox %s for %s may have been sent: %s", entry_id, mask_phone(phone), exc)
            return Later(now if proved else look_at)  # proved: finished as sent at once (see the top of deliver)
        except Undeliverable as exc:
            return self._finish(outbox, phone, entry_id, "undeliverable", attempts, reason=str(exc), message=message)
        except Refused as exc:
            return self._finish(outbox, phone, entry_id, "failed", attempts, reason=str(exc), message=message)
        self.after_send(phone, sid)
        return self._finish(outbox, phone, entry_id, "sent", attempts, sid=sid, message=message)

    def _settle_uncertain(
        self, outbox: Outbox, phone: str, entry_id: str, message: dict[str, Any], record: dict[str, Any], now: int
    ) -> int | Found | None:
        """An attempt that may have reached Twilio: when to look again (ms), the message Twilio has,
        or None when Twilio does not have it (send again)."""
        at = int(record.get("at", 0))
        if record.get("state") == "sending" and now < at + _ms(IN_FLIGHT):
            return at + _ms(IN_FLIGHT)  # its sender may still be waiting for Twilio's answer
        look_at = int(record.get("look_at") or at + _ms(LOOKUP_UNANSWERED))
        if now < look_at:
            return look_at  # a status callback proving it normally comes by then (and rings us)
        since = int(record.get("since") or at)
        try:
            found = self.lookup(outbox, phone, message, since)
        except RetryLater as exc:
            lookups = int(record.get("lookups", 0)) + 1
            again = now + _ms(backoff(lookups))
            self._note(outbox, phone, entry_id, record, lookups=lookups, look_at=again, reason=str(exc))
            self._count("outbox.lookup_failed")
            log.warning("outbox %s for %s: %s; asking again later", entry_id, mask_phone(phone), exc)
            return again
        return found

    def lookup(self, outbox: Outbox, phone: str, message: dict[str, Any], since_ms: int) -> Found | None:
        """The message Twilio created for this entry, if it did: to ``phone``, from our sender,
        created since ``since_ms`` (give or take :data:`SKEW`), with the entry's text when it is
        text, and not already another record's."""
        self._count("outbox.lookup")
        sender = self.sender.sender_of(message)
        earliest = since_ms - _ms(SKEW)
        known = outbox.known_sids(phone)
        for found in self.sender.recent(phone):
            if found.sid in known or found.sender != sender or epoch_ms(found.created) < earliest:
                continue
            if "body" in message and found.body != message["body"]:
                continue
            return found
        return None

    def _note(self, outbox: Outbox, phone: str, entry_id: str, record: dict[str, Any], **changes: Any) -> str | None:
        """Write down the attempt's new state unless it is no longer in flight (see :meth:`Outbox.note`)."""
        return outbox.note(phone, entry_id, {**record, **changes})

    def _finish(
        self,
        outbox: Outbox,
        phone: str,
        entry_id: str,
        state: str,
        attempts: int,
        *,
        sid: str = "",
        reason: str = "",
        message: dict[str, Any] | None = None,
        why: str = "",
    ) -> int:
        """Write the entry's outcome down (and remove it); the entries left in the stream. A
        reminder's outcome is counted for its business (``why`` names a failure's counter)."""
        record: dict[str, Any] = {"state": state, "at": outbox.now_ms(), "attempts": attempts}
        if sid:
            record["sid"] = sid
        if message is not None and state == "sent":  # kept a while: Twilio may still report it failed (sent again)
            record["m"] = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        if reason:
            record["reason"] = reason
            log.warning("outbox %s for %s %s: %s", entry_id, mask_phone(phone), state, reason)
        count = ""
        if message is not None and message.get("kind") == proactive.REMINDER:
            count = why or {"sent": "sent", "revoked": "revoked"}.get(state, "failed")
        left = outbox.finish(phone, entry_id, record, count=count)
        self._count(f"outbox.{state}")
        return left

    def _callback(self, outbox: Outbox, phone: str, entry_id: str, nonce: str) -> str | None:
        if not self.status_callback:
            return None
        query = urlencode({"b": outbox.business, "to": phone, "entry": entry_id, "n": nonce})
        return f"{self.status_callback}?{query}"

    # --- the process's loop ------------------------------------------------------------
    def beat(self) -> None:
        """Write this worker's heartbeat now (:meth:`run` does every few seconds)."""
        if self.heartbeats is not None:
            info = {"host": socket.gethostname(), "pid": os.getpid(), "businesses": sorted(self.by_business)}
            self.heartbeats.beat(self.name, info)

    def wake(self) -> None:
        """Make the loop look for due messages now (a bell, a send finished, a stop)."""
        self._wake.set()

    def run(self, stop: threading.Event, *, idle: float = 1.0) -> None:
        """Until ``stop`` is set: claim what is due whenever a bell rings, a send finishes or
        ``idle`` seconds pass, and send it on the pool; in-flight sends finish before it returns."""
        log.info("outbox worker %s started (%d sends at once)", self.name[:8], self.pool)
        listener = threading.Thread(target=self._listen, args=(stop,), name="outbox-bell", daemon=True)
        if self.listen is not None:
            listener.start()
        busy: set[tuple[str, str]] = set()
        #: phones claimed while still draining here: their claim moved them to its end (hold, ms)
        claimed_busy: dict[tuple[str, str], int] = {}
        lock = threading.Lock()
        flushed = time.monotonic()
        beaten: float | None = None

        def done(key: tuple[str, str], outbox: Outbox) -> Callable[[Future[int]], None]:
            def finished(future: Future[int]) -> None:
                with lock:
                    busy.discard(key)
                    hold = claimed_busy.pop(key, None)
                if hold is not None:  # a claim that found it busy must not keep it waiting to the end of that claim
                    try:
                        outbox.unclaim(key[1], hold)
                    except redis.RedisError as exc:  # the claim ends by itself
                        log.warning("outbox worker: redis error: %s: %s", type(exc).__name__, exc)
                if future.exception() is not None and not isinstance(future.exception(), redis.RedisError):
                    log.error("outbox worker: unexpected error", exc_info=future.exception())
                self._wake.set()

            return finished

        def fired(future: Future[str]) -> None:
            if future.exception() is not None and not isinstance(future.exception(), redis.RedisError):
                log.error("outbox worker: unexpected error firing a reminder", exc_info=future.exception())
            self._wake.set()

        with ThreadPoolExecutor(self.pool, thread_name_prefix="outbox") as pool:
            while not stop.is_set():
                self._wake.clear()
                wait = idle
                try:
                    if beaten is None or time.monotonic() - beaten >= heartbeat_.EVERY:
                        beaten = time.monotonic()
                        self.beat()
                    self._sweep_if_due()
                    for outbox in self.outboxes:
                        with lock:
                            free = self.pool - len(busy)
                        if free <= 0:
                            break
                        now = outbox.now_ms()
                        phones, due, next_ms = outbox.claim_all(
                            now, free, self.lease_ms, reminders=self._reminder_limit(outbox, free)
                        )
                        for member in due:  # queued and rung: the bell brings the loop back for the phone
                            pool.submit(self.fire, member, outbox).add_done_callback(fired)
                        for phone in phones:
                            key = (outbox.business, phone)
                            with lock:
                                if key in busy:
                                    claimed_busy[key] = now + self.lease_ms
                                    continue
                                busy.add(key)
                            pool.submit(self.drain, phone, outbox).add_done_callback(done(key, outbox))
                        if next_ms is not None:
                            wait = min(wait, max(0.0, (next_ms - outbox.now_ms()) / 1000))
                    if time.monotonic() - flushed >= 1.0:
                        flushed = time.monotonic()
                        self.flush_counts()
                except redis.RedisError as exc:
                    log.warning("outbox worker: redis error: %s: %s", type(exc).__name__, exc)
                except Exception:  # a bug must not stop the sending of everyone's messages
                    log.exception("outbox worker: unexpected error")
                self._wake.wait(max(wait, 0.001))
            self._wake.set()
        try:
            self.flush_counts()
            if self.heartbeats is not None:
                self.heartbeats.stop(self.name)
        except redis.RedisError as exc:
            log.warning("outbox worker: counts or heartbeat not saved: %s: %s", type(exc).__name__, exc)
        if listener.is_alive():
            listener.join(timeout=5)  # it hears the stop within a second
        log.info("outbox worker %s stopped", self.name[:8])

    def _listen(self, stop: threading.Event) -> None:
        """Hear the bell: any business of ours published on it wakes the loop at once."""
        assert self.listen is not None
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = self.listen()
                while not stop.is_set():
                    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message and str(message.get("data")) in self.by_business:
                        self._wake.set()
            except Exception as exc:  # Redis gone, a failover: the timed poll covers until it is back
                log.warning("outbox bell: %s; polling until it is back", type(exc).__name__, exc_info=True)
                stop.wait(1.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # closing a broken connection
                        log.debug("outbox bell: closing the connection failed", exc_info=True)


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


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
    new_twilio = services.new_twilio
    sender = Sender(
        lambda: _required(new_twilio()),
        templates,
        default=settings.twilio_messaging_service_sid or settings.twilio_from or "",
    )
    callback = f"{settings.public_base_url}/webhook/status" if settings.public_base_url else None
    outboxes = [services.outboxes[shop.id] for shop in services.directory if shop.channel.out_of_band]
    bell = services.shared_keys.outbox_bell
    client = services.redis

    def listen() -> Any:
        pubsub = client.pubsub()
        pubsub.subscribe(bell)
        return pubsub

    proactive_names = [t.friendly_name for t in proactive.all_templates(services.catalogs)]

    def housekeeping() -> None:
        if services.twilio is not None:  # WhatsApp's verdict on templates still waiting for it
            services.approvals.refresh(services.twilio, templates, proactive_names)
        for shop in services.directory:
            swept = retention.sweep(client, shop, services.clock())
            if swept.anonymised:
                log.info("retention: %d bookings of %s anonymised", swept.anonymised, shop.id)

    kwargs.setdefault("listen", listen)
    kwargs.setdefault("housekeeping", housekeeping)
    kwargs.setdefault("approvals", services.approvals)
    kwargs.setdefault("heartbeats", Heartbeats(client, services.shared_keys.worker_heartbeats))
    kwargs.setdefault(
        "reminders",
        {
            shop.id: Reminders(client, shop, services.catalogs)
            for shop in services.directory
            if shop.channel.out_of_band
        },
    )
    return Worker(outboxes, sender, services.stats, status_callback=callback, **kwargs)


def _required(client: Any) -> Any:
    if client is None:
        raise click.UsageError("the worker needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    return client


@click.command("worker")
@click.option("--idle", default=1.0, show_default=True, help="Seconds between polls for retries and deferred sends.")
@click.option("--pool", default=POOL, show_default=True, help="Messages in flight at once (each to another customer).")
@with_appcontext
@shared_store
def worker_command(idle: float, pool: int) -> None:
    """Send the outbox (Content API messages) through Twilio until SIGTERM or Ctrl-C.

    Every few seconds the worker writes a heartbeat (``flask doctor`` checks that one is alive)."""
    worker = build_worker(pool=pool)
    worker.sender.warm()
    if worker.status_callback is None:
        log.warning("PUBLIC_BASE_URL is not set: messages go out without a per-message status callback")
    stop = threading.Event()

    def stopping(*_: Any) -> None:
        stop.set()
        worker.wake()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stopping)
    worker.run(stop, idle=idle)

"""The outbox's whole path as real processes, for the fault matrix (``test_outbox_faults.py``).

The pieces are ``bench/outbox.py``'s: a durable ``redis-server`` (every write fsynced: ``appendonly
yes``, ``appendfsync always``), the local Twilio of ``tests/twilio_server.py`` over HTTP (a send
answered after ~100 ms, then ``sent`` and ``delivered`` callbacks posted back), the app under
gunicorn in Content API mode pointing at it, ``flask --app wsgi templates sync``, and ``flask
--app wsgi worker`` processes. Customers post signed taps (``bench/conversations.py``,
``bench/tapping.py``); every message Twilio *created* is then matched to its tap.

**What is counted** (:class:`Tally`), per customer, from Twilio's messages (``created()``), each
naming its outbox entry, customer and attempt in its ``StatusCallback`` URL:

* *delivered*: taps answered 200 whose reply Twilio created (and did not fail);
* *lost*: taps answered 200 with no such reply, unless Twilio failed it after accepting and the
  outbox gave it up on purpose: a newer message to the customer superseded it (counted as
  *superseded*), or it was already queued again :data:`bot.outbox.MAX_REQUEUES` times (*gave up*);
* *out of order*: replies created after a reply to a later tap of the same customer;
* *wrong customer*: a message whose recipient is not the customer its callback URL names, whose
  entry is not in that customer's delivery records, or whose content is not the reply to the
  customer's tap it stands for;
* *duplicates*: messages Twilio created for an entry after its first;
* *re-sends after failure*: messages Twilio failed after accepting them, queued again by the
  status callback (a new entry, expected).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis

from bench.conversations import CLINIC, ConversationPlan, Tap, interleave, phone
from bench.deliveries import percentile
from bench.outbox import Workers, content_environment
from bench.run import Gunicorn, clean_environment
from bench.tapping import Tapped, Tapper
from bot.booking.catalog import load_catalog
from bot.keys import BusinessKeys, SharedKeys
from bot.replies import EMPTY_TWIML

from ..redis_server import RedisServer
from ..twilio_faults import SENT_DELIVERED
from ..twilio_rest import AUTH_TOKEN
from ..twilio_server import Message, TwilioServer

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "faults"
LANGUAGES = frozenset({"en", "es", "pt"})
#: how long the local Twilio takes to answer a send (seconds)
TWILIO_DELAY = 0.1
#: the worker's states of an entry still being worked on
IN_FLIGHT = ("sending", "uncertain", "retry")
#: the worker's name (the start of its lease tokens) as its first log line gives it
WORKER_NAME = re.compile(r"outbox worker ([0-9a-f]{8}) started")
#: what each of a conversation's replies says first (the content variable ``1``), tap by tap
STEP_TEXT = (
    re.compile(r"^Hi\b"),
    re.compile(r"^Which service would you like"),
    re.compile(r"which day suits you"),
    re.compile(r"^Which time on "),
    re.compile(r"^Please check your booking"),
    re.compile(r"^Booked!"),
)


class WorkerProcesses(Workers):
    """The benchmark's workers, polling every 0.5 s, given 15 s to stop (a hung send's HTTP timeout);
    ``skew`` runs one under ``tests/system/skewed_clock.py`` (its process clock off by that many seconds)."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        super().__init__(env, workdir, ("--idle", "0.5"), grace=15.0)

    def start(self, count: int, *, skew: float = 0.0, extra: tuple[str, ...] = ()) -> list[subprocess.Popen[bytes]]:
        runner = ("-m", "tests.system.skewed_clock", str(skew)) if skew else ("-m", "flask")
        return self.launch(count, runner, extra)


class InlineTapper(Tapper):
    """A :class:`Tapper` that also notes the taps answered with a message in the HTTP answer itself
    (the app could not queue it: Redis was down) rather than queued for the worker."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.inline: set[str] = set()

    def answered(self, tap: Tap, status: int, body: bytes) -> None:
        if status == 200 and body.decode(errors="replace").strip() != EMPTY_TWIML.strip():
            self.inline.add(tap.form["MessageSid"])


def given_up(record: dict[str, Any]) -> bool:
    """A record of a message Twilio failed after accepting it, queued again too often to be again."""
    reason = record.get("reason", "")
    return (
        record.get("state") == "failed"
        and "after accepting it" in reason
        and "queued again" not in reason
        and "superseded" not in reason
    )


def callback_query(message: Message) -> dict[str, str]:
    query = parse_qs(urlsplit(message.form.get("StatusCallback", "")).query)
    return {key: values[0] for key, values in query.items()}


def entry_key(entry: str) -> tuple[int, int]:
    ms, seq = entry.split("-")
    return int(ms), int(seq)


def step_of(message: Message) -> int | None:
    """Which reply of a conversation this message is (by its first content variable), if any."""
    try:
        text = json.loads(message.form.get("ContentVariables", "{}")).get("1", "")
    except ValueError:
        return None
    text = text or message.form.get("Body", "")
    return next((n for n, pattern in enumerate(STEP_TEXT) if pattern.search(text)), None)


@dataclass
class Tally:
    """The figures of one scenario (see the module docstring)."""

    taps: int = 0
    not_200: int = 0
    inline: int = 0  # answered in the HTTP answer (not queued): nothing for the worker to send
    expected: int = 0  # taps whose reply the worker must send
    delivered: int = 0
    lost: int = 0
    superseded: int = 0
    gave_up: int = 0
    customers: int = 0
    last_reply_delivered: int = 0  # customers whose reply to their last tap was delivered
    out_of_order: int = 0
    wrong_customer: int = 0
    duplicates: int = 0
    failed_after_accept: int = 0
    resent_after_failure: int = 0
    stale_in_flight: int = 0  # records of finished entries left in an in-flight state
    latencies_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        p50, top = percentile(self.latencies_ms, 0.5), max(self.latencies_ms, default=float("nan"))
        return {
            "taps": self.taps,
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "out_of_order": self.out_of_order,
            "wrong_customer": self.wrong_customer,
            "duplicates": self.duplicates,
            "failed_after_accept": self.failed_after_accept,
            "resent_after_failure": self.resent_after_failure,
            "superseded": self.superseded,
            "gave_up": self.gave_up,
            "inline": self.inline,
            "p50_ms": round(p50),
            "max_ms": round(top),
        }

    def line(self, name: str) -> str:
        return f"{name}: " + ", ".join(f"{k}={v}" for k, v in self.figures().items())


class OutboxRig:
    """Redis, the local Twilio, the app and the workers; one scenario after another (each on an
    emptied Redis with fresh phones and fresh workers)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis", "--appendonly", "yes", "--appendfsync", "always")
        self.redis.start()
        self.db = redis.Redis.from_url(self.redis.url, decode_responses=True)
        self.twilio = TwilioServer(
            delay=TWILIO_DELAY, lifecycle=SENT_DELIVERED, callback_threads=8, hang_limit=30.0
        ).start()
        env = {**content_environment(self.redis.url, self.twilio.url, PREFIX), "WEB_CONCURRENCY": "2"}
        try:
            self.app = Gunicorn("wsgi:app", workdir, env, "app")
        except SystemExit as exc:
            self.close()
            raise AssertionError(str(exc)) from None
        self.env = {**clean_environment(), **env, "PUBLIC_BASE_URL": self.app.url, "PYTHONPATH": str(ROOT)}
        self.workers = WorkerProcesses(self.env, workdir)
        catalog = load_catalog(CLINIC, languages=LANGUAGES)
        self.keys = BusinessKeys(PREFIX, catalog.business.id)
        #: the worker's counters (``outbox.*``, see bot/stats.py SharedCounts)
        self.totals = SharedKeys(PREFIX).outbox_totals
        self.plan = ConversationPlan(catalog, token=AUTH_TOKEN, url=self.app.url + "/webhook", now=datetime.now(UTC))
        self.tapper = InlineTapper(self.app.port)
        self.next_phone = 0
        #: the workers' logs of the last scenario
        self.last_logs = ""

    def close(self) -> None:
        self.workers.stop()
        if hasattr(self, "app"):
            self.app.stop()
        self.twilio.close()
        self.db.close()
        self.redis.stop()

    # -- a scenario's steps ---------------------------------------------------------------------
    def reset(self, workers: int, *, skews: tuple[float, ...] = ()) -> None:
        """No worker, an empty Redis, the templates synced again, the usual Twilio; then the workers."""
        self.workers.stop()
        if self.redis.process is None:
            self.redis.start()
        self.db.flushall()
        self.twilio.delay = TWILIO_DELAY
        self.twilio.lifecycle = SENT_DELIVERED
        self.clear_plan()
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "templates", "sync"]
        synced = subprocess.run(command, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=60)
        assert synced.returncode == 0, f"templates sync failed:\n{synced.stdout}{synced.stderr}"
        for skew in skews:
            self.workers.start(1, skew=skew)
        if workers > len(skews):
            self.workers.start(workers - len(skews))

    def clear_plan(self) -> None:
        """Forget the faults planned and not used (the next scenario plans its own)."""
        with self.twilio._lock:  # the server offers no public way; its plan is a deque under this lock
            self.twilio._plan.clear()

    def conversations(self, customers: int, taps: int) -> list[list[Tap]]:
        first, self.next_phone = self.next_phone, self.next_phone + customers
        return [self.plan.conversation(phone(first + n), first + n)[:taps] for n in range(customers)]

    def tap(self, made: list[list[Tap]], rate: float) -> list[Tapped]:
        """Every customer's taps, in order per customer, interleaved, ``rate`` taps/s in all."""
        return self.tapper.paced(interleave(made, width=len(made)), rate)

    def quiet(self, phones: set[str]) -> bool:
        """Nothing left to send (no stream, no doorbell) and no send still waiting for Twilio's answer."""
        pipe = self.db.pipeline(transaction=False)
        pipe.zcard(self.keys.due)
        for number in phones:
            pipe.exists(self.keys.outbox(number))
        waiting, *streams = pipe.execute()
        return waiting == 0 and not any(streams) and all(s.outcome != "pending" for s in self.twilio.received())

    def wait_until_quiet(self, phones: set[str], timeout: float) -> float:
        """Until every reply went and nothing is in flight (polling Redis, bounded); the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while not self.quiet(phones):
            if time.monotonic() > deadline:
                pending = {p: self.db.xlen(self.keys.outbox(p)) for p in phones if self.db.exists(self.keys.outbox(p))}
                raise AssertionError(f"the outbox did not drain within {timeout} s: still queued {pending}")
            time.sleep(0.1)
        return time.monotonic() - started

    def delivered_all(self, made: list[list[Tap]]) -> Callable[[], bool]:
        """A ``TwilioServer.wait_until`` condition: every customer's reply to their last tap was created
        (and not failed: replies go in order, so the earlier ones went before it), and every failure
        Twilio reported was posted back to the app (which queues it again or gives it up)."""
        last = {taps[0].form["From"].removeprefix("whatsapp:"): len(taps) - 1 for taps in made}

        def enough() -> bool:  # under the server's lock
            done, failures = set(), set()
            for message in self.twilio.messages.values():
                number = message.form["To"].removeprefix("whatsapp:")
                if number not in last:
                    continue
                if message.status == "failed":
                    failures.add(message.sid)
                elif step_of(message) == last[number]:
                    done.add(number)
            reported = {c.sid for c in self.twilio.callbacks if c.status == "failed"}
            return len(done) == len(last) and failures <= reported

        return enough

    def worker_of(self, number: str) -> Any:
        """The worker process holding ``number``'s lease (None when nobody does, or it is not ours)."""
        token = self.db.get(self.keys.lease(number)) or ""
        for process, log in self.workers.processes:
            found = WORKER_NAME.search(log.read_text(errors="replace"))
            if process.poll() is None and found and token.startswith(found[1]):
                return process
        return None

    # -- what happened ------------------------------------------------------------------------------
    def tally(self, made: list[list[Tap]], tapped: list[Tapped]) -> Tally:
        tally = Tally()
        sids = {
            (taps[0].form["From"].removeprefix("whatsapp:"), i): tap.form["MessageSid"]
            for taps in made
            for i, tap in enumerate(taps)
        }
        phones = {number for number, _ in sids}
        sends = {send.sid: send for send in self.twilio.received() if send.sid}
        messages: dict[str, list[Message]] = {}
        for message in self.twilio.created():  # oldest first
            number = message.form["To"].removeprefix("whatsapp:")
            if number in phones:
                messages.setdefault(number, []).append(message)
        taps_of: dict[str, list[Tapped]] = {}
        for tap in tapped:
            tally.taps += 1
            if tap.status != 200:
                tally.not_200 += 1
            elif sids[(tap.phone, tap.index)] in self.tapper.inline:
                tally.inline += 1
            else:
                taps_of.setdefault(tap.phone, []).append(tap)
        for number in phones:
            records = self.db.hgetall(self.keys.delivery(number))
            for name, raw in records.items():
                if name.startswith("acc:"):
                    continue
                record = json.loads(raw)
                if record.get("state") in IN_FLIGHT:
                    tally.stale_in_flight += 1
                    tally.problems.append(f"{number} entry {name} left {record}")
                if record.get("state") == "failed" and "queued again" in record.get("reason", ""):
                    tally.resent_after_failure += 1
                if record.get("state") == "failed" and "superseded" in record.get("reason", ""):
                    tally.superseded += 1
                if given_up(record):
                    tally.gave_up += 1
            self._one_customer(tally, number, messages.get(number, []), taps_of.get(number, []), records, sends)
        return tally

    def _one_customer(
        self,
        tally: Tally,
        number: str,
        messages: list[Message],
        taps: list[Tapped],
        records: dict[str, str],
        sends: dict[str, Any],
    ) -> None:
        by_entry: dict[str, list[Message]] = {}
        order: list[tuple[int, int]] = []  # entries in the order Twilio first created them
        for message in messages:
            query = callback_query(message)
            entry = query.get("entry", "")
            if query.get("to") != number or entry not in records:
                tally.wrong_customer += 1
                tally.problems.append(f"{message.sid} to {number} names {query}")
                continue
            if entry in by_entry:
                tally.duplicates += 1
                tally.problems.append(f"{number} entry {entry}: created again as {message.sid}")
            else:
                order.append(entry_key(entry))
            by_entry.setdefault(entry, []).append(message)
            if message.status == "failed":
                tally.failed_after_accept += 1
        highest = None
        for key in order:
            if highest is not None and key < highest:
                tally.out_of_order += 1
                tally.problems.append(f"{number} entry {key} created after {highest}")
            else:
                highest = key
        # the replies that reached the customer (not failed), by the tap they answer
        replies: dict[int, Message] = {}
        for entry in sorted(by_entry, key=entry_key):
            good = [m for m in by_entry[entry] if m.status != "failed"]
            if not good:
                continue
            step = step_of(good[0])
            if step is None or step in replies:
                tally.wrong_customer += 1
                tally.problems.append(f"{number} entry {entry}: content {good[0].form.get('ContentVariables')}")
                continue
            replies[step] = good[0]
        given_up_on = {  # the taps whose reply Twilio failed and the outbox gave up on purpose
            step_of(by_entry[name][0])
            for name, raw in records.items()
            if name in by_entry and (given_up(json.loads(raw)) or "superseded" in json.loads(raw).get("reason", ""))
        }
        tally.expected += len(taps)
        tally.customers += 1
        tally.last_reply_delivered += bool(taps) and max(tap.index for tap in taps) in replies
        for tap in taps:
            reply = replies.get(tap.index)
            if reply is None:
                if tap.index not in given_up_on:
                    tally.lost += 1
                    tally.problems.append(f"{number} tap {tap.index}: no reply created")
                continue
            tally.delivered += 1
            send = sends.get(reply.sid)
            if send is not None:
                tally.latencies_ms.append((send.at - tap.sent_at) * 1000)
        if set(replies) - {tap.index for tap in taps}:
            tally.wrong_customer += 1
            tally.problems.append(f"{number}: replies to taps never made {sorted(set(replies))}")

"""Outbox (issue 20): how fast the replies of Content API mode reach Twilio. One command:
``.venv/bin/python bench/outbox.py`` (a few minutes; ``--quick``: about a minute).

Starts a real ``redis-server``, the local Twilio of ``tests/twilio_server.py`` in this process
(answering each message send after ``--twilio-ms``, then posting signed ``sent`` and
``delivered`` status callbacks back to the app), the app under gunicorn in Content API mode
with ``TWILIO_API_URL`` pointing at that Twilio (``bench/run.py``'s gunicorn, the clinic of
``bench/clinic.toml``), runs ``flask --app wsgi templates sync``, then ``flask --app wsgi
worker`` processes. Customers post signed webhooks (``bench/conversations.py``: hi, Book,
service, day, time, Confirm, each phone's taps in order); every reply is matched to its tap
(``bench/deliveries.py``): latency is from sending the tap's POST to the local Twilio
receiving the reply's ``Messages.json`` create.

Scenarios, each on an emptied Redis with freshly started workers:

* **steady**: ``--rate`` taps/s for ``--seconds`` (``--workers`` worker processes), then up to
  ``--settle`` s for the last replies; also at ``--light-rate`` (the latency of an idle worker).
  One customer taps again ``--gap`` s after their previous tap at the earliest (default 1 s: a
  reply spends 200 ms at Twilio alone, and people read before they tap); with ``--gap 0.2`` a
  reply often waits for the same customer's previous one to be accepted (order per customer);
* **burst**: ``--burst`` customers tap at the same moment; also the time until the last reply
  reached Twilio (up to ``--burst-bound`` s);
* **drain**: ``--backlog`` replies queued by ``--backlog-customers`` customers with no worker
  running, then ``N`` workers started (each of ``--drain-workers``): messages/s from the first
  reply to the last (or to the end of ``--drain-window``).

Counted everywhere: replies that never reached Twilio (still queued in the outbox, or missing:
lost), duplicates, and replies out of order per customer. Prints figures, asserts nothing;
``--record LABEL`` also appends them to ``bench/results.md`` as "Outbox (issue 20): LABEL".
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.conversations import CLINIC, TAPS, ConversationPlan, Tap, interleave, phone  # noqa: E402
from bench.deliveries import Figures, entry_of, match, percentile  # noqa: E402
from bench.run import Gunicorn, clean_environment, load_average, machine  # noqa: E402
from bench.tapping import Tapped, Tapper  # noqa: E402
from bot.booking.catalog import load_catalog  # noqa: E402
from bot.keys import BusinessKeys  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.twilio_faults import QUIET, SENT_DELIVERED  # noqa: E402
from tests.twilio_rest import ACCOUNT_SID, AUTH_TOKEN, SENDER  # noqa: E402
from tests.twilio_server import TwilioServer  # noqa: E402

RESULTS = REPO / "bench" / "results.md"
PREFIX = "tapbook"
LANGUAGES = frozenset({"en", "es", "pt"})


def content_environment(redis_url: str, twilio_url: str, prefix: str = PREFIX) -> dict[str, str]:
    """The app's settings in Content API mode against the local Twilio at ``twilio_url`` (the clinic's
    catalog): for the app under gunicorn and for its worker processes alike."""
    return {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": SENDER,
        "TWILIO_API_URL": twilio_url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "BOT_CATALOG": str(CLINIC),
    }


class Workers:
    """``flask --app wsgi worker`` processes, each logging to its own file (the benchmark's, and the
    fault matrix's, which also kills them)."""

    def __init__(self, env: dict[str, str], workdir: Path, extra: Sequence[str] = (), *, grace: float = 2.0) -> None:
        self.env = env
        self.workdir = workdir
        self.extra = list(extra)
        #: how long a stopped worker may take to finish its sends before it is killed
        self.grace = grace
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.started = 0
        self.killed: set[int] = set()

    def start(self, count: int) -> list[subprocess.Popen[bytes]]:
        return self.launch(count, ("-m", "flask"), ())

    def launch(self, count: int, runner: Sequence[str], extra: Sequence[str]) -> list[subprocess.Popen[bytes]]:
        """``count`` workers run by ``python <runner> --app wsgi worker``, once each says it started."""
        new = []
        for _ in range(count):
            self.started += 1
            log = self.workdir / f"worker-{self.started}.log"
            command = [sys.executable, *runner, "--app", "wsgi", "worker", *self.extra, *extra]
            with log.open("wb") as out:
                process = subprocess.Popen(command, cwd=self.workdir, env=self.env, stdout=out, stderr=out)
            self.processes.append((process, log))
            new.append((process, log))
        deadline = time.monotonic() + 30
        for process, log in new:
            while "started" not in log.read_text(errors="replace"):  # readiness of a process we started, bounded
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start; see {log}:\n{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.05)
        return [process for process, _ in new]

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [process for process, _ in self.processes if process.poll() is None]

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL, as a crash would: sends on the wire are cut, nothing is written down after."""
        self.killed.add(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def died(self) -> list[str]:
        """The logs' ends of workers that exited on their own (not stopped or killed by us)."""
        return [
            log.read_text(errors="replace")[-2000:]
            for process, log in self.processes
            if process.poll() is not None and process.pid not in self.killed
        ]

    def logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.processes if log.exists())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the running workers have used so far (Linux ``/proc``)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for process, _ in self.processes:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone already
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:  # a send hung on Twilio ends within its HTTP timeout
                process.kill()
                process.wait(timeout=10)
        self.processes = []
        self.killed = set()


class Bench:
    """The running system and what every scenario does with it."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis")
        self.redis.start()
        self.db = redis.Redis.from_url(self.redis.url, decode_responses=True)
        lifecycle = QUIET if args.callbacks == "none" else SENT_DELIVERED
        self.twilio = TwilioServer(delay=args.twilio_ms / 1000, lifecycle=lifecycle, callback_threads=8).start()
        env = content_environment(self.redis.url, self.twilio.url)
        self.app = Gunicorn("wsgi:app", workdir, env, "app")
        self.env = {**clean_environment(), **env, "PUBLIC_BASE_URL": self.app.url, "PYTHONPATH": str(REPO)}
        self.workers = Workers(self.env, workdir, args.worker_arg)
        catalog = load_catalog(CLINIC, languages=LANGUAGES)
        self.keys = BusinessKeys(PREFIX, catalog.business.id)
        self.plan = ConversationPlan(catalog, token=AUTH_TOKEN, url=self.app.url + "/webhook", now=datetime.now(UTC))
        self.tapper = Tapper(self.app.port)
        self.next_phone = 0
        self.cpu = 0.0
        self.last_tapped: list[Tapped] = []

    def close(self) -> None:
        self.workers.stop()
        self.app.stop()
        self.twilio.close()
        self.db.close()
        self.redis.stop()

    # -- steps -------------------------------------------------------------------------------
    def reset(self, workers: int) -> None:
        """No worker, an empty Redis, the templates synced again; then ``workers`` workers."""
        self.workers.stop()
        self.db.flushall()
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "templates", "sync"]
        synced = subprocess.run(command, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=60)
        if synced.returncode != 0:
            sys.exit(f"templates sync failed:\n{synced.stdout}{synced.stderr}")
        self.workers.start(workers)

    def conversations(self, count: int) -> list[list[Tap]]:
        """``count`` conversations of phones no scenario used before."""
        first, self.next_phone = self.next_phone, self.next_phone + count
        return [self.plan.conversation(phone(first + n), first + n) for n in range(count)]

    def queued(self, phone_number: str) -> int:
        return int(self.db.xlen(self.keys.outbox(phone_number)))

    def wait_for_replies(self, phones: set[str], count: int, since: int, bound: float) -> float:
        """Until ``count`` distinct replies to ``phones`` reached Twilio (after send ``since``), at most ``bound`` s;
        the moment the wait ended (time.monotonic)."""
        seen: set[tuple[str, object]] = set()
        cursor = since

        def enough() -> bool:  # under the server's lock: read only the sends that are new since the last call
            nonlocal cursor
            for send in self.twilio.sends[cursor:]:
                if send.to.removeprefix("whatsapp:") in phones:
                    seen.add((send.to, entry_of(send)))
            cursor = len(self.twilio.sends)
            return len(seen) >= count

        try:
            self.twilio.wait_until(enough, timeout=bound)
        except AssertionError:
            pass  # the bound passed: what did not arrive by now is counted as not delivered
        return time.monotonic()

    def figures(self, tapped: list[Tapped], phones: set[str], since: int, until: float) -> Figures:
        """Stop the workers, then match the taps to every send to ``phones`` after ``since``
        (``self.cpu``: the CPU seconds the workers used)."""
        self.cpu = self.workers.cpu_seconds()
        self.workers.stop()
        sends = [s for s in self.twilio.received()[since:] if s.to.removeprefix("whatsapp:") in phones]
        return match(tapped, sends, self.queued, until)

    # -- scenarios ---------------------------------------------------------------------------
    def steady(self, rate: float, seconds: float, settle: float) -> tuple[Figures, float]:
        """``rate`` taps/s for ``seconds``: the figures and the rate achieved."""
        self.reset(self.args.workers)
        count = max(1, round(rate * seconds))
        made = self.conversations(math.ceil(count / TAPS))
        taps = interleave(made, width=max(2, round(rate * self.args.gap)))[:count]  # a phone taps every ``gap`` s
        phones = {conversation[0].form["From"].removeprefix("whatsapp:") for conversation in made}
        since = len(self.twilio.received())
        tapped = self.tapper.paced(taps, rate)
        self.last_tapped = tapped
        achieved = (len(tapped) - 1) / max(tapped[-1].sent_at - tapped[0].sent_at, 1e-9)
        until = self.wait_for_replies(phones, sum(t.status == 200 for t in tapped), since, settle)
        return self.figures(tapped, phones, since, until), achieved

    def burst(self, customers: int, bound: float) -> tuple[Figures, float]:
        """``customers`` first taps at once: the figures and the seconds until the last reply reached Twilio."""
        self.reset(self.args.workers)
        taps = [conversation[0] for conversation in self.conversations(customers)]
        phones = {tap.form["From"].removeprefix("whatsapp:") for tap in taps}
        since = len(self.twilio.received())
        released, tapped = self.tapper.burst(taps)
        self.last_tapped = tapped
        answered = sum(t.status == 200 for t in tapped)
        until = self.wait_for_replies(phones, answered, since, released + bound - time.monotonic())
        figures = self.figures(tapped, phones, since, until)
        return figures, figures.last_arrival - released if figures.delivered else math.nan

    def drain(self, workers: int, backlog: int, customers: int, window: float) -> tuple[Figures, float, float]:
        """``backlog`` replies queued with no worker, then ``workers`` started: the figures, the messages/s
        from the first reply to the last, and the seconds from starting the workers to the first reply."""
        self.reset(0)
        per_customer = math.ceil(backlog / customers)
        made = self.conversations(customers)
        taps = interleave([conversation[:per_customer] for conversation in made], width=16)[:backlog]
        phones = {conversation[0].form["From"].removeprefix("whatsapp:") for conversation in made}
        tapped = self.tapper.paced(taps, None)
        queued = sum(self.queued(p) for p in phones)
        if queued != sum(t.status == 200 for t in tapped):
            print(f"  note: {queued} replies queued for {len(tapped)} taps", flush=True)
        since = len(self.twilio.received())
        started = time.monotonic()
        self.workers.start(workers)
        until = self.wait_for_replies(phones, queued, since, window)
        figures = self.figures(tapped, phones, since, until)
        firsts = sorted(s.at for s in self.twilio.received()[since:] if s.at <= until)
        rate = (figures.delivered - 1) / (figures.last_arrival - firsts[0]) if figures.delivered > 1 else math.nan
        return figures, rate, (firsts[0] - started) if firsts else math.nan


def answered(bench: Bench) -> str:
    """How fast the webhook itself answered the last scenario's taps."""
    answers = [1000 * (t.answered_at - t.sent_at) for t in bench.last_tapped if t.answered_at]
    return f"the webhook answered in p50 {percentile(answers, 0.5):.0f} ms, p99 {percentile(answers, 0.99):.0f} ms"


def report_lines(bench: Bench, args: argparse.Namespace) -> list[str]:
    """Run every scenario; the figures as Markdown lines (each printed as soon as it is known)."""
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    workers = f"{args.workers} worker process{'es' if args.workers > 1 else ''}"
    figures, achieved = bench.steady(args.rate, args.seconds, args.settle)
    say(f"- **steady {args.rate:g} taps/s** for {args.seconds:g} s ({achieved:.1f}/s achieved), {workers}:")
    say(f"  {answered(bench)}; tap → Twilio {figures.latency()}; {figures.counts()} (after {args.settle:g} s more)")
    if args.light_rate:
        figures, achieved = bench.steady(args.light_rate, args.light_seconds, args.settle)
        say(f"- **steady {args.light_rate:g} taps/s** for {args.light_seconds:g} s, {workers}:")
        say(f"  tap → Twilio {figures.latency()}; {figures.counts()}")
    figures, last = bench.burst(args.burst, args.burst_bound)
    say(f"- **burst of {args.burst} customers** tapping at once, {workers}:")
    say(
        f"  {answered(bench)}; tap → Twilio {figures.latency()}; last reply reached Twilio {last:.1f} s after the burst"
        f" (bound {args.burst_bound:g} s); {figures.counts()}"
    )
    for count in args.drain_workers:
        figures, rate, first = bench.drain(count, args.backlog, args.backlog_customers, args.drain_window)
        say(
            f"- **drain {args.backlog} queued replies** of {args.backlog_customers} customers,"
            f" {count} worker process{'es' if count > 1 else ''}:"
        )
        say(
            f"  {rate:.1f} messages/s (first reply to last); first reply {first:.2f} s after starting the workers;"
            f" workers' CPU {bench.cpu * 1000 / max(figures.delivered, 1):.1f} ms a message;"
            f" {figures.counts()} (window {args.drain_window:g} s)"
        )
    return lines


def record(label: str, command: str, started: datetime, wall: float, load: float, lines: list[str]) -> None:
    """Append the figures to bench/results.md as the section "Outbox (issue 20): ``label``"."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = [
        f"## Outbox (issue 20): {label}",
        "",
        f"`{command}`, {started:%Y-%m-%d %H:%M} UTC, {wall:.0f} s in all.",
        f"Machine: {machine(load)}. See the docstring of bench/outbox.py for what is measured.",
        "",
        *lines,
        "",
    ]
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(section))


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: every scenario, shorter and smaller")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for steady and burst")
    parser.add_argument("--rate", type=float, default=50.0, help="taps/s of the steady run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the steady run")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait for the last replies")
    parser.add_argument(
        "--gap", type=float, default=1.0, help="seconds between two taps of one customer in steady runs (at least)"
    )
    parser.add_argument("--light-rate", type=float, default=2.0, help="taps/s of the light steady run (0: none)")
    parser.add_argument("--light-seconds", type=float, default=15.0)
    parser.add_argument("--burst", type=int, default=200, help="customers tapping at once")
    parser.add_argument("--burst-bound", type=float, default=60.0, help="seconds to wait for the burst's replies")
    parser.add_argument("--backlog", type=int, default=2000, help="replies queued before the drain")
    parser.add_argument("--backlog-customers", type=int, default=500)
    parser.add_argument("--drain-workers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 3])
    parser.add_argument("--drain-window", type=float, default=45.0, help="seconds the drain may take at most")
    parser.add_argument("--twilio-ms", type=float, default=200.0, help="how long Twilio takes to answer a send")
    parser.add_argument("--callbacks", choices=["sent,delivered", "none"], default="sent,delivered")
    parser.add_argument("--worker-arg", action="append", default=[], help="passed to each worker (repeat)")
    parser.add_argument("--record", metavar="LABEL", help="append the figures to bench/results.md")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        quick = {"seconds": 6.0, "settle": 4.0, "light_rate": 0.0, "burst_bound": 12.0, "backlog": 400,
                 "backlog_customers": 100, "drain_window": 8.0}  # fmt: skip
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def main() -> None:
    args = arguments()
    started, clock, load = datetime.now(UTC), time.monotonic(), load_average()
    command = shlex.join(["python", "bench/outbox.py", *sys.argv[1:]])
    workdir = Path(tempfile.mkdtemp(prefix="tapbook-outbox-"))
    bench = Bench(args, workdir)
    try:
        print(f"{command}: redis, gunicorn and Twilio ({args.twilio_ms:g} ms a send) are up", flush=True)
        lines = report_lines(bench, args)
        surprises = bench.twilio.surprises
        if surprises:
            lines.append(f"- requests Twilio did not expect: {surprises[:5]}")
            print(lines[-1])
    finally:
        bench.close()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.monotonic() - clock
    print(f"{wall:.0f} s in all")
    if args.record:
        record(args.record, command, started, wall, load, lines)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()

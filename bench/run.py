"""How close is the bot to the ceiling of its own stack? One command: ``.venv/bin/python bench/run.py``.

Starts a ``redis-server`` and, under gunicorn with ``gunicorn.conf.py`` on 127.0.0.1, the bot and
a baseline (``bench/baseline.py``: the same Flask stack answering constant TwiML). wrk replays
signed booking conversations (``bench/conversations.py``, ``bench/replay.lua``) against each, in
alternation, for several rounds; the bot runs once on an empty Redis and once on a large data
set (100,000 sessions and 50,000 bookings over the horizon). Prints a table of medians and
writes it to ``bench/results.md``. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402
from bot.booking.desk import REF_ALPHABET  # noqa: E402

from bench.conversations import ConversationPlan, Tap, interleave, phone  # noqa: E402
from bot.booking.catalog import load_catalog  # noqa: E402
from bot.booking.slots import day_starts, local_today, occupancy  # noqa: E402
from bot.booking.store import BookingStore  # noqa: E402
from bot.config import Settings  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402

CATALOG = REPO / "bench" / "clinic.toml"
RESULTS = REPO / "bench" / "results.md"
PREFIX = "tapbook"
LARGE_SESSIONS = 100_000
LARGE_BOOKINGS = 50_000


# -- processes ------------------------------------------------------------------------------
def ensure_wrk() -> str:
    """wrk from Debian, installed the way .ci/run installs redis-server."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


class Gunicorn:
    """One app under gunicorn with the production config, bound to 127.0.0.1."""

    def __init__(self, app: str, workdir: Path, env: dict[str, str], name: str) -> None:
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [
            str(gunicorn), "-c", str(REPO / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{self.port}",
            "--pythonpath", str(REPO), app,
        ]  # fmt: skip
        clean = {k: v for k, v in os.environ.items() if k not in {*Settings.keys(), "PORT", "WEB_CONCURRENCY"}}
        with self.log.open("wb") as log:  # the bot's own log lines (stderr) are read back for round trips
            self.process = subprocess.Popen(
                command,
                cwd=workdir,
                env={**clean, "PUBLIC_BASE_URL": self.url, **env},  # the URL the conversations are signed for
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while True:  # readiness of a process we just started, bounded
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                sys.exit(f"{name} did not start; see {self.log}:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


# -- load -----------------------------------------------------------------------------------
@dataclass
class Run:
    kind: str  # baseline, empty, large
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    round_trips: list[int] = field(default_factory=list)
    trips_by_handler: dict[str, list[int]] = field(default_factory=dict)
    commands: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    bookings: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def write_requests(directory: Path, taps_per_thread: list[list[Tap]], host: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, taps in enumerate(taps_per_thread):
        with (directory / f"thread-{index}.req").open("wb") as out:
            for tap in taps:
                raw = tap.raw_http(host)
                out.write(b"%d\n" % len(raw) + raw)


def wrk(binary: str, url: str, directory: Path, threads: int, kind: str) -> Run:
    """Replay ``directory``'s requests; the run lasts from the first thread ready to the last one done."""
    for marker in [*directory.glob("start-*"), *directory.glob("done-*")]:
        marker.unlink()
    command = [binary, "-t", str(threads), "-c", str(threads), "-d", "600s", "--timeout", "10s",
               "-s", str(REPO / "bench" / "replay.lua"), url + "/webhook", "--", str(directory)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while len(list(directory.glob("done-*"))) < threads:  # bounded wait for the threads we started
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"wrk ended before every thread was done:\n{process.communicate()[0]}")
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=30)[0]
    match = re.search(r"^BENCH (.*)$", output, re.MULTILINE)
    if not match:
        sys.exit("wrk printed no result:\n" + output)
    values = {k: int(v) for k, v in (pair.split("=") for pair in match[1].split())}
    first = min(p.stat().st_mtime_ns for p in directory.glob("start-*"))
    last = max(p.stat().st_mtime_ns for p in directory.glob("done-*"))
    return Run(
        kind,
        values["requests"],
        (last - first) / 1e9,
        values["p50_us"] / 1000,
        values["p99_us"] / 1000,
        values["errors"] + values["status_errors"],
    )


def commandstats(client: redis.Redis) -> Counter[str]:
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()})


_TRIPS = re.compile(r"outcome=(\w+) handler=(\S+) round_trips=(\d+)")


def _taps(text: str) -> list[tuple[str, str, int]]:
    """(outcome, handler, round trips) of each webhook log line, JSON (production) or plain."""
    found = []
    for line in text.splitlines():
        if line.startswith("{") and '"round_trips"' in line:
            entry = json.loads(line)
            found.append((entry["outcome"], entry.get("handler") or "-", int(entry["round_trips"])))
        elif match := _TRIPS.search(line):
            found.append((match[1], match[2], int(match[3])))
    return found


def read_round_trips(log: Path, offset: int, run: Run) -> None:
    """The engine's own per-tap count (the number tests/test_round_trips.py checks on the socket)."""
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    for outcome, handler, trips in _taps(text):
        run.outcomes[outcome] += 1
        run.round_trips.append(trips)
        run.trips_by_handler.setdefault(handler if outcome == "ok" else outcome, []).append(trips)


# -- data -----------------------------------------------------------------------------------
def sample_phone_keys(client: redis.Redis, number: str) -> tuple[list[bytes], list[bytes]]:
    """The keys a phone's conversation leaves, bookings aside: its state (session, profile) for as
    long as the conversation lives, and its reply records (kept DEDUPE_TTL_SECONDS)."""
    state = [k for k in (f"{PREFIX}:session:{{{number}}}".encode(), f"{PREFIX}:profile:{{{number}}}".encode())
             if client.exists(k)]  # fmt: skip
    return state, sorted(client.scan_iter(match=f"{PREFIX}:msg:{{{number}}}:*", count=1000))


@dataclass
class Memory:
    per_session: float  # used_memory per active session (state only)
    per_reply: float  # used_memory per reply record
    by_step: list[int]  # MEMORY USAGE of the session hash after tap 1..6


Sample = tuple[str, list[tuple[bytes, bytes, int]]]  # a phone and its keys: (key, DUMP, PTTL)


def _clone(client: redis.Redis, samples: list[Sample], count: int, base: int) -> float:
    """``count`` copies of the samples' keys under other phones (DUMP/RESTORE keeps encoding and TTL);
    returns the used_memory delta per copy."""
    before = client.info("memory")["used_memory"]
    pipe = client.pipeline(transaction=False)
    for index in range(count):
        number, keys = samples[index % len(samples)]
        other = phone(base + index).encode()
        for key, dumped, ttl in keys:
            pipe.restore(key.replace(number.encode(), other), max(ttl, 1), dumped, replace=True)
        if index % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    return (client.info("memory")["used_memory"] - before) / count


def fill_sessions(client: redis.Redis, plan: ConversationPlan, bot: Gunicorn) -> Memory:
    """100,000 active sessions, copies of real ones, and what they and the reply records cost.

    Six sample phones talk to the running bot, each stopping after a different tap of the
    conversation (1 to 6); the state each one left is copied under 100,000 other phones, an
    even mix of the six steps. Reply records are measured apart (10,000 copies, then deleted):
    they live DEDUPE_TTL_SECONDS after each tap, not as long as the session.
    """
    states, replies, by_step = [], [], []
    for taps in range(1, 7):
        number = phone(9_000_000 + taps)
        for tap in plan.conversation(number, taps)[:taps]:
            post(bot.url, tap)
        state, records = sample_phone_keys(client, number)
        by_step.append(client.memory_usage(state[0]))
        states.append((number, [(k, client.dump(k), client.pttl(k)) for k in state]))
        replies.append((number, [(k, client.dump(k), client.pttl(k)) for k in records[:1]]))
    per_reply = _clone(client, replies, 10_000, 7_000_000)
    client.delete(*client.scan_iter(match=f"{PREFIX}:msg:{{+15557*", count=10_000))  # the copies
    per_session = _clone(client, states, LARGE_SESSIONS, 8_000_000)
    return Memory(per_session, per_reply, by_step)


def post(url: str, tap: Tap) -> None:
    request = urllib.request.Request(
        url + "/webhook", data=urlencode(tap.form).encode(), headers={"X-Twilio-Signature": tap.signature}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def fill_bookings(client: redis.Redis, catalog_path: Path, now: datetime) -> None:
    """50,000 confirmed bookings over days 1 to 14, written as the booking script writes them
    (booking hash, customer and business indexes, one counted entry per booked interval)."""
    catalog = load_catalog(catalog_path, languages=frozenset({"en", "es", "pt"}))
    business = catalog.business
    store = BookingStore(client, prefix=PREFIX, business=business.id)
    today = local_today(business, now)
    days = [today + timedelta(days=n) for n in range(1, business.horizon_days + 1)]
    starts = {(s.id, d): day_starts(business, s, d, now) for s in catalog.services for d in days}
    pipe = client.pipeline(transaction=False)
    services = catalog.services
    places: Counter[tuple[str, int, int]] = Counter()  # (day key, start, end) -> bookings
    for index in range(LARGE_BOOKINGS):
        service = services[index % len(services)]
        day = days[(index // len(services)) % len(days)]
        choices = starts[(service.id, day)]
        start = choices[(index // (len(services) * len(days))) % len(choices)]
        begin, end = occupancy(service, start)
        ref = "".join(REF_ALPHABET[(index // len(REF_ALPHABET) ** k) % len(REF_ALPHABET)] for k in range(6))
        customer = f"+1557{index // 2:07d}"
        at = int(start.timestamp())
        places[(store.day_key(service.resource, day), begin, end)] += 1
        pipe.hset(store.booking_key(ref), mapping={
            "ref": ref, "phone": customer, "name": "Bench", "service": service.id, "start": at,
            "end": at + service.minutes * 60, "day": day.strftime("%Y%m%d"), "status": "confirmed",
            "language": "en", "created_at": int(now.timestamp()), "occ": f"{begin},{end}",
        })  # fmt: skip
        pipe.zadd(store.customer_key(customer), {ref: at})
        pipe.zadd(store.all_bookings_key, {ref: at})
        if index % 2000 == 1999:
            pipe.execute()
    for (key, begin, end), count in places.items():  # as the booking script counts them
        pipe.hset(key, f"={begin},{end}", f"{begin},{end},0,{count}")
    pipe.execute()


# -- report ---------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} × {model}, {platform.system()} {platform.release()}, load average {load:.2f} at start"


def report(runs: list[Run], memory: Memory, args: argparse.Namespace, started: datetime, total: float) -> str:
    kinds = ("baseline", "empty", "large", "baseline-light", "empty-light")
    by_kind = {kind: [r for r in runs if r.kind == kind] for kind in kinds}
    rate = {kind: median([r.rate for r in rs]) for kind, rs in by_kind.items()}
    p50 = {kind: median([r.p50_ms for r in rs]) for kind, rs in by_kind.items()}
    p99 = {kind: median([r.p99_ms for r in rs]) for kind, rs in by_kind.items()}
    bot = by_kind["empty"]
    trips = [t for r in bot for t in r.round_trips]
    by_handler: dict[str, list[int]] = {}
    for r in bot:
        for handler, values in r.trips_by_handler.items():
            by_handler.setdefault(handler, []).extend(values)
    taps = sum(r.requests for r in bot)
    commands = sum((r.commands for r in bot), Counter())
    per_tap = sum(commands.values()) / taps if taps else float("nan")
    steps = ", ".join(f"{h} {median(v):g}" for h, v in by_handler.items())
    top = ", ".join(f"{name} {calls / taps:.2f}" for name, calls in commands.most_common(8))

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    trips_median = median(trips)
    rows = [
        ("Bot taps/s (empty Redis)", f"{rate['empty']:.0f}", ""),
        ("Baseline requests/s", f"{rate['baseline']:.0f}", ""),
        ("Bot / baseline throughput", f"{rate['empty'] / rate['baseline']:.2f}",
         f"≥ 0.5: {verdict(rate['empty'] >= 0.5 * rate['baseline'])}"),
        ("Bot p50 / p99 latency (ms)", f"{p50['empty']:.1f} / {p99['empty']:.1f}", ""),
        ("Baseline p50 / p99 latency (ms)", f"{p50['baseline']:.1f} / {p99['baseline']:.1f}", ""),
        ("Bot p99 / baseline p99", f"{p99['empty'] / p99['baseline']:.2f}",
         f"≤ 2: {verdict(p99['empty'] <= 2 * p99['baseline'])}"),
        ("Service time, 2 connections: bot p50 / p99 (ms)", f"{p50['empty-light']:.1f} / {p99['empty-light']:.1f}",
         f"baseline {p50['baseline-light']:.1f} / {p99['baseline-light']:.1f}; "
         f"p99 ratio {p99['empty-light'] / p99['baseline-light']:.2f}"),
        ("Redis round trips per tap (median)", f"{trips_median:g}", f"≤ 2: {verdict(trips_median <= 2)}"),
        ("Round trips by step (median)", steps, ""),
        ("Redis commands per tap (mean)", f"{per_tap:.1f}", top),
        ("Redis memory per active session (bytes)", f"{memory.per_session:.0f}",
         f"≤ 256: {verdict(memory.per_session <= 256)}; MEMORY USAGE of the session hash after taps 1-6: "
         + ", ".join(map(str, memory.by_step))),
        ("Redis memory per reply record (bytes)", f"{memory.per_reply:.0f}",
         "kept DEDUPE_TTL_SECONDS (60 s) after each tap, for Twilio's retries"),
        ("Bot taps/s, large data set", f"{rate['large']:.0f}", f"p50 / p99 {p50['large']:.1f} / {p99['large']:.1f} ms"),
        ("Large / empty throughput", f"{rate['large'] / rate['empty']:.2f}",
         f"≥ 0.9: {verdict(rate['large'] >= 0.9 * rate['empty'])}"),
    ]  # fmt: skip
    lines = [
        "# Benchmark results",
        "",
        f"`python bench/run.py --rounds {args.rounds} --conversations {args.conversations} "
        f"--connections {args.connections}`, {started:%Y-%m-%d %H:%M} UTC, {total:.0f} s in all.",
        f"Machine: {machine()}. gunicorn.conf.py defaults (cores + 1 workers × 4 threads).",
        f"Each run: {args.conversations} conversations × 6 taps over {args.connections} connections; medians of "
        f"{args.rounds} rounds (baseline, bot on an empty Redis, bot on the large data set, in alternation; then "
        f"both apps at light load: {args.conversations // 6} conversations over {args.light_connections} connections).",
        "",
        "| Measure | Value | Target / detail |",
        "|---|---|---|",
        *(f"| {name} | {value} | {detail} |" for name, value, detail in rows),
        "",
        "Every run, as measured (requests/s, p50 ms, p99 ms, errors, bookings made):",
        "",
        *(
            f"- {r.kind}: {r.rate:.0f}/s, {r.p50_ms:.1f}, {r.p99_ms:.1f}, {r.errors} errors"
            + (f", {r.bookings} bookings" if not r.kind.startswith("baseline") else "")
            for r in runs
        ),
        "",
        "Round trips are the engine's own per-tap count from the bot's log line (the count "
        "tests/test_round_trips.py checks on the socket); commands per tap are INFO commandstats "
        "deltas (commands inside scripts included) over the bot's taps on the empty Redis.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=1200, help="per run (6 taps each)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (one thread each)")
    parser.add_argument("--light-connections", type=int, default=2, help="for the service-time runs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, requests)")
    args = parser.parse_args()
    started, clock = datetime.now(UTC), time.monotonic()
    wrk_binary = ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="tapbook-bench-"))
    server = RedisServer(workdir / "redis")
    server.start()
    client = redis.Redis.from_url(server.url)
    token = secrets.token_hex(16)
    apps: list[Gunicorn] = []
    try:
        bot = Gunicorn(
            "wsgi:app",
            workdir,
            {"REDIS_URL": server.url, "TWILIO_AUTH_TOKEN": token, "BOT_CATALOG": str(CATALOG)},
            "bot",
        )
        apps.append(bot)
        baseline = Gunicorn("bench.baseline:app", workdir, {}, "baseline")
        apps.append(baseline)
        catalog = load_catalog(CATALOG, languages=frozenset({"en", "es", "pt"}))
        plan = ConversationPlan(catalog, token=token, url=bot.url + "/webhook", now=datetime.now(UTC))
        host = f"127.0.0.1:{bot.port}"
        schedule = []
        for round_number in range(args.rounds):
            kinds = ["baseline", "empty", "large"]
            shift = round_number % len(kinds)
            light = ["baseline-light", "empty-light"][:: 1 if round_number % 2 else -1]
            schedule += [(round_number, kind) for kind in kinds[shift:] + kinds[:shift] + light]
        print(f"generating {len(schedule)} runs of signed conversations…", flush=True)
        directories, connections = {}, {}
        for index, (_, kind) in enumerate(schedule):
            light = kind.endswith("-light")
            connections[index] = args.light_connections if light else args.connections
            count = args.conversations // 6 if light else args.conversations
            conversations = list(plan.conversations(first_phone=index * 100_000, count=count))
            threads = connections[index]
            per_thread = [interleave(conversations[k::threads], width=4) for k in range(threads)]
            directories[index] = workdir / f"run-{index}"
            write_requests(directories[index], per_thread, host)
        runs: list[Run] = []
        memory: Memory | None = None
        for index, (round_number, kind) in enumerate(schedule):
            if not kind.startswith("baseline"):
                client.flushall()
                if kind == "large":
                    print("filling the large data set…", flush=True)
                    measured = fill_sessions(client, plan, bot)
                    memory = memory or measured
                    fill_bookings(client, CATALOG, datetime.now(UTC))
                client.config_resetstat()
            target = baseline if kind.startswith("baseline") else bot
            offset = bot.log.stat().st_size
            bookings_before = client.zcard(f"{PREFIX}:bk:{{{catalog.business.id}}}:bookings")
            run = wrk(wrk_binary, target.url, directories[index], connections[index], kind)
            if not kind.startswith("baseline"):
                run.commands = commandstats(client)
                run.commands.pop("config", None)
                read_round_trips(bot.log, offset, run)
                run.bookings = client.zcard(f"{PREFIX}:bk:{{{catalog.business.id}}}:bookings") - bookings_before
            runs.append(run)
            print(
                f"round {round_number + 1} {kind:14}: {run.rate:7.0f}/s  p50 {run.p50_ms:6.1f} ms  "
                f"p99 {run.p99_ms:6.1f} ms  errors {run.errors}"
                + (f"  bookings {run.bookings}  taps {dict(run.outcomes)}" if not kind.startswith("baseline") else ""),
                flush=True,
            )
        assert memory is not None, "every round has a run on the large data set"
        text = report(runs, memory, args, started, time.monotonic() - clock)
        print()
        print(text)
        args.output.write_text(text)
        print(f"written to {args.output}")
    finally:
        for app in apps:
            app.stop()
        server.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

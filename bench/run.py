"""How close is the bot to the ceiling of its own stack, and to the previous release? One command:
``.venv/bin/python bench/run.py`` (about 10 minutes on 2 cores; ``--rounds 1 --conversations 300``,
about a minute, for a quick look while developing).

Starts one ``redis-server`` and, each under gunicorn with this checkout's ``gunicorn.conf.py`` on
127.0.0.1 (same environment: the same Redis, auth token and key prefix), five apps:

* **baseline** (``bench/baseline.py``): the same Flask stack answering constant TwiML;
* **release-1**: the previous release (git tag ``release-1``), taken out of git with
  ``git archive`` into the temporary directory (the working tree is not touched) and started from
  there with ``BOT_CATALOG=bench/clinic.toml``; its conversations are made by its OWN
  ``bench/conversations.py`` (``bench/taps.py`` run in a subprocess with ``PYTHONPATH`` set to that
  checkout), so its button IDs are the ones it accepts. Without the tag (a shallow clone, a source
  archive) these runs are skipped with one printed line;
* **one business**: this release, ``BOT_CATALOG=bench/clinic.toml`` (one catalog, no numbers);
* **two businesses**: this release, ``BOT_CATALOG`` a folder of two catalogs made from the clinic
  (``clinic-a`` on +15550000101 and ``clinic-b`` on +15550000102, see
  ``bench.conversations.two_clinics``); every run's conversations are split evenly between the two
  numbers (distinct phones), each connection talking to both in turn. After each run the bookings
  of each business are counted in its own index and their phones checked against the phones that
  wrote to that number: each business must get exactly its own bookings;
* **large data set**: the one-business app again, on a Redis pre-filled with 100,000 active
  sessions (copies, by DUMP/RESTORE, of the state real conversations left after each of their six
  taps) and 50,000 confirmed bookings over days 1-14, written by the booking code itself (
  ``book_request`` encoded by ``BookingStore.encode`` and applied by ``bot/lua/write.lua``, in
  pipelined batches).

wrk replays signed booking conversations (``bench/conversations.py``: hi, Book, service, day,
time, Confirm; ``bench/replay.lua``: one connection per thread, each phone's taps in order), the
same number of conversations over the same number of connections for every app. Each round runs
baseline, release-1, one business, two businesses and large data set, the order rotating from
round to round so that drift (the other tenant of the machine, thermal, Redis growth) hits all
alike; then baseline, release-1 and one business again at light load (a sixth of the
conversations over 2 connections: service time rather than throughput). Before round 1 every app
gets one unmeasured warm-up run; Redis is flushed before every run of a bot. The report gives
medians over the rounds, and the per-round ratios of this release to release-1 (runs of the same
round are the fairest pairs).

Measured per run: taps/s (from the first wrk thread ready to the last one done), wrk's p50/p99
latency, errors, bookings made; the app's CPU time per tap (user + system of gunicorn's master and
workers, from /proc: what a tap costs, which the machine's other load moves far less than
throughput); per tap, from the app's own log line, the Redis round trips by
handler (``round_trips=`` and ``handler=``: the count tests/test_round_trips.py checks on the
socket); Redis commands per tap from INFO commandstats (commands inside scripts included). Once,
on the first large-data round: the Redis memory (``used_memory`` delta) per active session with its
profile, and per reply record (10,000 copies, then deleted). Every key is named by
``bot.keys.BusinessKeys`` (release 1's by ``bot.keys.LegacyKeys``).

Prints a table and writes it to ``bench/results.md``. All traffic stays on 127.0.0.1.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.conversations import CLINIC, TWO_CLINICS, ConversationPlan, Tap, phone, two_clinics  # noqa: E402
from bench.taps import LANGUAGES, write_run  # noqa: E402
from bot.booking.catalog import Catalog, load_catalog  # noqa: E402
from bot.booking.records import REF_ALPHABET, hold_token  # noqa: E402
from bot.booking.requests import book_request  # noqa: E402
from bot.booking.slots import day_starts, local_today  # noqa: E402
from bot.booking.store import BookingStore, KeyList  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.keys import BusinessKeys, LegacyKeys  # noqa: E402
from bot.lua import Scripts  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402

RESULTS = REPO / "bench" / "results.md"
PREFIX = "tapbook"
RELEASE = "release-1"
LARGE_SESSIONS = 100_000
LARGE_BOOKINGS = 50_000
REPLY_COPIES = 10_000
BATCH = 1000

#: the runs of a round, in the order of round 1 (later rounds rotate it)
HEAVY = ("baseline", "release-1", "one", "two", "large")
LIGHT = ("baseline-light", "release-1-light", "one-light")
#: which app serves each kind of run
APP = {
    "baseline": "baseline",
    "baseline-light": "baseline",
    "release-1": "release-1",
    "release-1-light": "release-1",
    "one": "one",
    "one-light": "one",
    "large": "one",
    "two": "two",
}
LABEL = {
    "release-1": "release-1 (previous release), one business",
    "one": "this release, one business",
    "two": "this release, two businesses",
    "large": "this release, one business, large data set",
    "baseline": "baseline (constant TwiML)",
}
SHORT = {"baseline": "baseline", "release-1": "release-1", "one": "one business", "two": "two businesses",
         "large": "large data set"}  # fmt: skip


# -- processes ------------------------------------------------------------------------------
def ensure_tool(package: str) -> str:
    """A command from Debian's package of the same name, installed the way .ci/run installs redis-server."""
    found = shutil.which(package)
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    return shutil.which(package) or sys.exit(f"{package} could not be installed")


def clean_environment() -> dict[str, str]:
    """This shell's environment less every setting of the bot (and how Python finds code)."""
    drop = {*Settings.keys(), "PORT", "WEB_CONCURRENCY", "PYTHONPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


class Gunicorn:
    """One app under gunicorn with this checkout's gunicorn.conf.py, bound to 127.0.0.1; its code
    from ``code`` (this checkout, or the previous release's)."""

    def __init__(self, app: str, workdir: Path, env: dict[str, str], name: str, code: Path = REPO) -> None:
        self.name = name
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [
            str(gunicorn), "-c", str(REPO / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{self.port}",
            "--pythonpath", str(code), app,
        ]  # fmt: skip
        with self.log.open("wb") as log:  # the bot's own log lines (stderr) are read back for round trips
            self.process = subprocess.Popen(
                command,
                cwd=workdir,
                env={**clean_environment(), "PUBLIC_BASE_URL": self.url, **env},  # the URL taps are signed for
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

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the master and its workers (/proc)."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        total = 0
        for each in [str(pid), *children]:
            try:
                fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / os.sysconf("SC_CLK_TCK")


def release_checkout(workdir: Path, rev: str) -> Path | None:
    """``rev`` of this repository, extracted with ``git archive`` (nothing of the working tree or
    the repository changes); None, with the reason printed, when git or the tag is missing."""
    if not rev:
        print("previous release: not measured (--release '')", flush=True)
        return None
    try:
        found = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        print(f"previous release: SKIPPED, git is not installed (cannot check out {rev})", flush=True)
        return None
    if found.returncode != 0:
        print(f"previous release: SKIPPED, {rev} is not in this clone's history (shallow clone?)", flush=True)
        return None
    target = workdir / rev
    target.mkdir()
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", found.stdout.strip()], stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, capture_output=True)
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        print(f"previous release: SKIPPED, git archive {rev} failed: {untar.stderr.decode()[-300:]}", flush=True)
        return None
    print(f"previous release: {rev} ({found.stdout.strip()[:7]}) extracted to {target}", flush=True)
    return target


# -- load -----------------------------------------------------------------------------------
@dataclass
class Run:
    kind: str  # see HEAVY and LIGHT
    round: int
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
    #: two businesses: business id -> (bookings in its index, conversations sent to it, bookings of another's phone)
    by_business: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: the app's CPU time (all its processes) per request, in ms: what a tap costs, whatever else ran
    cpu_ms: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def is_bot(self) -> bool:
        return not self.kind.startswith("baseline")


def wrk(binary: str, url: str, directory: Path, threads: int, kind: str, round_number: int) -> Run:
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
        round_number,
        values["requests"],
        (last - first) / 1e9,
        values["p50_us"] / 1000,
        values["p99_us"] / 1000,
        values["errors"] + values["status_errors"],
    )


def commandstats(client: redis.Redis) -> Counter[str]:
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()})


_FIELD = re.compile(r"\b(outcome|handler|round_trips)=(\S+)")


def _taps(text: str) -> list[tuple[str, str, int]]:
    """(outcome, handler, round trips) of each webhook log line, JSON (production) or plain."""
    found = []
    for line in text.splitlines():
        if line.startswith("{") and '"round_trips"' in line:
            entry = json.loads(line)
            found.append((entry["outcome"], entry.get("handler") or "-", int(entry["round_trips"])))
        elif "round_trips=" in line:
            values = dict(_FIELD.findall(line))
            if "round_trips" in values and "outcome" in values:
                found.append((values["outcome"], values.get("handler", "-"), int(values["round_trips"])))
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


def post(url: str, tap: Tap) -> None:
    request = urllib.request.Request(
        url + "/webhook", data=urlencode(tap.form).encode(), headers={"X-Twilio-Signature": tap.signature}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


# -- data -----------------------------------------------------------------------------------
@dataclass
class Memory:
    per_session: float  # used_memory per active session (session hash, profile, answered messages)
    per_reply: float  # used_memory per reply record
    by_step: list[str]  # MEMORY USAGE of the session hash (+ answered set + profile) after tap 1..6
    session_only: float = 0.0  # MEMORY USAGE of the session hash alone, mean over the six steps
    per_answered: float = 0.0  # bytes the answered set grows by per message


Sample = list[tuple[str, bytes, int]]  # the keys of one phone (or one message): (kind, DUMP, PTTL)


def _clone(client: redis.Redis, samples: list[Sample], count: int, key_of: Callable[[str, int], str]) -> float:
    """``count`` copies of the samples' keys under the names ``key_of(kind, copy)`` (DUMP/RESTORE keeps
    encoding and TTL); returns the used_memory delta per copy."""
    before = client.info("memory")["used_memory"]
    pipe = client.pipeline(transaction=False)
    for index in range(count):
        for kind, dumped, ttl in samples[index % len(samples)]:
            pipe.restore(key_of(kind, index), max(ttl, 0), dumped, replace=True)
        if index % BATCH == BATCH - 1:
            pipe.execute()
    pipe.execute()
    return (client.info("memory")["used_memory"] - before) / count


def fill_sessions(client: redis.Redis, plan: ConversationPlan, bot: Gunicorn, keys: BusinessKeys) -> Memory:
    """100,000 active sessions, copies of real ones, and what they and the reply records cost.

    Six sample phones talk to the running bot, each stopping after a different tap of the
    conversation (1 to 6); the session, answered messages and profile each one left are copied under 100,000 other
    phones, an even mix of the six steps. Reply records are measured apart (10,000 copies of the
    last reply record of each sample, then deleted): they live DEDUPE_TTL_SECONDS after each tap,
    not as long as the session.
    """
    states: list[Sample] = []
    replies: list[Sample] = []
    by_step = []
    session_sizes: list[int] = []
    answered_sizes: list[int] = []  # after 1 to 6 messages
    for taps in range(1, 7):
        number = phone(9_000_000 + taps)
        conversation = plan.conversation(number, taps)[:taps]
        for tap in conversation:
            post(bot.url, tap)
        named = (
            ("session", keys.session(number)),
            ("answered", keys.answered(number)),
            ("profile", keys.profile(number)),
        )
        state = [(kind, key) for kind, key in named if client.exists(key)]
        by_step.append("+".join(str(client.memory_usage(key)) for _, key in state))
        session_sizes.append(int(client.memory_usage(keys.session(number)) or 0))
        answered_sizes.append(int(client.memory_usage(keys.answered(number)) or 0))
        states.append([(kind, client.dump(key), client.pttl(key)) for kind, key in state])  # type: ignore[misc]
        record = keys.message(conversation[-1].form["MessageSid"])
        replies.append([("message", client.dump(record), client.pttl(record))])  # type: ignore[list-item]

    def reply_key(kind: str, index: int) -> str:
        return keys.message(f"SM{index:032x}")  # as long as a real MessageSid

    def state_key(kind: str, index: int) -> str:
        number = phone(8_000_000 + index)
        return {"session": keys.session, "answered": keys.answered, "profile": keys.profile}[kind](number)

    per_reply = _clone(client, replies, REPLY_COPIES, reply_key)
    for start in range(0, REPLY_COPIES, BATCH):
        client.delete(*(reply_key("message", index) for index in range(start, min(start + BATCH, REPLY_COPIES))))
    per_session = _clone(client, states, LARGE_SESSIONS, state_key)
    per_answered = (answered_sizes[-1] - answered_sizes[0]) / (len(answered_sizes) - 1)
    return Memory(per_session, per_reply, by_step, statistics.mean(session_sizes), per_answered)


def _ref(index: int) -> str:
    """A distinct REF per index (six letters of REF_ALPHABET)."""
    return "".join(REF_ALPHABET[(index // len(REF_ALPHABET) ** k) % len(REF_ALPHABET)] for k in range(6))


def fill_bookings(client: redis.Redis, catalog: Catalog, keys: BusinessKeys, now: datetime) -> None:
    """50,000 confirmed bookings over days 1 to 14, spread evenly over services, days and times (at
    most 50 of a service's 64 places at any time), two per customer, by the booking code itself: each
    ``book_request`` is encoded by ``BookingStore.encode`` and applied by ``bot/lua/write.lua`` (what
    ``BookingStore.write`` does, but pipelined): one counted occupancy entry per interval, the booking
    hash (with ``occ`` and ``resource``), the customer's and the business's indexes, the from-hold
    marker. Every write must come back ``ok``."""
    business = catalog.business
    store = BookingStore(client, keys, Scripts(client))
    today = local_today(business, now)
    days = [today + timedelta(days=n) for n in range(1, business.horizon_days + 1)]
    services = catalog.services
    starts = {(s.id, d): day_starts(business, s, d, now) for s in services for d in days}
    pipe = client.pipeline(transaction=False)
    refused: Counter[str] = Counter()

    def flush() -> None:
        for reply in pipe.execute():
            if reply[0] != b"ok":
                refused[reply[2].decode()] += 1

    for index in range(LARGE_BOOKINGS):
        service = services[index % len(services)]
        day = days[(index // len(services)) % len(days)]
        choices = starts[(service.id, day)]
        start = choices[(index // (len(services) * len(days))) % len(choices)]
        request = book_request(
            business,
            service,
            start,
            token=hold_token(f"bench-{index}"),
            ref=_ref(index),
            phone=f"+1557{index // 2:07d}",
            name="Bench",
            language="en",
            now=now,
        )
        key_list = KeyList([])
        plan = {"ops": [store.encode(request, key_list)], "adopt": [list(p) for p in key_list.adopt]}
        store.scripts.write(keys=key_list.keys, args=[json.dumps(plan, ensure_ascii=False)], client=pipe)
        if index % BATCH == BATCH - 1:
            flush()
    flush()
    if refused:
        sys.exit(f"filling the large data set: bookings refused by the booking script: {dict(refused)}")


# -- the runs -------------------------------------------------------------------------------
def schedule(rounds: int, with_release: bool) -> list[tuple[int, str]]:
    """(round, kind) of every run: each round the heavy runs, rotated, then the light ones."""
    heavy = [k for k in HEAVY if with_release or APP[k] != "release-1"]
    light = [k for k in LIGHT if with_release or APP[k] != "release-1"]
    runs = []
    for round_number in range(rounds):
        shift = round_number % len(heavy)
        light_shift = round_number % len(light)
        runs += [(round_number, kind) for kind in heavy[shift:] + heavy[:shift]]
        runs += [(round_number, kind) for kind in light[light_shift:] + light[:light_shift]]
    return runs


def write_release_runs(release: Path, workdir: Path, spec: dict[str, object]) -> None:
    """The release-1 runs' request files, made by release 1's own bench/conversations.py."""
    path = workdir / "release-taps.json"
    path.write_text(json.dumps(spec))
    env = {**clean_environment(), "PYTHONPATH": str(release)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "taps.py"), str(path)], cwd=release, env=env, capture_output=True
    )
    if done.returncode != 0:
        sys.exit(f"release 1's conversations could not be made:\n{done.stderr.decode()[-3000:]}")


def count_two(client: redis.Redis, directory: Path, run: Run) -> None:
    """Each business's bookings: how many its index holds, and how many belong to a phone that wrote
    to the other number (must be none)."""
    phones = json.loads((directory / "phones.json").read_text())
    for (business_id, _), own in zip(TWO_CLINICS, phones, strict=True):
        keys = BusinessKeys(PREFIX, business_id)
        refs = client.zrange(keys.bookings, 0, -1)
        pipe = client.pipeline(transaction=False)
        for ref in refs:
            pipe.hget(keys.booking(ref.decode()), "phone")
        owners = [value.decode() if value else "" for value in pipe.execute()] if refs else []
        mine = set(own)
        run.by_business[business_id] = (len(refs), len(own), sum(owner not in mine for owner in owners))
    run.bookings = sum(found for found, _, _ in run.by_business.values())


# -- report ---------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine(load: float) -> str:
    """The CPU, the system, and the load average before the benchmark started anything."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} × {model}, {platform.system()} {platform.release()}, load average {load:.2f} at start"


def _steps(runs: list[Run]) -> str:
    """Round trips by handler: the median, and the most when it differs."""
    by_handler: dict[str, list[int]] = {}
    for r in runs:
        for handler, values in r.trips_by_handler.items():
            by_handler.setdefault(handler, []).extend(values)
    parts = []
    for handler, values in by_handler.items():
        most = max(values)
        parts.append(f"{handler} {median(values):g}" + (f" (max {most})" if most != median(values) else ""))
    return ", ".join(parts) or "n/a"


def _commands(runs: list[Run]) -> tuple[float, str]:
    taps = sum(r.requests for r in runs)
    commands = sum((r.commands for r in runs), Counter())
    if not taps:
        return float("nan"), ""
    top = ", ".join(f"{name} {calls / taps:.2f}" for name, calls in commands.most_common(8))
    return sum(commands.values()) / taps, top


def report(
    runs: list[Run],
    memory: Memory,
    args: argparse.Namespace,
    started: datetime,
    total: float,
    release: str | None,
    load: float,
) -> str:
    kinds = (*HEAVY, *LIGHT)
    by_kind = {kind: [r for r in runs if r.kind == kind] for kind in kinds}
    rate = {kind: median([r.rate for r in rs]) for kind, rs in by_kind.items()}
    p50 = {kind: median([r.p50_ms for r in rs]) for kind, rs in by_kind.items()}
    p99 = {kind: median([r.p99_ms for r in rs]) for kind, rs in by_kind.items()}
    cpu = {kind: median([r.cpu_ms for r in rs]) for kind, rs in by_kind.items()}
    measured_release = bool(by_kind["release-1"])

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    def paired(kind: str, against: str) -> str:
        """This run's rate over the other's in the same round, each round."""
        ratios = []
        for r in by_kind[kind]:
            other = [o for o in by_kind[against] if o.round == r.round]
            if other:
                ratios.append(r.rate / other[0].rate)
        return ", ".join(f"{x:.2f}" for x in ratios) + (f" (median {median(ratios):.2f})" if len(ratios) > 1 else "")

    def against_release(kind: str) -> str:
        return f"{rate[kind] / rate['release-1']:.2f}" if measured_release else "n/a"

    # -- throughput and latency, one row per app
    main_rows = [
        f"| {LABEL[kind]} | {rate[kind]:.0f} | {p50[kind]:.1f} / {p99[kind]:.1f} | "
        + (against_release(kind) if kind != "baseline" else "n/a")
        + f" | {rate[kind] / rate['baseline']:.2f} |"
        for kind in ("release-1", "one", "two", "large", "baseline")
        if by_kind[kind]
    ]
    if not measured_release:
        main_rows.insert(0, f"| {LABEL['release-1']} | not measured ({release or 'no tag'}) | | | |")

    trips = {kind: [t for r in by_kind[kind] for t in r.round_trips] for kind in ("release-1", "one", "two")}
    commands = {kind: _commands(by_kind[kind]) for kind in ("release-1", "one", "two")}
    two_checks = []
    for r in by_kind["two"]:
        two_checks.append(
            "; ".join(
                f"{b} {found}/{sent}" + (f" ({foreign} of another's phones)" if foreign else "")
                for b, (found, sent, foreign) in r.by_business.items()
            )
        )
    two_ok = all(
        found == sent and not foreign for r in by_kind["two"] for found, sent, foreign in r.by_business.values()
    )

    def sent(r: Run) -> int:
        return args.conversations // 6 if r.kind.endswith("-light") else args.conversations

    incomplete = [
        f"{r.round + 1}: {r.kind} {r.bookings}/{sent(r)}"
        for r in runs
        if r.is_bot and (r.bookings != sent(r) or set(r.outcomes) != {"ok"} or r.errors)
    ]
    one_ratio = rate["one"] / rate["release-1"] if measured_release else float("nan")
    two_ratio = rate["two"] / rate["release-1"] if measured_release else float("nan")
    rows = [
        ("This release / release-1 taps/s, one business", f"{one_ratio:.2f}",
         f"≥ 1.0: {verdict(one_ratio >= 1.0)}; per round {paired('one', 'release-1')}" if measured_release
         else "release-1 not measured"),
        ("This release / release-1 taps/s, two businesses", f"{two_ratio:.2f}",
         f"≥ 1.0: {verdict(two_ratio >= 1.0)}; per round {paired('two', 'release-1')}" if measured_release
         else "release-1 not measured"),
        ("Two businesses / one business taps/s", f"{rate['two'] / rate['one']:.2f}",
         f"per round {paired('two', 'one')}"),
        ("The app's CPU per tap (ms, all its processes, median over the rounds)",
         f"this release {cpu['one']:.2f}, two businesses {cpu['two']:.2f}, large data set {cpu['large']:.2f}",
         (f"release-1 {cpu['release-1']:.2f}: this release / release-1 = {cpu['one'] / cpu['release-1']:.2f} "
          f"({verdict(cpu['one'] <= cpu['release-1'])} ≤ 1.0; what a tap costs, the least moved by the machine's "
          f"other load); baseline {cpu['baseline']:.2f}" if measured_release
          else f"baseline {cpu['baseline']:.2f}")),
        ("Two businesses: bookings in each business's index / conversations sent to its number",
         " · ".join(dict.fromkeys(two_checks)) or "n/a",
         f"every run exactly its own (none of the other's phones): {verdict(two_ok)}"),
        ("Conversations that ended in a booking", "all" if not incomplete else "not all: " + ", ".join(incomplete),
         f"every tap answered 200 and ok, every conversation booked, in every run of every bot: "
         f"{verdict(not incomplete)}"),
        ("This release / baseline taps/s, one business", f"{rate['one'] / rate['baseline']:.2f}",
         f"≥ 0.5: {verdict(rate['one'] >= 0.5 * rate['baseline'])}"),
        ("This release p99 / baseline p99, one business", f"{p99['one'] / p99['baseline']:.2f}",
         f"≤ 2: {verdict(p99['one'] <= 2 * p99['baseline'])}"),
        ("Service time, 2 connections: p50 / p99 (ms)",
         f"this release {p50['one-light']:.1f} / {p99['one-light']:.1f}",
         (f"release-1 {p50['release-1-light']:.1f} / {p99['release-1-light']:.1f}; " if measured_release else "")
         + f"baseline {p50['baseline-light']:.1f} / {p99['baseline-light']:.1f}"),
        ("Redis round trips per tap (median / max)",
         f"this release {median(trips['one']):g} / {max(trips['one'], default=0)}",
         f"≤ 2: {verdict(max(trips['one'], default=0) <= 2)}; two businesses {median(trips['two']):g} / "
         f"{max(trips['two'], default=0)}"
         + (f"; release-1 {median(trips['release-1']):g} / {max(trips['release-1'], default=0)}"
            if measured_release else "")),
        ("Round trips by step, this release (median)", _steps(by_kind["one"]), ""),
        ("Round trips by step, two businesses (median)", _steps(by_kind["two"]), ""),
        ("Round trips by step, release-1 (median)", _steps(by_kind["release-1"]) if measured_release else "n/a", ""),
        ("Redis commands per tap (mean), this release", f"{commands['one'][0]:.1f}", commands["one"][1]),
        ("Redis commands per tap (mean), two businesses", f"{commands['two'][0]:.1f}", commands["two"][1]),
        ("Redis commands per tap (mean), release-1",
         f"{commands['release-1'][0]:.1f}" if measured_release else "n/a", commands["release-1"][1]),
        ("Redis memory per active customer: session, answered messages, profile (bytes)", f"{memory.per_session:.0f}",
         "MEMORY USAGE of the session hash + the answered set (+ profile) after taps 1-6: "
         + ", ".join(memory.by_step)
         + ("" if any(step.count("+") > 1 for step in memory.by_step) else " (no profile: no language was picked)")),
        ("Redis memory per active session (bytes)", f"{memory.session_only:.0f}",
         f"≤ 512: {verdict(memory.session_only <= 512)} (the session hash alone, mean of the six steps)"),
        ("Redis memory per answered message (bytes)", f"{memory.per_answered:.1f}",
         "kept 48 h, and the last 100 for 30 days after the customer's last message (replays change nothing)"),
        ("Redis memory per reply record (bytes)", f"{memory.per_reply:.0f}",
         "kept DEDUPE_TTL_SECONDS (60 s) after each tap, for Twilio's retries"),
        ("Baseline requests/s over the rounds (min – max)",
         f"{min(r.rate for r in by_kind['baseline']):.0f} – {max(r.rate for r in by_kind['baseline']):.0f}",
         "how much the rest of the machine moved the figures; compare per-round ratios rather than single runs"),
        ("Large data set / one business taps/s", f"{rate['large'] / rate['one']:.2f}",
         f"≥ 0.9: {verdict(rate['large'] >= 0.9 * rate['one'])}"),
    ]  # fmt: skip
    order = ", ".join(SHORT[k] for k in HEAVY)
    lines = [
        "# Benchmark results",
        "",
        f"`python bench/run.py --rounds {args.rounds} --conversations {args.conversations} "
        f"--connections {args.connections}`, {started:%Y-%m-%d %H:%M} UTC, {total:.0f} s in all.",
        f"Machine: {machine(load)}. gunicorn.conf.py defaults (cores + 1 workers × 4 threads) for every app.",
        f"Each run: {args.conversations} conversations × 6 taps over {args.connections} connections; medians of "
        f"{args.rounds} rounds (in alternation, the order rotating each round: {order}; then at light load, "
        f"{args.conversations // 6} conversations over {args.light_connections} connections: baseline, release-1, "
        "this release). Redis is flushed before every run of a bot. See the docstring of bench/run.py for "
        "what each app is and how it is measured.",
        "",
        "| Run | Taps/s (median) | p50 / p99 latency (ms) | / release-1 | / baseline |",
        "|---|---|---|---|---|",
        *main_rows,
        "",
        "| Measure | Value | Target / detail |",
        "|---|---|---|",
        *(f"| {name} | {value} | {detail} |" for name, value, detail in rows),
        "",
        "Every run, as measured (round: kind, requests/s, p50 ms, p99 ms, errors, the app's CPU per request, "
        "bookings made):",
        "",
        *(
            f"- {r.round + 1}: {r.kind}: {r.rate:.0f}/s, {r.p50_ms:.1f}, {r.p99_ms:.1f}, {r.errors} errors, "
            f"{r.cpu_ms:.2f} ms CPU/tap"
            + (f", {r.bookings} bookings" if r.is_bot else "")
            + (f", taps {dict(r.outcomes)}" if r.is_bot and set(r.outcomes) != {"ok"} else "")
            for r in runs
        ),
        "",
        'Ratios are of the medians, and the targets are judged on them; "per round" divides the runs of the '
        "same round (the fairest pairs when the machine's other load drifts). "
        "Round trips are each app's own per-tap count from its log line (the count "
        "tests/test_round_trips.py checks on the socket); release 1 counted the same way. Commands per tap are "
        "INFO commandstats deltas (commands inside scripts included) over that app's taps on an empty Redis. "
        "Memory: used_memory delta per DUMP/RESTORE copy of the keys real conversations left, with the "
        "default hash-max-listpack settings.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conversations", type=int, default=1200, help="per run (6 taps each)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (one thread each)")
    parser.add_argument("--light-connections", type=int, default=2, help="for the service-time runs")
    parser.add_argument("--release", default=RELEASE, help="the previous release's git revision ('' to skip)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, requests)")
    args = parser.parse_args()
    started, clock, load = datetime.now(UTC), time.monotonic(), load_average()
    wrk_binary = ensure_tool("wrk")
    workdir = Path(tempfile.mkdtemp(prefix="tapbook-bench-"))
    server = RedisServer(workdir / "redis")
    server.start()
    client = redis.Redis.from_url(server.url)
    token = secrets.token_hex(16)
    apps: dict[str, Gunicorn] = {}
    try:
        release = release_checkout(workdir, args.release)
        env = {
            "REDIS_URL": server.url,
            "TWILIO_AUTH_TOKEN": token,
            "REDIS_KEY_PREFIX": PREFIX,
            "SECRET_KEY": secrets.token_urlsafe(32),
        }
        folder = workdir / "two-businesses"
        two_files = two_clinics(folder)
        # every app starts on an empty Redis (this release looks for release 1's data once, at start-up)
        apps["one"] = Gunicorn("wsgi:app", workdir, {**env, "BOT_CATALOG": str(CLINIC)}, "one")
        apps["two"] = Gunicorn("wsgi:app", workdir, {**env, "BOT_CATALOG": str(folder)}, "two")
        apps["baseline"] = Gunicorn("bench.baseline:app", workdir, {}, "baseline")
        if release:
            apps["release-1"] = Gunicorn(
                "wsgi:app", workdir, {**env, "BOT_CATALOG": str(CLINIC)}, "release-1", code=release
            )
        clinic = load_catalog(CLINIC, languages=LANGUAGES)
        now = datetime.now(UTC)
        plan_one = ConversationPlan(clinic, token=token, url=apps["one"].url + "/webhook", now=now)
        plans_two = [
            ConversationPlan(load_catalog(path, languages=LANGUAGES), token=token, url=apps["two"].url + "/webhook",
                             now=now)
            for path in two_files
        ]  # fmt: skip
        runs_planned = schedule(args.rounds, release is not None)
        print(f"generating {len(runs_planned)} runs of signed conversations…", flush=True)
        directories, connections = {}, {}
        release_runs = []
        for index, (_, kind) in enumerate(runs_planned):
            light = kind.endswith("-light")
            connections[index] = args.light_connections if light else args.connections
            count = args.conversations // 6 if light else args.conversations
            directories[index] = workdir / f"run-{index}"
            target = apps[APP[kind]]
            where = {"first_phone": index * 100_000, "count": count, "threads": connections[index]}
            if APP[kind] == "release-1":
                release_runs.append({"directory": str(directories[index]), **where})
            else:
                plans = plans_two if kind == "two" else [plan_one]
                write_run(directories[index], plans, host=target.host, **where)  # type: ignore[arg-type]
        warm_ups = {}
        for offset, name in enumerate(apps):  # a sixth of a run per app, phones of no run
            warm_ups[name] = workdir / f"warm-up-{name}"
            where = {"first_phone": (len(runs_planned) + offset) * 100_000, "count": max(args.conversations // 6, 20),
                     "threads": args.connections}  # fmt: skip
            if name == "release-1":
                release_runs.append({"directory": str(warm_ups[name]), **where})
            else:
                write_run(warm_ups[name], plans_two if name == "two" else [plan_one], host=apps[name].host, **where)
        if release and release_runs:
            write_release_runs(
                release,
                workdir,
                {"token": token, "url": apps["release-1"].url + "/webhook", "host": apps["release-1"].host,
                 "now": now.isoformat(), "catalogs": [str(CLINIC)], "runs": release_runs},
            )  # fmt: skip
        print("warming up every app (not measured)…", flush=True)
        for name, directory in warm_ups.items():
            wrk(wrk_binary, apps[name].url, directory, args.connections, f"warm-up {name}", -1)
        keys_one = BusinessKeys(PREFIX, clinic.business.id)
        bookings_of = {"one": keys_one.bookings, "release-1": LegacyKeys(PREFIX, clinic.business.id).bookings}
        runs: list[Run] = []
        memory: Memory | None = None
        for index, (round_number, kind) in enumerate(runs_planned):
            app = apps[APP[kind]]
            if not kind.startswith("baseline"):
                client.flushall()
                if kind == "large":
                    print("filling the large data set…", flush=True)
                    measured = fill_sessions(client, plan_one, app, keys_one)
                    memory = memory or measured
                    fill_bookings(client, clinic, keys_one, datetime.now(UTC))
                client.config_resetstat()
            offset = app.log.stat().st_size
            index_key = bookings_of.get(APP[kind])
            bookings_before = client.zcard(index_key) if index_key else 0
            cpu_before = app.cpu_seconds()
            run = wrk(wrk_binary, app.url, directories[index], connections[index], kind, round_number)
            run.cpu_ms = (app.cpu_seconds() - cpu_before) * 1000 / max(run.requests, 1)
            if run.is_bot:
                run.commands = commandstats(client)
                run.commands.pop("config", None)
                read_round_trips(app.log, offset, run)
                if kind == "two":
                    count_two(client, directories[index], run)
                elif index_key:
                    run.bookings = client.zcard(index_key) - bookings_before
            runs.append(run)
            print(
                f"round {round_number + 1} {kind:15}: {run.rate:7.0f}/s  p50 {run.p50_ms:6.1f} ms  "
                f"p99 {run.p99_ms:6.1f} ms  cpu {run.cpu_ms:4.2f} ms/tap  errors {run.errors}"
                + (f"  bookings {run.bookings}  taps {dict(run.outcomes)}" if run.is_bot else ""),
                flush=True,
            )
        assert memory is not None, "every round has a run on the large data set"
        text = report(runs, memory, args, started, time.monotonic() - clock, args.release if release else None, load)
        print()
        print(text)
        args.output.write_text(text)
        print(f"written to {args.output}")
    finally:
        for app in apps.values():
            app.stop()
        server.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

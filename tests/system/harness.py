"""The system suite's parts: gunicorn as a process, a signing Twilio stand-in, customers, figures.

Everything here talks to real processes: the app under gunicorn (several workers) and a
real redis-server. Customers reach the app only through signed HTTP requests.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import redis
from twilio.request_validator import RequestValidator

from bot.cli import twilio_form
from bot.config import Settings
from bot.keys import BusinessKeys

from ..conftest import SECRET_KEY
from ..whatsapp import Answer

ROOT = Path(__file__).resolve().parents[2]
#: two businesses on the one deployment (tests/system/catalogs/*.toml): "system" in English on its
#: number, "other" in Spanish on another, with the same service ids and hours
CATALOG = Path(__file__).with_name("catalogs")
TOKEN = "system-suite-token"
PREFIX = "system"
NUMBERS = {"system": "+15550000001", "other": "+15550000002"}
BK = f"{PREFIX}:{{system}}"


def keys(business: str = "system") -> BusinessKeys:
    return BusinessKeys(PREFIX, business)


SOCKET_TIMEOUT = 0.5  # REDIS_SOCKET_TIMEOUT and REDIS_CONNECT_TIMEOUT of the app under test
WORKERS = 3
POLITE = "Sorry, we're having trouble right now. Please try again in a minute."
BOOKED = "Booked! ✅"
REF = re.compile(r"Your booking reference: ([A-Z0-9]{6})")


# -- figures -----------------------------------------------------------------------------------
@dataclass
class Report:
    """What the suite did and found, printed at the end of the run for the closing note."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    requests: int = 0
    status_5xx: int = 0
    dropped: int = 0
    duplicates: int = 0
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: int) -> None:
        with self._lock:
            self.requests += 1
            self.status_5xx += status >= 500
            self.dropped += status == 0

    def add_duplicates(self, n: int) -> None:
        with self._lock:
            self.duplicates += n

    def scenario(self, name: str, **figures: Any) -> None:
        with self._lock:
            self.scenarios.setdefault(name, {}).update(figures)

    def finish(self) -> None:
        self.finished = time.monotonic()

    def show(self, terminalreporter: Any, title: str, saved_to: Path | None) -> None:
        """Print the figures at the end of the run (from a ``pytest_terminal_summary`` hook)."""
        terminalreporter.section(title)
        for line in self.lines():
            terminalreporter.write_line(line)
        if saved_to is not None:
            terminalreporter.write_line(f"(saved to {saved_to})")

    def lines(self) -> list[str]:
        wall = (self.finished or time.monotonic()) - self.started
        lines = [
            f"wall time {wall:.1f} s, start-up of redis-server and gunicorn included",
            f"HTTP requests sent {self.requests}, duplicates injected {self.duplicates}, "
            f"5xx answers {self.status_5xx}, connections dropped by killed workers {self.dropped}",
        ]
        for name, figures in self.scenarios.items():
            lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
        return lines


def collect_figures(config: Any, saved_to: Path, key: Any, file_key: Any) -> Iterator[Report]:
    """A session fixture's body: one Report for the run, kept in ``config.stash[key]`` for the summary
    hook and saved to ``saved_to`` at the end."""
    report = Report()
    config.stash[key] = report
    yield report
    saved_to.write_text("\n".join(report.lines()) + "\n")
    config.stash[file_key] = saved_to


# -- the app under gunicorn --------------------------------------------------------------------
class Gunicorn:
    """``gunicorn wsgi:app`` with our gunicorn.conf.py, in its own process group."""

    def __init__(self, workdir: Path, port: int, environ: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = port
        self.environ = environ
        self.worker_count = int(environ["WEB_CONCURRENCY"])
        self.log_path = workdir / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{self.port}", "wsgi:app"],
                cwd=self.workdir,
                env=self.environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: the finalizer stops master and workers together
            )
        deadline = time.monotonic() + 30
        while True:  # readiness poll of the server we just started, bounded
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as response:
                    if response.status == 200 and len(self.workers()) == self.worker_count:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start:\n" + self.log())
            time.sleep(0.1)

    def workers(self) -> list[int]:
        assert self.process is not None
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in children.split()]

    def wait_for_workers(self, timeout: float = 15) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(workers := self.workers()) != self.worker_count:  # the master respawns a killed one; bounded
            assert time.monotonic() < deadline, f"gunicorn has {len(workers)} workers, wanted {self.worker_count}"
            time.sleep(0.05)
        return workers

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_clean_log_since(self, offset: int) -> None:
        """What the app logged after ``offset``: no traceback, no apology for a bug, no whole phone number."""
        log = self.log()[offset:]
        assert "Traceback" not in log and "webhook failed" not in log, log[-4000:]
        assert not re.search(r"\+1555\d{5}", log), "a customer's phone number reached the log unmasked"

    def served_ms(self, sids: Iterable[str]) -> list[float]:
        """How long the app spent on each of these messages, from its one log line per tap
        (``sid=SM… ms=12.3`` in plain lines, ``"sid": "SM…", "ms": 12.3`` in JSON lines)."""
        spent = {}
        for line in self.log().splitlines():
            sid, ms = re.search(r"\bsid\W{1,4}(SM[0-9a-f]{32})", line), re.findall(r"\bms\W{1,4}([0-9.]+)", line)
            if sid and ms:
                spent[sid[1]] = float(ms[-1])
        return [spent[sid] for sid in sids]

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.process = None


def app_environment(
    redis_url: str, port: int, *, workers: int = WORKERS, socket_timeout: float = SOCKET_TIMEOUT
) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in Settings.keys() and k != "FLASK_DEBUG"}
    environ.update(
        PORT=str(port),
        WEB_CONCURRENCY=str(workers),
        GUNICORN_THREADS="4",
        REDIS_URL=redis_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",  # the URL Twilio (the tests) calls and signs
        SECRET_KEY=SECRET_KEY,
        REDIS_KEY_PREFIX=PREFIX,
        REDIS_SOCKET_TIMEOUT=str(socket_timeout),
        REDIS_CONNECT_TIMEOUT=str(socket_timeout),
        TWILIO_AUTH_TOKEN=TOKEN,
        BOT_CATALOG=str(CATALOG),
        PYTHONPATH=str(ROOT),
    )
    return environ


def worker_serving(server: Gunicorn, client_port: int) -> int | None:
    """The gunicorn worker holding the accepted end of our connection from ``client_port``."""
    local, remote = f"0100007F:{server.port:04X}", f"0100007F:{client_port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1] == local and parts[2] == remote:
            inode = parts[9]
    if inode is None:
        return None
    for pid in server.workers():
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    return None


# -- Twilio and the customers -------------------------------------------------------------------
@dataclass
class Reply:
    """One webhook delivery as Twilio saw it: status (0: connection dropped), body, text, options."""

    status: int
    body: bytes
    ms: float  # as Twilio waited: queueing in gunicorn included
    sent_at: float
    sid: str = ""
    text: str = ""
    options: list[str] = field(default_factory=list)

    def number(self, title: str) -> str:
        return str(self.options.index(title) + 1)


class Twilio:
    """Signs and posts webhooks as Twilio does; counts every request in the report."""

    def __init__(self, server: Gunicorn, report: Report) -> None:
        self.server = server
        self.report = report
        self.url = server.base_url + "/webhook"
        self.validator = RequestValidator(TOKEN)

    def deliver(self, form: dict[str, str], *, connection: http.client.HTTPConnection | None = None) -> Reply:
        data = urlencode(form)
        headers = {
            "X-Twilio-Signature": self.validator.compute_signature(self.url, form),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        conn = connection or http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=15)
        started = time.monotonic()
        try:
            conn.request("POST", "/webhook", body=data, headers=headers)
            response = conn.getresponse()
            status, body = response.status, response.read()
        except (ConnectionError, http.client.HTTPException):
            status, body = 0, b""  # the worker died under the request; Twilio would retry
        finally:
            conn.close()
        ms = (time.monotonic() - started) * 1000
        self.report.count(status)
        reply = Reply(status, body, ms, started, form.get("MessageSid", ""))
        if status == 200:
            answer = Answer.parse(status, body)
            reply.text, reply.options = answer.text, answer.options
        return reply

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.server.base_url + path, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code


class Customer:
    """One phone writing to one business's number. ``send`` types a message (a number, a title or a
    word); ``tap`` presses a button."""

    def __init__(self, twilio: Twilio, phone: str, name: str, business: str = "system") -> None:
        self.twilio = twilio
        self.phone = phone
        self.name = name
        self.business = business

    def form(self, text: str, **extra: str) -> dict[str, str]:
        return twilio_form(self.phone, text, name=self.name, To=f"whatsapp:{NUMBERS[self.business]}", **extra)

    def send(self, text: str) -> Reply:
        return self.twilio.deliver(self.form(text))

    def tap(self, button_id: str, title: str) -> Reply:
        return self.twilio.deliver(self.form(title, ButtonPayload=button_id, ButtonText=title, MessageType="button"))

    def to_days(self, service: str) -> Reply:
        """hi → Book → ``service``: the list of days."""
        menu = self.send("hi")
        assert menu.status == 200 and "Book" in menu.options, menu
        services = self.send("Book")
        return self.send(services.number(service))

    def to_summary(self, service: str, day: str, at: str) -> Reply:
        """From anywhere: hi → Book → service → ``day`` → ``at``: the held summary."""
        self.to_days(service)
        times = self.send(day)
        assert times.text.startswith(f"Which time on {day}?"), times.text
        return self.send(at)


def customers(twilio: Twilio, count: int, *, area: str, business: str = "system") -> list[Customer]:
    """``count`` distinct phones writing to ``business``; ``area`` keeps the scenarios' phones apart."""
    return [Customer(twilio, f"+1555{area}{i:04d}", f"C{area}{i}", business) for i in range(count)]


def in_parallel(items: Iterable[Any], work: Callable[[Any], Any], *, threads: int = 12) -> list[Any]:
    """``work`` over ``items`` on a bounded pool; results in order; the first error is raised."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(work, items, timeout=120))


# -- Redis, looked at afterwards ---------------------------------------------------------------
def bookings(db: redis.Redis, business: str = "system") -> list[dict[str, str]]:
    return [db.hgetall(key) for key in db.scan_iter(keys(business).booking("*"), count=1000)]


def holds(db: redis.Redis, business: str = "system") -> dict[str, int]:
    """Every hold entry in the day hashes: ``key/id`` -> its expiry (Redis ms)."""
    found = {}
    for key in db.scan_iter(f"{keys(business).base}:occ:*", count=1000):
        for entry, value in db.hgetall(key).items():
            expires = int(value.split(",")[2])
            if expires:
                found[f"{key}/{entry}"] = expires
    return found


def redis_ms(db: redis.Redis) -> int:
    seconds, micros = db.time()
    return seconds * 1000 + micros // 1000

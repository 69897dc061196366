"""The system suite's processes: one durable redis-server and the app under gunicorn, per run.

Both are started once for the suite (in their own process groups, stopped by the
finalizers) and shared by its scenarios; each scenario starts from an empty Redis. The
figures the scenarios collect are printed at the end of the run and saved to
``<pytest tmp dir>/system-report.txt``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ..conftest import need_redis_server
from ..redis_server import RedisServer, free_port
from .harness import Gunicorn, Report, Twilio, app_environment, collect_figures

REPORT = pytest.StashKey[Report]()
REPORT_FILE = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    saved_to = tmp_path_factory.getbasetemp() / "system-report.txt"
    yield from collect_figures(request.config, saved_to, REPORT, REPORT_FILE)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash.get(REPORT, None)
    if report is not None:
        report.show(terminalreporter, "tapbook system suite: figures", config.stash.get(REPORT_FILE, None))


@pytest.fixture(scope="session")
def durable_redis(report: Report, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server as production should run it: every write appended to disk."""
    need_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("system-redis"), "--appendonly", "yes")
    server.start()
    yield server
    server.resume()
    server.stop()


@pytest.fixture(scope="session")
def gunicorn(durable_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    port = free_port()
    server = Gunicorn(tmp_path_factory.mktemp("system-app"), port, app_environment(durable_redis.url, port))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class System:
    redis: RedisServer
    app: Gunicorn
    twilio: Twilio
    db: redis.Redis
    report: Report


@pytest.fixture
def system(durable_redis: RedisServer, gunicorn: Gunicorn, report: Report) -> Iterator[System]:
    """The running system with an empty Redis; afterwards, no traceback may be in the app's log."""
    if durable_redis.process is None:  # an earlier scenario failed while Redis was down
        durable_redis.start()
    durable_redis.resume()
    db = redis.Redis.from_url(durable_redis.url, decode_responses=True)
    db.flushall()
    gunicorn.wait_for_workers()
    log_from = len(gunicorn.log())
    yield System(durable_redis, gunicorn, Twilio(gunicorn, report), db, report)
    durable_redis.resume()
    db.close()
    report.finish()  # the last scenario's end is the suite's end
    gunicorn.assert_clean_log_since(log_from)

"""Fixtures: the app on fakeredis and on a real redis-server, and a signed test customer.

Tests that take ``backend`` run twice, ``[fake]`` and ``[real]``. The real server is
started on a free port when ``redis-server`` exists; otherwise those runs are skipped,
unless TAPBOOK_REQUIRE_REAL_REDIS=1 (as on CI), which turns the skip into a failure.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.connection
from flask import Flask

from bot import create_app, get_services
from bot.config import Settings
from bot.logs import formatter
from bot.outbox import Outbox
from bot.outbox.worker import Worker

from .catalogs import salon
from .redis_server import RedisServer
from .twilio_fake import FakeTwilio
from .twilio_server import TwilioServer
from .whatsapp import WhatsApp

TOKEN = "test-auth-token"
#: what a deployment sets as SECRET_KEY (required next to a real Redis)
SECRET_KEY = "test-secret-key-" + "k" * 32
NOW = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)  # Wed 14 Jan 2026, 10:00 in Madrid


class Clock:
    """The app's clock in tests: stands still until a test moves it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


REQUIRE_REAL = os.environ.get("TAPBOOK_REQUIRE_REAL_REDIS") == "1"


def need_redis_server() -> None:
    if RedisServer.binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if REQUIRE_REAL:
            pytest.fail(message + " but TAPBOOK_REQUIRE_REAL_REDIS=1")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the developer's shell or a .env in the checkout."""
    for key in [*Settings.keys(), "FLASK_DEBUG", "PROMETHEUS_MULTIPROC_DIR"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    need_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server this test alone may stop and restart."""
    need_redis_server()
    server = RedisServer(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["fake", "real"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings selecting the store: the embedded fakeredis, or the real server (flushed)."""
    if request.param == "fake":
        return {}
    server: RedisServer = request.getfixturevalue("redis_server")
    redis.Redis.from_url(server.url).flushdb()
    return {"REDIS_URL": server.url}


@pytest.fixture
def client(backend: dict[str, Any]) -> Iterator[redis.Redis]:
    """A bare client of the backend's store, for tests of the storage layer alone."""
    if "REDIS_URL" in backend:
        client = redis.Redis.from_url(backend["REDIS_URL"], decode_responses=True)
    else:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


@contextmanager
def json_log(level: int = logging.INFO) -> Iterator[io.StringIO]:
    """What the bot's loggers write through the production (JSON) formatter, from ``level`` up."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    logger = logging.getLogger("bot")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The bot's INFO and higher lines, as production writes them (JSON)."""
    with json_log() as stream:
        yield stream


def app_config(**overrides: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_VALIDATE_SIGNATURE": True,
        "SECRET_KEY": SECRET_KEY,
        "WEBHOOK_HOSTS": "bot.example.com",  # the host tests.whatsapp signs for, as a deployment names its own
        "CLOCK": Clock(),
        "CATALOG": salon(),
        **overrides,
    }


@pytest.fixture
def clock() -> Clock:
    """The app's clock, at NOW until the test moves it."""
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeTwilio:
    """Twilio's side of the network edge: the Content API and Messages the app calls (on the test's clock)."""
    return FakeTwilio(clock=clock)


@pytest.fixture
def twilio_server() -> Iterator[TwilioServer]:
    """Twilio's REST API over HTTP on a free loopback port, for ``TWILIO_API_URL=twilio_server.url``
    (in-process apps and the app's own processes alike); a request the bot never makes fails the test."""
    with TwilioServer() as server:
        yield server
    assert not server.surprises, server.surprises


@pytest.fixture
def outbox(app: Flask) -> Outbox:
    """The test business's outbox (Content API apps)."""
    return get_services(app).outboxes["test"]


@pytest.fixture
def worker(app: Flask) -> Worker:
    """An outbox worker of ``app`` with its templates synced to the fake Twilio."""
    from .content_phone import synced_worker  # it builds on this module

    return synced_worker(app)


@pytest.fixture
def app(backend: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_config(**backend))
    yield app
    get_services(app).redis.close()


@pytest.fixture
def db(app: Flask) -> redis.Redis:
    """The Redis the app uses, for looking at what it stored."""
    return get_services(app).redis


@pytest.fixture
def wa(app: Flask) -> WhatsApp:
    return WhatsApp(app.test_client(), TOKEN)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records each packed request sent (a pipeline is one), without changing what is sent."""
    sent: list[object] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def recording(self, command, check_health=True):  # type: ignore[no-untyped-def]
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", recording)
    return sent

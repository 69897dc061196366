"""At start-up the app warns when the real Redis it connects to could lose bookings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot import create_app, get_services
from bot.durability import durability_problems

from .conftest import TOKEN, app_config, need_redis_server
from .redis_server import RedisServer, free_port
from .whatsapp import WhatsApp

EVICTION = "maxmemory-policy is"
NO_DISK = "appendonly is no and there are no save points"


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Start a redis-server with the given settings (on top of RedisServer's: no save points, no AOF)."""
    need_redis_server()
    servers: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", *args)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def start_up_warnings(caplog: pytest.LogCaptureFixture, redis_url: str) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bot"):
        app = create_app(app_config(REDIS_URL=redis_url))
    get_services(app).redis.close()
    return [r.getMessage() for r in caplog.records if r.name == "bot.durability" and r.levelno == logging.WARNING]


def test_production_settings_start_silently(start_server, caplog: pytest.LogCaptureFixture) -> None:
    server = start_server("--appendonly", "yes", "--maxmemory-policy", "noeviction")
    assert start_up_warnings(caplog, server.url) == []


def test_snapshots_alone_count_as_keeping_something_on_disk(start_server, caplog: pytest.LogCaptureFixture) -> None:
    server = start_server("--save", "900 1")
    assert start_up_warnings(caplog, server.url) == []


def test_nothing_on_disk_is_warned_about(start_server, caplog: pytest.LogCaptureFixture) -> None:
    server = start_server()
    (warning,) = start_up_warnings(caplog, server.url)
    assert warning == (
        "Redis may lose bookings: appendonly is no and there are no save points: "
        "a restart loses every booking; set appendonly yes"
    )


def test_an_evicting_policy_is_warned_about(start_server, caplog: pytest.LogCaptureFixture) -> None:
    server = start_server("--appendonly", "yes", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    (warning,) = start_up_warnings(caplog, server.url)
    assert warning.startswith("Redis may lose bookings: maxmemory-policy is allkeys-lru (maxmemory 67108864)")
    assert warning.endswith("set maxmemory-policy noeviction")


def test_a_renamed_config_command_keeps_start_up_silent(start_server, caplog: pytest.LogCaptureFixture) -> None:
    server = start_server("--rename-command", "CONFIG", "")  # as managed services do
    with pytest.raises(redis.ResponseError):
        redis.Redis(port=server.port).config_get("appendonly")
    assert start_up_warnings(caplog, server.url) == []


def test_an_unreachable_redis_does_not_stop_start_up(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    assert start_up_warnings(caplog, url) == []


def test_the_check_runs_once_at_start_up_never_on_a_tap(start_server) -> None:
    server = start_server("--appendonly", "yes")
    app = create_app(app_config(REDIS_URL=server.url))
    assert WhatsApp(app.test_client(), TOKEN).send("hi").status == 200
    get_services(app).redis.close()
    stats = redis.Redis(port=server.port, decode_responses=True).info("commandstats")
    calls = (stats.get("cmdstat_config|get") or stats["cmdstat_config"])["calls"]  # Redis 7 / Redis 6
    assert calls == 4  # four names in one pipelined round trip


@pytest.mark.parametrize(
    ("config", "problems"),
    [
        ({"maxmemory-policy": "noeviction", "appendonly": "yes", "save": ""}, 0),
        ({"maxmemory-policy": "volatile-lru", "appendonly": "yes", "save": ""}, 1),
        ({"maxmemory-policy": "allkeys-lfu", "appendonly": "no", "save": ""}, 2),
        ({"maxmemory-policy": "noeviction", "appendonly": "no", "save": "3600 1 300 100"}, 0),
        ({}, 0),  # nothing readable: nothing to say
    ],
)
def test_which_settings_put_bookings_at_risk(config: dict[str, str], problems: int) -> None:
    assert len(durability_problems(config)) == problems

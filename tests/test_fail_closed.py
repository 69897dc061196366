"""Next to a real Redis the webhook fails closed (issue 13, item 1).

Unchecked signatures (``TWILIO_VALIDATE_SIGNATURE=false``, or ``auto`` in Flask debug or
testing mode) stop start-up with one line instead of answering unsigned requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.errors import ConfigError

from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .servers import ROOT
from .whatsapp import WhatsApp

PUBLIC = "https://bot.example.com"


def real_app(server: RedisServer, **settings: Any) -> Flask:
    redis.Redis.from_url(server.url).flushdb()
    return create_app(app_config(REDIS_URL=server.url, **settings))


# -- 1. signature checks cannot be off next to a real Redis ---------------------------------------
OFF = {
    "explicitly": {"TWILIO_VALIDATE_SIGNATURE": "false"},
    "auto in testing mode": {"TWILIO_VALIDATE_SIGNATURE": "auto"},  # app_config sets TESTING=True
    "auto in debug mode": {"TWILIO_VALIDATE_SIGNATURE": "auto", "TESTING": False, "DEBUG": True},
}
REAL_REDIS = {
    "server": {},  # REDIS_URL of the test server, filled in below
    "cluster": {"REDIS_CLUSTER_NODES": "127.0.0.1:7000"},
    "sentinel": {"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_SERVICE": "mymaster"},
}


@pytest.mark.parametrize("mode", REAL_REDIS)
@pytest.mark.parametrize("off", OFF)
def test_unchecked_signatures_next_to_a_real_redis_stop_start_up(
    redis_server: RedisServer, off: str, mode: str
) -> None:
    store = REAL_REDIS[mode] or {"REDIS_URL": redis_server.url}
    config = app_config(PUBLIC_BASE_URL=PUBLIC, **store, **OFF[off])
    try:
        app = create_app(config)
    except ConfigError as refused:
        assert refused.setting == "TWILIO_VALIDATE_SIGNATURE"
        assert "refused next to a real Redis" in str(refused) and "\n" not in str(refused)
        return
    # what used to happen: it started, and an unsigned request acted
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.post(wa.form("hi"), signature="").status == 200
    pytest.fail("started with signature checks off next to a real Redis")


def test_flask_debug_in_the_environment_stops_a_real_deployment(redis_server: RedisServer, tmp_path: Path) -> None:
    """As gunicorn imports wsgi.py with ``FLASK_DEBUG=1`` left in the environment: one line, exit 1."""
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TWILIO_VALIDATE_SIGNATURE")}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=tmp_path,
        env={
            **environ,
            "PYTHONPATH": str(ROOT),
            "FLASK_DEBUG": "1",
            "REDIS_URL": redis_server.url,
            "TWILIO_AUTH_TOKEN": "start-up-token",
            "PUBLIC_BASE_URL": PUBLIC,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("tapbook: invalid configuration: TWILIO_VALIDATE_SIGNATURE: auto turns checks off in Flask")


def test_debug_mode_with_checks_on_may_use_a_real_redis(redis_server: RedisServer) -> None:
    app = real_app(redis_server, TESTING=False, DEBUG=True, TWILIO_VALIDATE_SIGNATURE="true", PUBLIC_BASE_URL=PUBLIC)
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.post(wa.form("hi"), signature="").status == 403
    assert wa.send("hi").status == 200
    get_services(app).redis.close()

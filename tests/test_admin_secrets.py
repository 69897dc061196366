"""The owner's page keeps its secrets (issue 13, item 4).

Before, the page's cancel tokens and the notice in its redirect URL were signed with the admin
password: every leaked page or URL let anyone test password guesses offline. Now tokens are signed
with ``SECRET_KEY`` (salted per business), the notice is a flashed message in the session cookie,
and a real Redis without ``SECRET_KEY`` stops start-up with one line.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from bot import create_app
from bot.errors import ConfigError

from .bookings import book
from .conftest import SECRET_KEY, TOKEN, Clock, app_config
from .redis_server import RedisServer
from .servers import ROOT
from .test_businesses import NORTH, two, writing_to
from .whatsapp import WhatsApp

PASSWORD = "owner-secret"
HERE = "203.0.113.7"


@pytest.fixture
def app(backend: dict[str, Any]) -> Flask:
    return create_app(app_config(ADMIN_PASSWORD=PASSWORD, **backend))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def visit(app: Flask, password: str | None, address: str = HERE, user: str = "owner", **headers: str) -> Any:
    """``GET /admin`` from ``address``: with basic auth (``password``), or without any credentials (None)."""
    if password is not None:
        headers["Authorization"] = basic(user, password)
    return app.test_client().get("/admin", headers=headers, environ_base={"REMOTE_ADDR": address})


def owner_of(app: Flask, user: str = "owner", password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = basic(user, password)
    return client


def cancel_tokens(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="ref" value="(\w+)">\s*<input type="hidden" name="token" value="([^"]+)"', html))


class AtTheAppsClock(TimestampSigner):
    """Signs as the page does, at the test clock's time (so only the key decides)."""

    def get_timestamp(self) -> int:
        return int(Clock().now.timestamp())


# -- tokens: no password oracle ------------------------------------------------------------------------
def test_a_leaked_cancel_token_cannot_test_password_guesses(app: Flask, wa: WhatsApp) -> None:
    ref = book(wa, at="12:00")
    token = cancel_tokens(owner_of(app).get("/admin").get_data(as_text=True))[ref]
    for guess in ("wrong-guess-1", "owner-secrex", PASSWORD):  # the right password verifies nothing either
        for salt in ("tapbook-admin-cancel", "tapbook-admin-cancel:test"):
            with pytest.raises(BadSignature):
                URLSafeTimedSerializer(guess, salt=salt).loads(token)
    assert URLSafeTimedSerializer(SECRET_KEY, salt="tapbook-admin-cancel:test").loads(token) == ref


def test_a_token_forged_with_the_admin_password_is_refused(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    ref = book(wa, at="12:00")
    for salt in ("tapbook-admin-cancel", "tapbook-admin-cancel:test"):  # the old salt, and this business's
        forged = URLSafeTimedSerializer(PASSWORD, salt=salt, signer=AtTheAppsClock).dumps(ref)
        response = owner_of(app).post("/admin/cancel", data={"ref": ref, "token": forged})
        assert response.status_code == 400, salt
    assert db.hget(f"tapbook:{{test}}:booking:{ref}", "status") == "confirmed"


def test_a_token_of_one_business_is_void_at_another(backend: dict[str, Any]) -> None:
    """Even when both owners chose the same password, and with the same SECRET_KEY."""
    same = "the-same-long-password"
    app = create_app(app_config(CATALOG=two(), ADMIN_PASSWORD_NORTH=same, ADMIN_PASSWORD_SOUTH=same, **backend))
    north_ref = book(writing_to(app, NORTH), at="12:00")
    token = cancel_tokens(owner_of(app, "north", same).get("/admin").get_data(as_text=True))[north_ref]
    response = owner_of(app, "south", same).post("/admin/cancel", data={"ref": north_ref, "token": token})
    assert response.status_code == 400
    assert "reload it and try again" in response.get_data(as_text=True)
    assert (
        owner_of(app, "north", same).post("/admin/cancel", data={"ref": north_ref, "token": token}).status_code == 303
    )


# -- notices: flashed, not in the URL ------------------------------------------------------------------
def test_the_redirect_carries_no_notice_and_the_notice_shows_once(app: Flask, wa: WhatsApp) -> None:
    ref = book(wa, at="12:00")
    owner = owner_of(app)
    token = cancel_tokens(owner.get("/admin").get_data(as_text=True))[ref]
    response = owner.post("/admin/cancel", data={"ref": ref, "token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/admin"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("tapbook_admin=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # a plain-HTTP request: a Secure cookie would never come back
    assert f"Booking {ref} is cancelled." in owner.get("/admin").get_data(as_text=True)
    assert "is cancelled" not in owner.get("/admin").get_data(as_text=True)  # once
    assert "is cancelled" not in app.test_client().get("/admin", auth=("owner", PASSWORD)).get_data(as_text=True)


def test_over_https_the_cookie_is_secure(app: Flask, wa: WhatsApp) -> None:
    ref = book(wa, at="12:00")
    owner = owner_of(app)
    token = cancel_tokens(owner.get("/admin", base_url="https://bot.example.com").text)[ref]
    response = owner.post("/admin/cancel", data={"ref": ref, "token": token}, base_url="https://bot.example.com")
    assert response.headers["Location"] == "/admin"
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_notice_cookie_needs_the_secret_key(app: Flask) -> None:
    """A notice signed with the admin password (as the old links were) puts nothing on the page."""

    def cookie_signed_with(key: str) -> str:
        signer = Flask("forger")
        signer.secret_key = key
        serializer = SecureCookieSessionInterface().get_signing_serializer(signer)
        assert serializer is not None
        return serializer.dumps({"_flashes": [("message", "Booking FORGED is cancelled.")]})

    for key, shown in ((PASSWORD, False), (SECRET_KEY, True)):
        owner = owner_of(app)
        owner.set_cookie("tapbook_admin", cookie_signed_with(key), path="/admin")
        assert ("Booking FORGED is cancelled." in owner.get("/admin").get_data(as_text=True)) is shown, key


# -- SECRET_KEY ----------------------------------------------------------------------------------------
REAL_REDIS = {
    "server": {},  # REDIS_URL of the test server, filled in below
    "cluster": {"REDIS_CLUSTER_NODES": "127.0.0.1:7000"},
    "sentinel": {"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_SERVICE": "mymaster"},
}


@pytest.mark.parametrize("mode", REAL_REDIS)
def test_a_real_redis_without_secret_key_stops_start_up(redis_server: RedisServer, mode: str) -> None:
    store = REAL_REDIS[mode] or {"REDIS_URL": redis_server.url}
    with pytest.raises(ConfigError) as refused:
        create_app(app_config(SECRET_KEY=None, ADMIN_PASSWORD=PASSWORD, **store))
    assert refused.value.setting == "SECRET_KEY"
    assert "required next to a real Redis" in str(refused.value) and "\n" not in str(refused.value)


def test_a_short_secret_key_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY: must be at least 32 random characters"):
        create_app(app_config(SECRET_KEY="too-short-to-be-a-key"))


def test_gunicorn_without_secret_key_stops_with_one_line(redis_server: RedisServer, tmp_path: Path) -> None:
    """As gunicorn imports wsgi.py: exit status 1 and one line, no traceback."""
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SECRET_KEY")}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=tmp_path,
        env={
            **environ,
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": redis_server.url,
            "TWILIO_AUTH_TOKEN": "start-up-token",
            "PUBLIC_BASE_URL": "https://bot.example.com",
            "ADMIN_PASSWORD": PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("tapbook: invalid configuration: SECRET_KEY: required next to a real Redis")


def test_the_embedded_store_makes_a_random_key_per_process(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.admin"):
        one = create_app(app_config(SECRET_KEY=None, ADMIN_PASSWORD=PASSWORD))
        other = create_app(app_config(SECRET_KEY=None, ADMIN_PASSWORD=PASSWORD))
    keys = [one.secret_key, other.secret_key]
    assert all(isinstance(key, str) and len(key) >= 32 for key in keys) and keys[0] != keys[1]
    assert sum("SECRET_KEY is not set" in message for message in caplog.messages) == 2
    ana = WhatsApp(one.test_client(), TOKEN)
    ref = book(ana, at="12:00")
    token = cancel_tokens(owner_of(one).get("/admin").get_data(as_text=True))[ref]
    assert owner_of(one).post("/admin/cancel", data={"ref": ref, "token": token}).status_code == 303
    assert create_app(app_config(ADMIN_PASSWORD=PASSWORD)).secret_key == SECRET_KEY  # a set one is used

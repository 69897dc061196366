"""The owner's page keeps its secrets (issue 13, item 4).

Before, the page's cancel tokens and the notice in its redirect URL were signed with the admin
password: every leaked page or URL let anyone test password guesses offline, and guesses online
were unlimited and unlogged. Now tokens are signed with ``SECRET_KEY`` (salted per business), the
notice is a flashed message in the session cookie, failed logins are limited per client address
and per business (429 with ``Retry-After``), each failure is logged with the address masked, and a
real Redis without ``SECRET_KEY`` stops start-up with one line.
"""

from __future__ import annotations

import base64
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from flask_limiter import Limiter
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from bot import create_app, get_services
from bot.errors import ConfigError

from .bookings import book
from .conftest import SECRET_KEY, TOKEN, Clock, app_config
from .redis_server import RedisServer
from .servers import import_wsgi
from .test_businesses import NORTH, two, writing_to
from .whatsapp import WhatsApp

PASSWORD = "owner-secret"
HERE, THERE, ELSEWHERE = "203.0.113.7", "198.51.100.23", "192.0.2.200"
PER_ADDRESS, PER_BUSINESS = 10, 30


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
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/;" in cookie  # /admin, and /try for the owner
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


# -- failed logins: limited, logged --------------------------------------------------------------------
def test_failed_logins_from_one_address_get_429_with_retry_after(app: Flask) -> None:
    for _ in range(20):  # a browser asking first, without credentials: no guess, not counted
        assert visit(app, None).status_code == 401
    for attempt in range(PER_ADDRESS):
        assert visit(app, f"guess-number-{attempt}").status_code == 401, attempt
    refused = visit(app, "guess-number-x")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_data(as_text=True).startswith("Too many failed logins: try again in ")
    assert visit(app, PASSWORD).status_code == 429  # the right password is not checked either: no oracle
    assert visit(app, "guess-number-y", address=THERE).status_code == 401  # another address still may try
    assert visit(app, PASSWORD, address=THERE).status_code == 200


def test_failed_logins_for_one_business_are_limited_across_addresses(app: Flask) -> None:
    addresses = [f"198.51.100.{n}" for n in range(1, PER_BUSINESS // PER_ADDRESS + 1)]
    for address in addresses:
        for attempt in range(PER_ADDRESS):
            assert visit(app, f"guess-{attempt}", address=address).status_code == 401
    refused = visit(app, "guess-from-a-fresh-address", address=ELSEWHERE)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60


def test_successful_logins_are_not_limited(app: Flask) -> None:
    for _ in range(PER_BUSINESS + 10):
        assert visit(app, PASSWORD).status_code == 200
    for attempt in range(PER_ADDRESS):  # and they used none of the failures' budget
        assert visit(app, f"guess-{attempt}").status_code == 401
    assert visit(app, "one-too-many").status_code == 429


def test_an_ipv6_client_is_counted_by_its_64(app: Flask) -> None:
    for n in range(PER_ADDRESS):
        assert visit(app, "guess", address=f"2001:db8:85a3:8d3::{n + 1:x}").status_code == 401
    assert visit(app, "guess", address="2001:db8:85a3:8d3:ffff::1").status_code == 429  # same /64
    assert visit(app, "guess", address="2001:db8:85a3:8d4::1").status_code == 401  # the next /64


def forwarded_for(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def test_the_address_behind_a_proxy_comes_from_trusted_proxy_hops(backend: dict[str, Any]) -> None:
    proxy = "10.0.0.2"
    behind = create_app(app_config(ADMIN_PASSWORD=PASSWORD, TRUSTED_PROXY_HOPS=1, **backend))
    for n in range(PER_ADDRESS):  # one proxy, many clients: each counted on its own
        assert visit(behind, "guess", address=proxy, **forwarded_for(f"198.51.100.{n + 1}")).status_code == 401
    for _ in range(PER_ADDRESS):
        assert visit(behind, "guess", address=proxy, **forwarded_for(THERE)).status_code == 401
    assert visit(behind, "guess", address=proxy, **forwarded_for(THERE)).status_code == 429
    assert visit(behind, "guess", address=proxy, **forwarded_for(ELSEWHERE)).status_code == 401

    get_services(behind).redis.flushdb()  # the business's count starts again (the real store is shared)
    direct = create_app(app_config(ADMIN_PASSWORD=PASSWORD, **backend))  # no proxy trusted: the header is a lie
    for n in range(PER_ADDRESS):
        assert visit(direct, "guess", address=HERE, **forwarded_for(f"198.51.100.{n + 1}")).status_code == 401
    assert visit(direct, "guess", address=HERE, **forwarded_for(ELSEWHERE)).status_code == 429


def test_each_failure_is_logged_with_the_address_masked_and_never_the_password(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bot"):
        visit(app, "correct-horse-battery", address=HERE)
        visit(app, "correct-horse-battery", address="2001:db8:85a3:8d3:1319:8a2e:370:7348")
        visit(app, None)  # no credentials: not a failed login
        visit(app, PASSWORD)
    failures = [r for r in caplog.records if r.name == "bot.logins"]
    assert [(r.levelname, r.getMessage()) for r in failures] == [
        ("WARNING", "admin login failed: business test from 203.0.113.x"),
        ("WARNING", "admin login failed: business test from 2001:db8:85a3:x:x:x:x:x"),
    ]
    assert failures[0].fields == {"business": "test", "address": "203.0.113.x"}  # type: ignore[attr-defined]
    text = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "correct-horse-battery" not in text and PASSWORD not in text
    assert HERE not in text and "1319" not in text


def test_a_user_name_that_is_no_business_is_not_logged(
    backend: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """It may be a password typed in the wrong box; it counts against the address alone."""
    app = create_app(app_config(CATALOG=two(), ADMIN_PASSWORD_NORTH="north-owner-secret", **backend))
    with caplog.at_level(logging.WARNING, logger="bot.logins"):
        assert visit(app, "x", user="north-owner-secret").status_code == 401
        assert visit(app, "wrong", user="north").status_code == 401
    assert [r.getMessage() for r in caplog.records if r.name == "bot.logins"] == [
        "admin login failed: business unknown from 203.0.113.x",
        "admin login failed: business north from 203.0.113.x",
    ]
    assert "north-owner-secret" not in caplog.text


def test_only_the_owners_page_runs_the_limiter(backend: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Flask-Limiter hooks every request of an app; a tap must not pay for it."""
    checked: list[str] = []
    check = Limiter._check_request_limit

    def counting(self: Limiter, *args: Any, **kwargs: Any) -> None:
        checked.append(request.path)
        check(self, *args, **kwargs)

    monkeypatch.setattr(Limiter, "_check_request_limit", counting)
    app = create_app(app_config(ADMIN_PASSWORD=PASSWORD, **backend))
    assert WhatsApp(app.test_client(), TOKEN).send("hi").status == 200
    assert app.test_client().get("/healthz").status_code == 200
    assert visit(app, PASSWORD).status_code == 200
    assert checked == ["/admin"]


def test_every_instance_shares_the_count_in_redis(redis_server: RedisServer) -> None:
    """Two app instances (as two gunicorn workers or hosts) on one Redis: the limit is theirs together,
    and its keys carry REDIS_KEY_PREFIX."""
    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    db.flushdb()
    config = app_config(ADMIN_PASSWORD=PASSWORD, REDIS_URL=redis_server.url, REDIS_KEY_PREFIX="shop1")
    first, second = create_app(config), create_app(config)
    for attempt in range(PER_ADDRESS):
        assert visit((first, second)[attempt % 2], "guess").status_code == 401
    assert visit(first, "guess").status_code == 429
    assert visit(second, "guess").status_code == 429
    keys = sorted(db.scan_iter("*"))
    assert keys == [
        f"shop1:admin-logins:LIMITER/{HERE}/address/10/1/minute",
        "shop1:admin-logins:LIMITER/test/business/30/1/minute",
    ]
    assert 0 < db.ttl(keys[0]) <= 60
    for app in (first, second):
        get_services(app).redis.close()
    db.close()


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
    result = import_wsgi(
        tmp_path,
        drop=("SECRET_KEY",),
        REDIS_URL=redis_server.url,
        PUBLIC_BASE_URL="https://bot.example.com",
        ADMIN_PASSWORD=PASSWORD,
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

"""The owner's page, through Flask's test client: login, CSRF, listing, cancel, empty state."""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from bot import create_app, get_services
from bot.admin import _signer
from bot.errors import ConfigError

from .bookings import book, cancel
from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .whatsapp import WhatsApp

PASSWORD = "owner-secret"
BK = "tapbook:{test}"


@pytest.fixture
def app(backend: dict[str, Any]) -> Flask:
    return create_app(app_config(ADMIN_PASSWORD=PASSWORD, **backend))


@pytest.fixture
def owner(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"owner:{PASSWORD}".encode()).decode()
    return client


def cancel_forms(html: str) -> dict[str, str]:
    """REF → the signed token of its cancel button."""
    return dict(re.findall(r'name="ref" value="(\w+)">\s*<input type="hidden" name="token" value="([^"]+)"', html))


def test_off_without_a_password_and_start_up_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot"):
        app = create_app(app_config())
    assert "admin page is off: set ADMIN_PASSWORD to turn on /admin" in caplog.messages
    client = app.test_client()
    response = client.get("/admin", auth=("owner", ""))
    assert response.status_code == 404
    assert response.get_data(as_text=True) == "The admin page is off: set ADMIN_PASSWORD to turn it on.\n"
    assert client.post("/admin/cancel", data={"ref": "X"}).status_code == 404


def test_a_short_password_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD: must be at least 10 characters"):
        create_app(app_config(ADMIN_PASSWORD="secret"))


@pytest.mark.parametrize("auth", [None, ("owner", "wrong"), ("owner", ""), ("owner", PASSWORD + "x")])
def test_login_is_refused_without_the_password(app: Flask, auth: tuple[str, str] | None) -> None:
    response = app.test_client().get("/admin", auth=auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="tapbook admin", charset="UTF-8"'
    assert "Booking" not in response.get_data(as_text=True)


def test_empty_state(owner: FlaskClient) -> None:
    response = owner.get("/admin")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "No bookings today or in the coming days." in html
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Frame-Options"] == "DENY"


def test_bookings_by_day_with_a_cancel_button_for_the_active_ones(app: Flask, owner: FlaskClient, wa: WhatsApp) -> None:
    ana = book(wa, at="12:00")
    gone = book(wa, at="12:30")
    cancel(wa, "Wed 14 Jan 12:30")
    eve = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="<b>Eve</b>")
    later = book(eve, day="Thu 15 Jan", at="10:00")
    html = owner.get("/admin").get_data(as_text=True)
    assert html.index("<h2>Wed 14 Jan</h2>") < html.index(ana) < html.index("<h2>Thu 15 Jan</h2>") < html.index(later)
    assert "+34*****222" in html and "+34600111222" not in html
    assert "&lt;b&gt;Eve&lt;/b&gt;" in html and "<b>Eve</b>" not in html  # escaped
    assert re.search(rf'<li class="cancelled" id="booking-{gone}">', html)
    assert set(cancel_forms(html)) == {ana, later}  # no button for the cancelled one


def test_cancel_with_the_page_token(app: Flask, owner: FlaskClient, wa: WhatsApp, db: redis.Redis) -> None:
    ref = book(wa, at="12:00")
    token = cancel_forms(owner.get("/admin").get_data(as_text=True))[ref]
    response = owner.post("/admin/cancel", data={"ref": ref, "token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin"  # the outcome is a flashed message (test_admin_secrets.py)
    page = owner.get(response.headers["Location"]).get_data(as_text=True)
    assert (
        f"Booking {ref} is cancelled. The customer was not told (no message channel is set up): please tell them."
    ) in page
    assert db.hget(f"{BK}:booking:{ref}", "status") == "cancelled"
    assert get_services(app).stats.get("bookings.cancelled") == 1
    again = owner.post("/admin/cancel", data={"ref": ref, "token": token})  # a second click, or a replayed form
    assert f"Booking {ref} was not cancelled: it was already cancelled." in owner.get(again.headers["Location"]).text


def test_forged_or_stale_forms_are_refused(app: Flask, owner: FlaskClient, wa: WhatsApp, db: redis.Redis) -> None:
    ref = book(wa, at="12:00")
    other = book(wa, at="12:30")
    tokens = cancel_forms(owner.get("/admin").get_data(as_text=True))
    signed_elsewhere = create_app(app_config(ADMIN_PASSWORD=PASSWORD, SECRET_KEY="another-deployment-" + "x" * 32))
    with signed_elsewhere.test_request_context():
        foreign = _signer(signed_elsewhere.secret_key, "test").dumps(ref)
    for form in (
        {"ref": ref},
        {"ref": ref, "token": tokens[other]},
        {"ref": ref, "token": foreign},
        {"token": tokens[ref]},
    ):
        response = owner.post("/admin/cancel", data=form)
        assert response.status_code == 400, form
        assert "reload it and try again" in response.get_data(as_text=True)
    assert app.test_client().post("/admin/cancel", data={"ref": ref, "token": tokens[ref]}).status_code == 401
    get_services(app).clock.advance(hours=13)  # the page was left open overnight
    assert owner.post("/admin/cancel", data={"ref": ref, "token": tokens[ref]}).status_code == 400
    assert db.hget(f"{BK}:booking:{ref}", "status") == "confirmed"


def test_a_booking_that_has_started_cannot_be_cancelled(app: Flask, owner: FlaskClient, wa: WhatsApp) -> None:
    ref = book(wa, at="12:00")
    token = cancel_forms(owner.get("/admin").get_data(as_text=True))[ref]
    get_services(app).clock.advance(hours=2, minutes=5)  # 12:05 in Madrid
    assert ref not in cancel_forms(owner.get("/admin").get_data(as_text=True))
    response = owner.post("/admin/cancel", data={"ref": ref, "token": token})
    assert "has already started" in owner.get(response.headers["Location"]).text


def test_redis_down_is_a_clear_503(own_redis_server: RedisServer) -> None:
    app = create_app(app_config(ADMIN_PASSWORD=PASSWORD, REDIS_URL=own_redis_server.url))
    own_redis_server.stop()
    response = app.test_client().get("/admin", auth=("owner", PASSWORD))
    assert response.status_code == 503
    assert "cannot be reached right now" in response.get_data(as_text=True)


def test_a_crafted_link_cannot_put_words_on_the_owners_page(app: Flask, owner: FlaskClient, wa: WhatsApp) -> None:
    ref = book(wa, at="12:00")
    for query in (f"cancelled={ref}&told=1", f"refused={ref}&why=cancelled", "notice=forged.notice.value"):
        page = owner.get(f"/admin?{query}").get_data(as_text=True)
        assert "is cancelled" not in page and "was not cancelled" not in page

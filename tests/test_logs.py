"""One log line per webhook, JSON in production; never a full phone, a message body or a token."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from flask import Flask

from bot import create_app, get_services
from bot.logs import JsonFormatter, PlainFormatter, choose_format

from .bookings import book, cancel
from .conftest import SECRET_KEY, TOKEN, app_config
from .redis_server import RedisServer
from .servers import import_wsgi
from .whatsapp import BASE_URL, WhatsApp

PHONE = "+34600111222"
SECRET_BODY = "my door code is 4711"


def webhook_entries(stream: io.StringIO) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [entry for entry in entries if entry["logger"] == "bot.webhook"]


def test_one_json_line_per_webhook(app: Flask, wa: WhatsApp, json_lines: io.StringIO) -> None:
    wa.send("hi")
    wa.post(wa.form("hi"), signature="forged")
    wa.post({"MessageSid": "nope"})
    same = wa.form("menu")
    wa.post(same)
    wa.post(same)
    ok, forged, malformed, first, retry = webhook_entries(json_lines)
    assert ok["level"] == "INFO" and ok["msg"] == "tap ok"
    assert ok["from"] == "+34*****222"
    assert str(ok["sid"]).startswith("SM") and len(str(ok["request_id"])) == 32
    assert (ok["outcome"], ok["handler"], ok["round_trips"], ok["attempts"]) == ("ok", "go_menu", 2, 1)
    assert isinstance(ok["ms"], float) and ok["ms"] > 0
    assert (forged["level"], forged["outcome"]) == ("WARNING", "forged")
    assert forged["msg"] == "tap forged: wrong X-Twilio-Signature"
    assert forged["url"] == "https://bot.example.com/webhook"  # what was checked: no secret in it
    assert (malformed["outcome"], malformed["from"]) == ("malformed", "-")
    assert (retry["outcome"], retry["round_trips"], retry["sid"]) == ("duplicate", 1, first["sid"])


def test_an_oversized_body_is_one_malformed_line(app: Flask, wa: WhatsApp, json_lines: io.StringIO) -> None:
    response = app.test_client().post(
        "/webhook",
        base_url=BASE_URL,
        data=b"Body=" + b"x" * 200_000,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": wa.validator.compute_signature(BASE_URL + "/webhook", {})},
    )
    assert response.status_code == 413
    (entry,) = webhook_entries(json_lines)
    assert (entry["outcome"], entry["msg"]) == ("malformed", "tap malformed: 413 Request Entity Too Large")
    assert get_services(app).stats.get("taps.malformed") == 1


def test_the_request_id_of_the_proxy_is_kept(app: Flask, wa: WhatsApp, json_lines: io.StringIO) -> None:
    wa.post(wa.form("hi"), headers={"X-Request-Id": "req-42.abc"})
    wa.post(wa.form("hi"), headers={"X-Request-Id": "not a request id {}"})
    kept, replaced = webhook_entries(json_lines)
    assert kept["request_id"] == "req-42.abc"
    assert replaced["request_id"] != "not a request id {}" and len(str(replaced["request_id"])) == 32


def test_a_bug_is_one_error_line_with_its_traceback(app: Flask, wa: WhatsApp, json_lines, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"a bug while serving {PHONE}")

    monkeypatch.setattr(get_services(app).conversation, "reply_to", broken)
    wa.send("hi")
    (entry,) = webhook_entries(json_lines)
    assert (entry["level"], entry["outcome"], entry["msg"]) == (
        "ERROR",
        "error",
        "tap error: webhook failed: RuntimeError",
    )
    assert "RuntimeError: a bug while serving +34*****222" in str(entry["exc"])  # the safety net masks it


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every INFO-or-above record of every logger, through both formatters."""
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert records
    return "\n".join(f.format(r) for r in records for f in (PlainFormatter(), JsonFormatter()))


def test_no_phone_body_or_token_at_info_or_above(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        app = create_app(app_config(REDIS_URL=own_redis_server.url, ADMIN_PASSWORD="owner-secret"))
        wa = WhatsApp(app.test_client(), TOKEN, phone=PHONE, name="Ana")
        wa.send(SECRET_BODY)
        wa.send("hi")
        ref = book(wa)
        cancel(wa, "Wed 14 Jan 12:00")
        book(wa, at="12:30")
        wa.post(wa.form(SECRET_BODY), signature="forged")
        wa.post({**wa.form(SECRET_BODY), "From": "whatsapp:" + PHONE + "x"})
        admin = app.test_client()
        admin.get("/admin", auth=("owner", "wrong"))
        app.test_cli_runner().invoke(args=["bookings", "list"])
        own_redis_server.stop()
        wa.send(SECRET_BODY)
    logged = everything_logged(caplog)
    assert "+34*****222" in logged and ref  # the lines are there, masked
    assert "outcome=redis_error" in logged and "outcome=forged" in logged
    for secret in (PHONE, PHONE[1:], SECRET_BODY, TOKEN, "owner-secret"):
        assert secret not in logged


def test_the_safety_net_masks_numbers_in_any_message() -> None:
    record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, "customer %s wrote", (PHONE,), None)
    assert PlainFormatter().format(record).endswith("bot.x: customer +34*****222 wrote")
    assert json.loads(JsonFormatter().format(record))["msg"] == "customer +34*****222 wrote"


def test_auto_is_json_next_to_a_real_redis_outside_debug_and_testing() -> None:
    assert choose_format("auto", production=True) == "json"
    assert choose_format("auto", production=False) == "plain"
    assert choose_format("plain", production=True) == "plain"
    assert choose_format("json", production=False) == "json"


def start_up_lines(tmp_path: Path, **env: str) -> list[str]:
    """stderr of a process that builds the app the way wsgi.py does, as gunicorn would."""
    result = import_wsgi(tmp_path, drop=("LOG_FORMAT", "REDIS_URL"), **env)
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def test_production_start_up_logs_json(redis_server: RedisServer, tmp_path: Path) -> None:
    lines = start_up_lines(
        tmp_path, REDIS_URL=redis_server.url, PUBLIC_BASE_URL="https://bot.example.com", SECRET_KEY=SECRET_KEY
    )
    entries = [json.loads(line) for line in lines]
    assert {"level": "INFO", "logger": "bot.admin"}.items() <= entries[-1].items()
    assert entries[-1]["msg"] == "admin page is off: set ADMIN_PASSWORD to turn on /admin"


def test_development_start_up_logs_plain_lines(tmp_path: Path) -> None:
    lines = start_up_lines(tmp_path)
    assert any(" WARNING bot.services: " in line for line in lines)  # the embedded-store warning
    assert lines[-1].endswith("INFO bot.admin: admin page is off: set ADMIN_PASSWORD to turn on /admin")
    json_anyway = start_up_lines(tmp_path, LOG_FORMAT="json")
    assert json.loads(json_anyway[-1])["logger"] == "bot.admin"

"""The Procfile's command, for real: gunicorn with our config, a real Redis, a signed tap."""

from __future__ import annotations

from pathlib import Path

from twilio.request_validator import RequestValidator

from bot.cli import reply_texts, twilio_form

from .redis_server import RedisServer
from .servers import ROOT, gunicorn, post


def test_procfile_runs_gunicorn_with_our_config() -> None:
    assert (ROOT / "Procfile").read_text().splitlines()[0] == "web: gunicorn wsgi:app"
    assert (ROOT / "wsgi.py").read_text().strip().endswith("app = create_app()")


def test_gunicorn_serves_signed_taps_from_a_real_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    env = {
        "WEB_CONCURRENCY": "2",
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": "deploytest",
        "TWILIO_AUTH_TOKEN": "deploy-token",
    }
    with gunicorn(tmp_path, **env) as server:
        url = server.base + "/webhook"
        form = twilio_form("+34600999888", "hi", name="Eva")
        status, body = post(url, form, RequestValidator("deploy-token").compute_signature(url, form))
        assert status == 200
        assert reply_texts(body)[0].startswith("Hi Eva! 👋")
        status, _ = post(url, twilio_form("+34600999888", "1"), "forged")
        assert status == 403

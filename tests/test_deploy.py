"""The Procfile's command, for real: gunicorn with our config, a real Redis, a signed tap."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bot.cli import reply_texts, twilio_form

from .redis_server import RedisServer
from .servers import ROOT, gunicorn, post


def test_procfile_runs_gunicorn_with_our_config() -> None:
    assert (ROOT / "Procfile").read_text().splitlines()[0] == "web: gunicorn wsgi:app"
    assert (ROOT / "wsgi.py").read_text().strip().endswith("app = create_app()")


TOKEN = "deploy-token"


def production(redis_server: RedisServer, prefix: str, workers: int = 2) -> dict[str, str]:
    """The environment of a deployment on ``redis_server``, its keys under ``prefix``."""
    return {
        "WEB_CONCURRENCY": str(workers),
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": prefix,
        "TWILIO_AUTH_TOKEN": TOKEN,
    }


def signed(url: str, form: dict[str, str]) -> tuple[int, bytes]:
    return post(url, form, RequestValidator(TOKEN).compute_signature(url, form))


def test_gunicorn_serves_signed_taps_from_a_real_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    with gunicorn(tmp_path, **production(redis_server, "deploytest")) as server:
        url = server.base + "/webhook"
        status, body = signed(url, twilio_form("+34600999888", "hi", name="Eva"))
        assert status == 200
        assert reply_texts(body)[0].startswith("Hi Eva! 👋")
        status, _ = post(url, twilio_form("+34600999888", "1"), "forged")
        assert status == 403


def test_the_access_log_carries_no_phone_number(redis_server: RedisServer, tmp_path: Path) -> None:
    """The worker's status callback URL names the customer (``?to=%2B…``); gunicorn's access log must not."""
    with gunicorn(tmp_path, **production(redis_server, "accesslogtest", workers=1)) as server:
        url = server.base + "/webhook/status?" + urlencode({"to": "+34600999888", "entry": "1700000000000-0"})
        assert signed(url, {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"})[0] == 204
        assert signed(server.base + "/webhook?lang=es", twilio_form("+34600999888", "hola"))[0] == 200
    log = server.log.read_text()
    assert '"POST /webhook/status HTTP/1.1" 204' in log and '"POST /webhook HTTP/1.1" 200' in log  # still logged
    assert "600999888" not in log, log

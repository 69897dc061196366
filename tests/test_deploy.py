"""The Procfile's command, for real: gunicorn with our config, a real Redis, a signed tap."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from twilio.request_validator import RequestValidator

from bot.cli import reply_texts, twilio_form

from .redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def test_procfile_runs_gunicorn_with_our_config() -> None:
    assert (ROOT / "Procfile").read_text().splitlines()[0] == "web: gunicorn wsgi:app"
    assert (ROOT / "wsgi.py").read_text().strip().endswith("app = create_app()")


def post(url: str, form: dict[str, str], signature: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), headers={"X-Twilio-Signature": signature}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_gunicorn_serves_signed_taps_from_a_real_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": "deploytest",
        "TWILIO_AUTH_TOKEN": "deploy-token",
        "PYTHONPATH": str(ROOT),
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/webhook"
    validator = RequestValidator("deploy-token")
    try:
        deadline = time.monotonic() + 30
        while True:  # wait for the server we just started to listen, bounded
            form = twilio_form("+34600999888", "hi", name="Eva")
            try:
                status, body = post(url, form, validator.compute_signature(url, form))
                break
            except (ConnectionError, urllib.error.URLError):
                started = process.poll() is None and time.monotonic() < deadline
                assert started, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.1)
        assert status == 200
        assert reply_texts(body)[0].startswith("Hi Eva! 👋")
        status, _ = post(url, twilio_form("+34600999888", "1"), "forged")
        assert status == 403
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()

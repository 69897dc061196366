"""Bodies: chunked ones are bounded like the others, and any text WhatsApp delivers is read (issue 13, item 7).

gunicorn and Werkzeug's server hand a chunked body (no ``Content-Length``) to the app with
``wsgi.input_terminated``; Werkzeug then cut it silently at ``MAX_CONTENT_LENGTH``, so an
oversized one was parsed truncated and logged as a forged signature. It is now ``413`` like
a declared one. WhatsApp carries texts of up to 4,096 characters; they are answered, not 400.
"""

from __future__ import annotations

import http.client
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import redis
from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.test import EnvironBuilder, run_wsgi_app

from bot import MAX_CONTENT_LENGTH, get_services
from bot.cli import reply_texts, twilio_form

from .conftest import TOKEN
from .redis_server import RedisServer
from .servers import gunicorn
from .whatsapp import BASE_URL, WhatsApp


def webhook_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, stream.getvalue().splitlines()) if e["logger"] == "bot.webhook"]


def post_chunked(app: Flask, body: bytes, signature: str, *, terminated: bool = True) -> tuple[int, bytes]:
    """Post ``body`` as gunicorn hands a chunked request to the app: no CONTENT_LENGTH, a terminated stream."""
    environ = EnvironBuilder(
        path="/webhook",
        method="POST",
        base_url=BASE_URL,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Transfer-Encoding": "chunked",
            "X-Twilio-Signature": signature,
        },
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(body)
    if terminated:
        environ["wsgi.input_terminated"] = True
    app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), b"".join(app_iter)


def padded(wa: WhatsApp, size: int) -> dict[str, str]:
    """A signed-able message form whose urlencoded body is exactly ``size`` bytes (Twilio adds fields freely)."""
    form = wa.form("hi", Pad="")
    form["Pad"] = "x" * (size - len(urlencode(form)))
    assert len(urlencode(form)) == size
    return form


def test_an_oversized_chunked_body_is_413_not_forged(
    app: Flask, wa: WhatsApp, db: redis.Redis, json_lines: io.StringIO
) -> None:
    form = padded(wa, MAX_CONTENT_LENGTH + 1)
    status, body = post_chunked(
        app, urlencode(form).encode(), wa.validator.compute_signature(BASE_URL + "/webhook", form)
    )
    assert (status, body) == (413, b"The data value transmitted exceeds the capacity limit.\n")
    (line,) = webhook_lines(json_lines)
    assert (line["level"], line["outcome"], line["msg"]) == (
        "INFO",
        "malformed",
        "tap malformed: 413 Request Entity Too Large",
    )
    stats = get_services(app).stats
    assert (stats.get("taps.forged"), stats.get("taps.malformed")) == (0, 1)
    assert db.dbsize() == 0


def test_chunked_and_declared_bodies_share_one_limit(app: Flask, wa: WhatsApp) -> None:
    """Exactly ``MAX_CONTENT_LENGTH`` bytes is read either way; one byte more is 413 either way."""
    for size, expected in ((MAX_CONTENT_LENGTH, 200), (MAX_CONTENT_LENGTH + 1, 413)):
        form = padded(wa, size)
        signature = wa.validator.compute_signature(BASE_URL + "/webhook", form)
        assert post_chunked(app, urlencode(form).encode(), signature)[0] == expected, size
        declared = app.test_client().post(  # the same bytes with a Content-Length
            "/webhook",
            base_url=BASE_URL,
            data=urlencode(form).encode(),
            content_type="application/x-www-form-urlencoded",
            headers={"X-Twilio-Signature": signature},
        )
        assert declared.status_code == expected, size


def test_a_signed_chunked_message_is_answered(app: Flask, wa: WhatsApp) -> None:
    form = wa.form("hi")
    status, body = post_chunked(
        app, urlencode(form).encode(), wa.validator.compute_signature(BASE_URL + "/webhook", form)
    )
    assert status == 200
    assert reply_texts(body)[0].startswith("Hi Ana! 👋")


def test_a_chunked_body_the_server_cannot_delimit_is_411(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    form = wa.form("hi")
    signature = wa.validator.compute_signature(BASE_URL + "/webhook", form)
    status, _ = post_chunked(app, urlencode(form).encode(), signature, terminated=False)
    assert status == 411
    assert get_services(app).stats.get("taps.forged") == 0
    assert db.dbsize() == 0


def send_chunked(url: str, body: bytes, signature: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(
            "POST",
            parts.path,
            body=iter([body[i : i + 8192] for i in range(0, len(body), 8192)]),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_under_gunicorn_an_oversized_chunked_body_is_413(redis_server: RedisServer, tmp_path: Path) -> None:
    """The attack as it was made: a real server, a real Redis, a chunked body over 64 KiB."""
    db = redis.Redis.from_url(redis_server.url)
    db.flushdb()
    env = {
        "WEB_CONCURRENCY": "1",
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": "bodies",
        "TWILIO_AUTH_TOKEN": TOKEN,
    }
    validator = RequestValidator(TOKEN)
    with gunicorn(tmp_path, **env) as server:
        url = server.base + "/webhook"
        small = twilio_form("+34600999888", "hi", name="Eva")
        status, body = send_chunked(url, urlencode(small).encode(), validator.compute_signature(url, small))
        assert status == 200 and reply_texts(body)[0].startswith("Hi Eva! 👋")
        stored = sorted(db.keys())
        large = twilio_form("+34600999777", "hi", Pad="x" * MAX_CONTENT_LENGTH)
        status, _ = send_chunked(url, urlencode(large).encode(), validator.compute_signature(url, large))
        assert status == 413
        assert sorted(db.keys()) == stored
    db.close()
    log = server.log.read_text()
    assert "tap malformed: 413 Request Entity Too Large" in log
    assert "forged" not in log


# -- long texts -------------------------------------------------------------------------------------
def test_the_longest_text_whatsapp_delivers_is_answered(app: Flask) -> None:
    for n, text in enumerate(("y" * 1601, "y" * 4096)):  # 1,601: the length that used to get a 400 and no reply
        answer = WhatsApp(app.test_client(), TOKEN, phone=f"+3460033344{n}", name="Ana").send(text)
        assert answer.status == 200, answer.body
        other = WhatsApp(app.test_client(), TOKEN, phone=f"+3460055566{n}", name="Ana")
        assert answer.text == other.send("blah").text  # a first message: the greeting and the menu


@pytest.mark.parametrize(
    ("path", "thanks"),
    [
        ("/webhook", "Thanks for your message! I can only answer the options below"),
        ("/webhook?lang=es", "¡Gracias por tu mensaje! Solo puedo responder a las opciones de abajo"),
        ("/webhook?lang=pt", "Obrigado pela sua mensagem! Só consigo responder às opções abaixo"),
    ],
)
def test_a_long_message_mid_conversation_gets_a_friendly_answer_and_the_step_again(
    wa: WhatsApp, path: str, thanks: str
) -> None:
    menu = wa.send("menu", path=path)  # a word of every language: no switch offered
    story = "Hello, I wanted to ask whether you could fit me in for a haircut later this week, " * 4
    answer = wa.send(story, path=path)
    assert answer.text.startswith(thanks), answer.text
    assert answer.options == menu.options  # nothing lost: the step is shown again
    assert not wa.send("blah", path=path).text.startswith(thanks)  # a short unknown word keeps the usual hint


def test_a_4096_character_text_of_emoji_fits_in_the_body_limit(app: Flask, wa: WhatsApp) -> None:
    """4 bytes each in UTF-8, 12 once form-encoded: still under MAX_CONTENT_LENGTH with Twilio's other fields."""
    assert len(urlencode(wa.form("😀" * 4096)).encode()) < MAX_CONTENT_LENGTH
    assert wa.send("😀" * 4096).status == 200

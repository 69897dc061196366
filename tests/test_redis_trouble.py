"""When Redis is down or stuck, customers get a polite answer, nothing half-written, no 500."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from flask import Flask

from bot import create_app, get_services
from bot.sessions import Session

from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .whatsapp import WhatsApp

SESSION = "tapbook:{test}:session:+34600111222"
POLITE = "Sorry, we're having trouble right now. Please try again in a minute."


@pytest.fixture
def fake_app() -> Flask:
    return create_app(app_config())


def test_disconnected_store_gets_the_polite_reply_and_recovers(fake_app: Flask) -> None:
    wa = WhatsApp(fake_app.test_client(), TOKEN)
    wa.send("hi")
    server = get_services(fake_app).redis.connection_pool.connection_kwargs["server"]
    server.connected = False
    answer = wa.send("3")
    assert (answer.status, answer.text, answer.options) == (200, POLITE, [])
    assert get_services(fake_app).stats.get("taps.redis_error") == 1
    server.connected = True
    assert wa.send("3").text.startswith("Which language would you like?")


def test_the_polite_reply_speaks_the_numbers_language(fake_app: Flask) -> None:
    get_services(fake_app).redis.connection_pool.connection_kwargs["server"].connected = False
    answer = WhatsApp(fake_app.test_client(), TOKEN).send("hola", path="/webhook?lang=es")
    assert answer.text == "Lo sentimos, estamos teniendo problemas. Inténtalo de nuevo en un minuto."


@pytest.fixture
def real_app(own_redis_server: RedisServer) -> Iterator[Flask]:
    app = create_app(app_config(REDIS_URL=own_redis_server.url, REDIS_SOCKET_TIMEOUT=0.3, REDIS_CONNECT_TIMEOUT=0.3))
    yield app
    get_services(app).redis.close()


def test_a_stopped_server_gets_the_polite_reply_then_service_resumes(
    real_app: Flask, own_redis_server: RedisServer
) -> None:
    wa = WhatsApp(real_app.test_client(), TOKEN)
    wa.send("hi")
    own_redis_server.stop()
    started = time.monotonic()
    answer = wa.send("3")
    assert (answer.status, answer.text) == (200, POLITE)
    assert time.monotonic() - started < 2  # refused at once, not after retries
    own_redis_server.start()  # same port; this server keeps no data, so she starts over
    assert wa.send("hi").text.startswith("Hi Ana!")
    assert wa.send("3").text.startswith("Which language would you like?")


def test_a_hung_server_costs_a_tap_no_more_than_the_socket_timeout(
    real_app: Flask, own_redis_server: RedisServer
) -> None:
    wa = WhatsApp(real_app.test_client(), TOKEN)
    wa.send("hi")
    assert own_redis_server.process is not None
    pid = own_redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = wa.send("3")
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (answer.status, answer.text) == (200, POLITE)
    assert elapsed < 1.5  # one 0.3 s socket timeout, never retried
    assert wa.send("3").text.startswith("Which language would you like?")
    db = get_services(real_app).redis
    assert Session(db.hgetall(SESSION)).step == "language"

"""Liveness and readiness, as a load balancer or orchestrator sees them."""

from __future__ import annotations

from flask import Flask

from bot import create_app, get_services

from .conftest import app_config
from .redis_server import RedisServer


def test_liveness_never_touches_redis(app: Flask) -> None:
    get_services(app).redis.close()
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_when_redis_answers(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"] == {"catalog": "ok", "redis": "ok"}


def test_not_ready_while_redis_is_down_and_ready_again_after(own_redis_server: RedisServer) -> None:
    app = create_app(app_config(REDIS_URL=own_redis_server.url))
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    own_redis_server.stop()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.get_json()["status"] == "unavailable"
    assert down.get_json()["checks"]["redis"].startswith("unreachable")
    assert client.get("/healthz").status_code == 200

    own_redis_server.start()
    assert client.get("/readyz").status_code == 200

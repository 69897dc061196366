"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve taps).

Liveness never touches Redis, so a Redis outage does not get healthy workers restarted;
readiness pings Redis (one round trip, bounded by the socket timeout) and checks that a
catalog is loaded, so a load balancer stops sending taps that could only be apologised for.
"""

from __future__ import annotations

import time

import redis
from flask import Blueprint, Response, jsonify

from .services import get_services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    services = get_services()
    checks: dict[str, str] = {"catalog": "ok" if all(shop.catalog.services for shop in services.directory) else "empty"}
    started = time.perf_counter()
    try:
        services.redis.ping()
        checks["redis"] = "ok"
    except redis.RedisError as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
        "redis": "embedded" if services.embedded else "server",
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return jsonify(body), 200 if ready else 503

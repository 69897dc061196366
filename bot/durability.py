"""At start-up, warn when the connected Redis could lose bookings.

Bookings live only in Redis and never expire, so two server settings decide whether they
survive: ``maxmemory-policy`` must be ``noeviction`` (any other policy may delete a booking
to make room) and something must reach the disk (``appendonly yes``; RDB ``save`` points
alone lose the writes since the last snapshot). One pipelined ``CONFIG GET`` round trip,
once, in the factory. Managed services often refuse or rename ``CONFIG``, and Redis may not
be up yet when the app starts: then the check stays silent and start-up goes on.
"""

from __future__ import annotations

import logging

import redis

from .connections import servers

log = logging.getLogger(__name__)


def durability_problems(config: dict[str, str]) -> list[str]:
    """What in ``config`` (CONFIG GET values) puts bookings at risk, one line each."""
    problems = []
    policy = config.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        problems.append(
            f"maxmemory-policy is {policy} (maxmemory {config.get('maxmemory', '?')}): under memory pressure "
            "Redis may evict bookings; set maxmemory-policy noeviction"
        )
    if config.get("appendonly", "yes") == "no" and not config.get("save", "x").strip():
        problems.append(
            "appendonly is no and there are no save points: a restart loses every booking; set appendonly yes"
        )
    return problems


def warn_if_not_durable(client: redis.Redis) -> list[str]:
    """Log a WARNING per problem found (on a Redis Cluster: per master); the problems found."""
    problems = []
    for server in servers(client):
        problems += _check(server)
    return problems


def _check(client: redis.Redis) -> list[str]:
    """The problems of one server, or [] when CONFIG cannot be read."""
    pipe = client.pipeline(transaction=False)
    for name in ("maxmemory-policy", "maxmemory", "appendonly", "save"):
        pipe.config_get(name)
    try:
        replies = pipe.execute()
    except redis.RedisError as exc:  # CONFIG refused or renamed, or Redis not reachable yet
        log.debug("durability check skipped: %s: %s", type(exc).__name__, exc)
        return []
    config: dict[str, str] = {}
    for reply in replies:
        config.update(reply)
    problems = durability_problems(config)
    for problem in problems:
        log.warning("Redis may lose bookings: %s", problem)
    return problems

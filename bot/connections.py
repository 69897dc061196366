"""How the app reaches Redis: one server (``REDIS_URL``), Redis Cluster, or Sentinel.

Every mode uses redis-py's own client for it (``Redis``, ``RedisCluster``, ``Sentinel``'s
``master_for``) with the same socket timeouts, and one immediate retry after a refused or
reset connection. Two small adaptations keep the app's code the same in every mode:

* **Cluster pipelines.** redis-py refuses ``EVALSHA`` and ``TIME`` inside a cluster
  pipeline. The app pipelines a script with a single-key command (the commit and the
  outbox doorbell) and reads the Redis clock with the day hashes it lists, so
  :class:`ClusterPipeline` allows both: ``EVALSHA`` is routed by its keys like any keyed
  command, and ``TIME`` becomes a tiny script run on the node (and in the round trip) of
  the pipeline's next keyed command, so the clock is that of the server whose data it
  is read with.
* **Waiting for replicas** (:class:`ReplicatedRedis`): a script that writes a booking
  record is pipelined with ``WAIT <replicas> <ms>``, so the customer hears "Booked!" only
  once a replica has the booking, or the wait timed out (logged). See
  docs/deployment.md, "Redis deployments".
"""

from __future__ import annotations

import logging
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.cluster import ClusterPipeline as _ClusterPipeline
from redis.exceptions import NoScriptError, RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from .config import Settings
from .errors import ConfigError

log = logging.getLogger(__name__)

#: what a booking record's key contains (docs/architecture.md, "Redis key layout"); scripts touching one wait
#: for replicas
BOOKING_KEY_PART = ":booking:"

_CLOCK = "return redis.call('TIME')"

#: the scripts registered on a cluster client, by SHA1: a pipelined EVALSHA answered NOSCRIPT loads its body
_SCRIPTS: dict[str, str] = {}


class ClusterPipeline(_ClusterPipeline):
    """redis-py's cluster pipeline, plus ``EVALSHA`` and ``TIME`` (see the module docstring)."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def time(self) -> Any:  # type: ignore[override]
        return self.execute_command("EVAL", _CLOCK, 1, "", _CLOCK)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        queue = self._execution_strategy.command_queue
        clocks = [i for i, command in enumerate(queue) if command.args[-1:] == (_CLOCK,)]
        for index in clocks:
            key = next((k for c in [*queue[index + 1 :], *queue[:index]] if (k := _first_key(c.args))), "clock")
            queue[index].args = ("EVAL", _CLOCK, 1, key)
        commands = [command.args for command in queue]
        replies = super().execute(raise_on_error=False)
        for index in clocks:
            if isinstance(replies[index], list):
                replies[index] = tuple(int(part) for part in replies[index])
        for index, reply in enumerate(replies):
            # a master that never saw the script (new, restarted, promoted): load it everywhere, run it again
            if isinstance(reply, NoScriptError) and (body := _SCRIPTS.get(str(commands[index][1]))):
                self.parent_execute_command("SCRIPT LOAD", body)
                replies[index] = self.parent_execute_command(*commands[index])
        if raise_on_error and (error := next((r for r in replies if isinstance(r, Exception)), None)):
            raise error
        return replies


def _first_key(args: tuple[Any, ...]) -> str | None:
    """The first key of a queued command (the app pipelines single-key commands and scripts)."""
    if args[-1:] == (_CLOCK,):
        return None
    if str(args[0]).upper() in ("EVAL", "EVALSHA"):
        return str(args[3]) if int(args[2]) > 0 else None
    return str(args[1]) if len(args) > 1 else None


class Cluster(RedisCluster):
    """``RedisCluster`` whose pipelines are :class:`ClusterPipeline`."""

    def register_script(self, script: Any) -> Any:
        registered = super().register_script(script)
        _SCRIPTS[registered.sha] = script
        return registered

    def pipeline(self, transaction: bool | None = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        pipe.__class__ = ClusterPipeline
        return cast(ClusterPipeline, pipe)

    def primaries(self) -> list[redis.Redis]:
        """A plain client of each master (for commands about one server, such as ``CONFIG GET``)."""
        return [self.get_redis_connection(node) for node in self.get_primaries()]


class ReplicatedRedis(redis.Redis):
    """A client whose booking scripts are followed by ``WAIT`` on the same connection."""

    wait_replicas = 0
    wait_timeout_ms = 0

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        keys = [str(key) for key in keys_and_args[: int(numkeys)]]
        if not self.wait_replicas or not any(BOOKING_KEY_PART in key for key in keys):
            return super().evalsha(sha, numkeys, *keys_and_args)
        pipe = self.pipeline(transaction=False)  # one connection: WAIT covers this script's writes
        pipe.evalsha(sha, numkeys, *keys_and_args)
        pipe.wait(self.wait_replicas, self.wait_timeout_ms)
        result, acknowledged = pipe.execute(raise_on_error=False)
        if isinstance(result, Exception):
            raise result
        if isinstance(acknowledged, Exception):  # the script ran: its answer stands, only the wait failed
            log.warning("a booking write could not wait for replicas (%s): a failover now could lose it", acknowledged)
        elif acknowledged < self.wait_replicas:
            log.warning(
                "a booking write reached %d of %d replicas within %d ms: a failover now could lose it",
                acknowledged,
                self.wait_replicas,
                self.wait_timeout_ms,
            )
        return result


def connect(settings: Settings) -> redis.Redis | Cluster:
    """The client of the configured deployment (not the embedded store: see ``services.build_redis``).

    A refused or reset connection is retried once at once (a restarted Redis leaves dead
    pooled connections behind); on a single server or behind Sentinel a timeout is never
    retried, so a tap never waits longer than the socket timeout. (redis-py's cluster
    client also retries a timeout once, after refreshing its slot map.)
    """
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": 0,
    }
    retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
    mode = settings.redis_mode
    if mode == "server":
        assert settings.redis_url is not None
        client = ReplicatedRedis.from_url(settings.redis_url, retry=retry, **common, **_auth(settings), **_ca(settings))
    elif mode == "cluster":
        try:
            if settings.redis_url:  # redis+cluster://[user:password@]host:port, rediss+cluster:// for TLS
                url = settings.redis_url.replace("+cluster", "", 1)
                cluster = Cluster.from_url(
                    url, retry=Retry(NoBackoff(), 1), **common, **_auth(settings), **_ca(settings)
                )
                return cast(Cluster, cluster)
            return Cluster(
                startup_nodes=[ClusterNode(host, port) for host, port in settings.redis_cluster_nodes],
                retry=Retry(NoBackoff(), 1),
                **common,
                **_auth(settings),
                **_tls(settings),
            )
        except (RedisClusterException, redis.RedisError) as exc:  # the client reads the slot map at once
            setting = "REDIS_URL" if settings.redis_url else "REDIS_CLUSTER_NODES"
            raise ConfigError(setting, f"no node answered with the cluster's slots: {exc}") from None
    else:
        sentinel = Sentinel(
            list(settings.redis_sentinels),
            sentinel_kwargs={
                "socket_timeout": settings.redis_socket_timeout,
                "socket_connect_timeout": settings.redis_connect_timeout,
                "password": settings.redis_sentinel_password,
                "retry": Retry(NoBackoff(), 0),  # a sentinel that is down: ask the next one at once
                **_tls(settings),
            },
        )
        assert settings.redis_sentinel_service is not None
        client = cast(
            ReplicatedRedis,
            sentinel.master_for(
                settings.redis_sentinel_service,
                redis_class=ReplicatedRedis,
                retry=retry,
                **common,
                **_auth(settings),
                **_tls(settings),
            ),
        )
    replicated = cast(ReplicatedRedis, client)
    replicated.wait_replicas = settings.wait_replicas
    replicated.wait_timeout_ms = settings.redis_wait_timeout_ms
    return replicated


def _auth(settings: Settings) -> dict[str, Any]:
    return {"username": settings.redis_username, "password": settings.redis_password}


def _tls(settings: Settings) -> dict[str, Any]:
    """TLS by REDIS_TLS (cluster nodes, sentinels); a URL says it by its scheme and takes only the CA."""
    return {"ssl": True, **_ca(settings)} if settings.redis_tls else {}


def _ca(settings: Settings) -> dict[str, Any]:
    return {"ssl_ca_certs": settings.redis_tls_ca_file} if settings.redis_tls_ca_file else {}


def servers(client: Any) -> list[Any]:
    """One client per server holding data: each master of a cluster, else the client itself."""
    return client.primaries() if isinstance(client, Cluster) else [client]

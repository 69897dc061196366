"""Reaching Redis: the settings of each deployment, and waiting for replicas after a booking."""

from __future__ import annotations

import logging

import pytest
import redis
from redis.sentinel import SentinelManagedSSLConnection

from bot import create_app, get_services
from bot.config import Settings, check_redis
from bot.connections import ReplicatedRedis, connect
from bot.errors import ConfigError

from .bookings import book
from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .whatsapp import WhatsApp


@pytest.mark.parametrize(
    ("settings", "key", "complaint"),
    [
        ({"REDIS_CLUSTER_NODES": "10.0.0.1"}, "REDIS_CLUSTER_NODES", "must be host:port pairs separated by commas"),
        ({"REDIS_SENTINELS": "a:1,b:99999"}, "REDIS_SENTINELS", "(got 'b:99999')"),
        ({"REDIS_URL": "redis://a:1/0", "REDIS_CLUSTER_NODES": "b:2"}, "REDIS_CLUSTER_NODES", "set only one of"),
        ({"REDIS_SENTINELS": "a:1"}, "REDIS_SENTINEL_SERVICE", "required with REDIS_SENTINELS"),
        ({"REDIS_URL": "redis://a:1/0", "REDIS_SENTINEL_SERVICE": "x"}, "REDIS_SENTINEL_SERVICE", "only used with"),
        ({"REDIS_URL": "redis://a:1/0", "REDIS_TLS": "true"}, "REDIS_TLS", "write rediss:// (rediss+cluster://)"),
        ({"REDIS_URL": "redis+cluster://a:1", "REDIS_WAIT_REPLICAS": "1"}, "REDIS_WAIT_REPLICAS", "not supported"),
        ({"REDIS_CLUSTER_NODES": "a:1", "REDIS_TLS": "maybe"}, "REDIS_TLS", "must be true, false"),
        ({"REDIS_URL": "redis://a:1/0", "REDIS_TLS_CA_FILE": "/ca.pem"}, "REDIS_TLS_CA_FILE", "needs TLS"),
        ({"REDIS_CLUSTER_NODES": "a:1", "REDIS_WAIT_REPLICAS": "1"}, "REDIS_WAIT_REPLICAS", "not supported with"),
        ({"REDIS_URL": "redis://a:1/0", "REDIS_WAIT_REPLICAS": "9"}, "REDIS_WAIT_REPLICAS", "between 0 and 5"),
        (
            {"REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_SERVICE": "x", "REDIS_WAIT_TIMEOUT_MS": "1000"},
            "REDIS_WAIT_TIMEOUT_MS",
            "must be shorter than REDIS_SOCKET_TIMEOUT (1.0 s)",
        ),
    ],
)
def test_a_redis_deployment_is_described_one_way(settings: dict[str, str], key: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(app_config(**settings))
    assert caught.value.setting == key
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_each_mode_and_its_waiting() -> None:
    def parsed(**config: str) -> Settings:
        settings = Settings.from_mapping(config)
        check_redis(settings)
        return settings

    assert (parsed().redis_mode, parsed().wait_replicas) == ("embedded", 0)
    assert (parsed(REDIS_URL="redis://a:1/0").redis_mode, parsed(REDIS_URL="redis://a:1/0").wait_replicas) == (
        "server",
        0,
    )
    cluster = parsed(REDIS_CLUSTER_NODES=" a:1, [::1]:2 ")
    assert (cluster.redis_mode, cluster.redis_cluster_nodes, cluster.wait_replicas) == (
        "cluster",
        (("a", 1), ("::1", 2)),
        0,
    )
    assert parsed(REDIS_URL="rediss+cluster://:pw@a:1").redis_mode == "cluster"
    sentinel = parsed(REDIS_SENTINELS="a:1", REDIS_SENTINEL_SERVICE="m")
    assert (sentinel.redis_mode, sentinel.wait_replicas) == ("sentinel", 1)
    assert parsed(REDIS_SENTINELS="a:1", REDIS_SENTINEL_SERVICE="m", REDIS_WAIT_REPLICAS="0").wait_replicas == 0


def test_sentinel_mode_talks_tls_with_a_password_and_the_same_timeouts() -> None:
    settings = Settings.from_mapping(
        {
            "REDIS_SENTINELS": "127.0.0.1:1",
            "REDIS_SENTINEL_SERVICE": "m",
            "REDIS_TLS": "true",
            "REDIS_PASSWORD": "s3cret",
            "REDIS_SOCKET_TIMEOUT": "0.4",
        }
    )
    client = connect(settings)  # nothing is connected yet: the sentinels are asked at the first command
    pool = client.connection_pool
    assert isinstance(client, ReplicatedRedis) and client.wait_replicas == 1
    assert pool.connection_class is SentinelManagedSSLConnection
    assert (pool.connection_kwargs["password"], pool.connection_kwargs["socket_timeout"]) == ("s3cret", 0.4)
    assert pool.connection_kwargs["retry"].get_retries() == 1
    with pytest.raises(redis.ConnectionError):  # the sentinel is not there: a polite-reply error, not a crash
        client.ping()


def wait_calls(db: redis.Redis) -> int:
    return int(db.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def test_a_booking_waits_for_replicas_and_says_so_when_none_answers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    db.flushdb()
    app = create_app(app_config(REDIS_URL=redis_server.url, REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS="20"))
    wa = WhatsApp(app.test_client(), TOKEN)
    book(wa, at="12:00")  # loads the scripts (a first EVALSHA answered NOSCRIPT runs, and waits, twice)
    before = wait_calls(db)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bot.connections"):
        ref = book(wa, day="Thu 15 Jan", at="10:00")  # no replica here: the wait times out, the customer is told
    assert db.hget(f"tapbook:{{test}}:booking:{ref}", "status") == "confirmed"
    assert wait_calls(db) == before + 1  # the booking, not the hold nor the session writes
    assert [r.getMessage() for r in caplog.records if r.name == "bot.connections"] == [
        "a booking write reached 0 of 1 replicas within 20 ms: a failover now could lose it"
    ]
    get_services(app).redis.close()

    app = create_app(app_config(REDIS_URL=redis_server.url))  # auto: no waiting on a single server
    book(WhatsApp(app.test_client(), TOKEN, phone="+34600999888"), day="Thu 15 Jan", at="11:00")
    assert wait_calls(db) == before + 1
    get_services(app).redis.close()
    db.close()


def test_a_booking_stands_when_its_wait_is_refused(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that refuses WAIT (here an ACL without it) must not turn a made booking into an apology."""
    admin = redis.Redis.from_url(own_redis_server.url, decode_responses=True)
    admin.acl_setuser(
        "app", enabled=True, passwords=["+secret"], keys=["*"], channels=["*"], commands=["+@all", "-wait"]
    )
    url = own_redis_server.url.replace("redis://", "redis://app:secret@", 1)
    app = create_app(app_config(REDIS_URL=url, REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS="20"))
    with caplog.at_level(logging.WARNING, logger="bot.connections"):
        ref = book(WhatsApp(app.test_client(), TOKEN), at="12:00")
    assert admin.hget(f"tapbook:{{test}}:booking:{ref}", "status") == "confirmed"
    assert any("could not wait for replicas" in r.getMessage() for r in caplog.records), caplog.text
    get_services(app).redis.close()
    admin.close()

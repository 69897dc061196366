"""The app built on a Redis Cluster: readiness, the durability check on every master, a booking."""

from __future__ import annotations

import logging

import pytest
import redis

from bot import create_app, get_services
from bot.connections import Cluster as ClusterClient
from bot.errors import ConfigError
from bot.sessions import Session

from ..bookings import book
from ..conftest import TOKEN, app_config
from ..content_phone import ContentCustomer, content_config, synced_worker
from ..redis_server import free_port
from ..test_customers import everything
from ..test_outbox import status_callback
from ..test_upgrade import release_1_keys
from ..twilio_fake import FakeTwilio
from ..whatsapp import WhatsApp
from .servers import Cluster


def test_the_app_on_a_cluster(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    cluster.flush()
    risky = redis.Redis(port=cluster.nodes[1].port)
    risky.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING, logger="bot.durability"):
            app = create_app(app_config(REDIS_CLUSTER_NODES=cluster.addresses[0]))
    finally:
        risky.config_set("maxmemory-policy", "noeviction")
        risky.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.durability"]
    assert len(warnings) == 1 and "maxmemory-policy is allkeys-lru" in warnings[0]  # found on the one master
    services = get_services(app)
    assert isinstance(services.redis, ClusterClient) and not services.embedded

    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["redis"] == "ok"
    ref = book(WhatsApp(app.test_client(), TOKEN))
    assert services.redis.hget(f"tapbook:{{test}}:booking:{ref}", "status") == "confirmed"
    services.redis.close()


def test_a_cluster_that_does_not_answer_stops_start_up_with_one_line() -> None:

    with pytest.raises(ConfigError) as caught:
        create_app(app_config(REDIS_CLUSTER_NODES=f"127.0.0.1:{free_port()}"))
    assert caught.value.setting == "REDIS_CLUSTER_NODES" and "\n" not in str(caught.value)


def test_a_release_1_cluster_is_upgraded_in_place(cluster: Cluster) -> None:
    """Release 1 spread conversations over the masters by phone; this release keeps a business on one."""
    cluster.flush()
    seed = ClusterClient(host="127.0.0.1", port=cluster.nodes[0].port, decode_responses=True)
    dump = release_1_keys(seed)
    seed.close()
    app = create_app(app_config(REDIS_CLUSTER_NODES=cluster.addresses[0]))
    db = get_services(app).redis
    db.script_flush()  # masters that never saw the scripts, as after a restart or a failover
    assert get_services(app).business().upgrading
    mine = WhatsApp(app.test_client(), TOKEN, phone="+34600000001").send("2")  # My bookings, from release 1
    assert mine.options == ["Wed 14 Jan 12:00", "Thu 15 Jan 11:00"]
    result = app.test_cli_runner().invoke(args=["bookings", "migrate"])
    assert result.exit_code == 0, result.output
    assert "Done: business test is in this release's layout." in result.output
    refs = [key.rsplit(":", 1)[1] for key in dump["keys"] if ":booking:" in key]
    assert all(db.hget(f"tapbook:{{test}}:booking:{ref}", "ref") == ref for ref in refs)
    sessions = [key for key in dump["keys"] if key.startswith("tapbook:session:")]
    assert all(db.exists("tapbook:{test}:session:" + key[key.index("{") + 1 : -1]) for key in sessions)
    assert Session(db.hgetall("tapbook:{test}:session:+34600000001")).step == "bookings"
    assert "Active sessions: 6" in app.test_cli_runner().invoke(args=["sessions", "stats"]).output
    db.close()


def test_content_api_mode_on_a_cluster(cluster: Cluster) -> None:
    """The outbox on a cluster: the commit appends and rings, the worker leases, sends and settles."""
    cluster.flush()
    fake = FakeTwilio()
    app = create_app(content_config(fake, REDIS_CLUSTER_NODES=cluster.addresses[0]))
    bea = ContentCustomer(app, fake, synced_worker(app), phone="+34600333444")
    services = bea.pick(bea.send("hi"), "Book")
    assert "Haircut" in services.options
    message = fake.accepted[-1]
    assert status_callback(app, message["StatusCallback"], message["sid"], "delivered") == 204
    outbox = get_services(app).outboxes["test"]
    assert outbox.depth() == 0 and outbox.pending(bea.wa.phone) == 0
    assert outbox.status(message["sid"])["status"] == "delivered"
    get_services(app).redis.close()


def test_failed_owner_logins_are_limited_on_a_cluster(cluster: Cluster) -> None:
    """The login limiter runs its scripts through the app's cluster client (each names one key), also on
    masters that lost them (as after a restart or a failover), and its keys carry the prefix."""
    cluster.flush()
    app = create_app(app_config(REDIS_CLUSTER_NODES=cluster.addresses[0], ADMIN_PASSWORD="owner-secret"))
    db = get_services(app).redis
    db.script_flush()
    client = app.test_client()
    for _ in range(10):
        assert client.get("/admin", auth=("owner", "a-guess")).status_code == 401
    refused = client.get("/admin", auth=("owner", "owner-secret"))
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert db.llen("tapbook:admin-logins:LIMITER/127.0.0.1/address/10/1/minute") == 10
    assert db.llen("tapbook:admin-logins:LIMITER/test/business/30/1/minute") == 10
    db.close()


def test_a_customer_is_forgotten_on_a_cluster(cluster: Cluster) -> None:
    """Erasure on a cluster: the reply records are found by SCAN on the business's master, every key
    of the customer goes in one slot's pipeline, and no master keeps the number or the name."""
    cluster.flush()
    app = create_app(app_config(REDIS_CLUSTER_NODES=cluster.addresses[0]))
    zoe = WhatsApp(app.test_client(), TOKEN, phone="+34611222333", name="Zoë Quintanilla")
    ref = book(zoe, at="12:00")
    zoe.send("stop")
    result = app.test_cli_runner().invoke(args=["customers", "forget", "+34611222333", "--yes"])
    assert result.exit_code == 0 and "1 bookings kept without phone or name" in result.output, result.output
    for node in cluster.nodes:
        master = redis.Redis(port=node.port, decode_responses=True)
        assert [line for line in everything(master) if "611222333" in line or "Quintanilla" in line] == []
        master.close()
    assert get_services(app).redis.hget(f"tapbook:{{test}}:booking:{ref}", "phone") == "erased"
    get_services(app).redis.close()

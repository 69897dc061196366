"""GET /metrics: what operators scrape, in-process and summed over gunicorn's workers."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from pathlib import Path

import redis
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from bot import create_app, get_services
from bot.cli import twilio_form
from bot.stats import Stats

from .bookings import book, cancel, reschedule
from .conftest import app_config
from .redis_server import RedisServer
from .servers import get, gunicorn, post
from .whatsapp import WhatsApp

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float:
    """The sum of ``metric``'s samples with ``labels`` (over every business unless one is named)."""
    return sum(v for (name, have), v in samples.items() if name == metric and set(labels.items()) <= set(have))


def scrape(app: Flask) -> Samples:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return parse(response.get_data(as_text=True))


def test_webhooks_by_outcome_and_latency_by_handler(app: Flask, wa: WhatsApp) -> None:
    before = scrape(app)
    assert value(before, "tapbook_webhooks_total", outcome="redis_error") == 0  # every outcome listed from the start
    assert ("tapbook_webhooks_total", (("business", "test"), ("outcome", "busy"))) in before
    assert ("tapbook_webhooks_total", (("business", "none"), ("outcome", "unrouted"))) in before
    wa.send("hi")
    wa.send("hi")
    wa.post(wa.form("hi"), signature="forged")
    wa.post({"MessageSid": "nope"})
    same = wa.form("menu")
    wa.post(same)
    wa.post(same)  # Twilio's retry
    samples = scrape(app)
    assert value(samples, "tapbook_webhooks_total", outcome="ok") == 3
    assert value(samples, "tapbook_webhooks_total", outcome="ok", business="test") == 3
    assert value(samples, "tapbook_webhooks_total", outcome="forged", business="none") == 1  # before routing
    assert value(samples, "tapbook_webhooks_total", outcome="malformed") == 1
    assert value(samples, "tapbook_webhooks_total", outcome="duplicate", business="test") == 1
    answered = sum(v for (name, _), v in samples.items() if name == "tapbook_handler_duration_seconds_count")
    assert answered == 4  # ok and duplicate taps; refused ones never reach a handler
    assert value(samples, "tapbook_handler_duration_seconds_count", handler="go_menu") == 3
    assert value(samples, "tapbook_handler_duration_seconds_count", handler="none") == 1  # the retry
    assert value(samples, "tapbook_webhook_redis_round_trips_count") == 4
    assert value(samples, "tapbook_webhook_redis_round_trips_sum") == 2 + 2 + 2 + 1
    assert get_services(app).stats.get("taps.ok") == 3  # the named API reads the same values


def test_bookings_created_rescheduled_cancelled(app: Flask, wa: WhatsApp) -> None:
    book(wa, at="12:00")
    reschedule(wa, "Wed 14 Jan 12:00", "Wed 14 Jan", "12:30")
    book(wa, day="Thu 15 Jan", at="10:00")
    cancel(wa, "Thu 15 Jan 10:00")
    samples = scrape(app)
    assert value(samples, "tapbook_bookings_total", change="created") == 2
    assert value(samples, "tapbook_bookings_total", change="rescheduled") == 1
    assert value(samples, "tapbook_bookings_total", change="cancelled") == 1


def test_a_lapsed_hold_is_counted_when_a_script_purges_it(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    # what a hold that lapsed long ago leaves behind: an entry whose expiry (Redis ms) has passed
    db.hset("tapbook:{test}:occ:cut:20260114", "lapsed-token", "1768388400,1768390200,1")
    book(wa, at="12:30")  # the hold script of 12:00-12:30's day meets it and deletes it
    assert db.hget("tapbook:{test}:occ:cut:20260114", "lapsed-token") is None
    assert value(scrape(app), "tapbook_holds_expired_total") == 1


def test_session_migrations_and_commit_conflicts_are_metrics(redis_server: RedisServer) -> None:
    # a release-1 deployment: its booking index and a conversation in session layout 3, keyed by phone
    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    db.flushdb()
    db.zadd("tapbook:bk:{test}:bookings", {"K7Q2MX": 1768392000})
    db.hset("tapbook:session:{+34600111222}", mapping={"r": "4", "s": "M", "t": "2", "o": "nav1:book"})
    app = create_app(app_config(REDIS_URL=redis_server.url))
    WhatsApp(app.test_client(), "test-auth-token").send("hi")
    assert value(scrape(app), "tapbook_session_migrations_total", business="test") == 1
    assert ("tapbook_commit_conflicts_total", (("business", "test"),)) in scrape(app)


def test_unknown_names_still_count_and_probes_read_at_scrape_time(app: Flask, db: redis.Redis) -> None:
    stats = get_services(app).stats
    stats.incr("outbox.sent", 2)
    stats.incr("something.new")
    db.rpush("queue-test", "a", "b", "c")
    reads = []
    stats.add_probe("queue_depth", "Jobs waiting.", lambda: reads.append(1) or db.llen("queue-test"))

    def broken() -> float:
        raise redis.ConnectionError("down")

    stats.add_probe("broken", "A probe whose read fails.", broken)
    assert reads == []  # registering reads nothing
    samples = scrape(app)
    assert value(samples, "tapbook_outbox_messages_total", result="sent") == 2
    assert value(samples, "tapbook_events_total", name="something.new") == 1
    assert value(samples, "tapbook_queue_depth") == 3
    assert ("tapbook_broken", ()) not in samples  # skipped, and the scrape still answered
    assert stats.snapshot() == {"outbox.sent": 2, "something.new": 1}
    assert stats.get("never.counted") == 0


def test_the_outbox_worker_counts_where_every_web_worker_reads_them(redis_server: RedisServer) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    web = create_app(app_config(REDIS_URL=redis_server.url))
    worker = create_app(app_config(REDIS_URL=redis_server.url))  # another process, maybe another machine
    worker_stats = get_services(worker).stats
    worker_stats.incr("outbox.sent", 3)
    worker_stats.incr("outbox.failed")
    get_services(worker).outboxes["test"].enqueue_text("+34600111222", "Your booking is cancelled")
    get_services(worker).outboxes["test"].enqueue_text("+447700900123", "Your booking is cancelled")
    samples = scrape(web)
    assert value(samples, "tapbook_outbox_messages_total", result="sent") == 3
    assert value(samples, "tapbook_outbox_messages_total", result="failed") == 1
    assert value(samples, "tapbook_outbox_due_customers") == 2
    assert get_services(web).stats.get("outbox.failed") == 1
    for app in (web, worker):
        get_services(app).redis.close()


def test_apps_count_apart() -> None:
    one, two = Stats(), Stats()
    one.incr("taps.ok")
    assert (one.get("taps.ok"), two.get("taps.ok")) == (1, 0)


# -- under gunicorn ---------------------------------------------------------------------------
def metric_files(directory: Path) -> set[int]:
    """Process ids that wrote counter files."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("counter_*.db")}


def forged_total(base: str) -> float:
    status, body = get(base + "/metrics")
    assert status == 200
    return value(parse(body.decode()), "tapbook_webhooks_total", outcome="forged")


def test_gunicorn_workers_add_up(redis_server: RedisServer, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    env = {
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": "metricstest",
        "TWILIO_AUTH_TOKEN": "metrics-token",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # an earlier run's file: removed at start
    with gunicorn(tmp_path, **env) as server:
        url = server.base + "/webhook"
        form = twilio_form("+34600999888", "hi")

        def forge(_: int) -> int:
            return post(url, form, "forged")[0]

        sent = 0
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for _ in range(50):  # bounded: until both workers have counted something
                statuses = list(pool.map(forge, range(20)))
                assert set(statuses) == {403}
                sent += len(statuses)
                if len(metric_files(metrics_dir) & server.workers()) == 2:
                    break
        workers = server.workers()
        assert metric_files(metrics_dir) & workers == workers and len(workers) == 2, "one worker served everything"
        assert 1 not in metric_files(metrics_dir)
        for _ in range(6):  # whichever worker answers the scrape, it sees every worker's counts
            assert forged_total(server.base) == sent

        # a worker dies: gunicorn replaces it, and its counts stay in the total
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while victim in server.workers() or len(server.workers()) < 2:  # bounded poll of gunicorn's respawn
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.1)
        assert forged_total(server.base) == sent
        post(url, form, "forged")
        assert forged_total(server.base) == sent + 1

"""``flask doctor``: one line per check, against the real twilio client (over FakeTwilio) and a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from flask import Flask

from bot import create_app, get_services
from bot.channels.proactive import all_templates
from bot.commands.doctor import standalone
from bot.outbox.heartbeat import TTL, Heartbeats

from .catalogs import salon
from .conftest import need_redis_server
from .content_phone import PUBLIC, content_config, synced_worker
from .redis_server import RedisServer
from .twilio_fake import ACCOUNT_SID, FakeTwilio

NUMBER = "+34910000001"
SERVICE = "MG" + "c" * 32
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def durable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server set up as a deployment should be: AOF on, no eviction."""
    need_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("durable-redis"), "--appendonly", "yes")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake() -> FakeTwilio:
    """The account: the business's number, its webhook pointing at this deployment."""
    fake = FakeTwilio()
    fake.phone_numbers[NUMBER] = {"sms_url": f"{PUBLIC}/webhook"}
    return fake


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    made: list[Flask] = []
    yield made
    for app in made:
        get_services(app).redis.close()


def build(apps: list[Flask], fake: FakeTwilio, server: RedisServer, **overrides: Any) -> Flask:
    """A Content API deployment of one business written to at NUMBER, on the host's clock."""
    settings: dict[str, Any] = {"CLOCK": None, "TWILIO_FROM": None, "CATALOG": salon(numbers=(NUMBER,))}
    app = create_app(content_config(fake, REDIS_URL=server.url, **{**settings, **overrides}))
    apps.append(app)
    return app


def ready(app: Flask) -> None:
    """Templates synced and approved, and a worker's heartbeat: what a finished deployment has."""
    worker = synced_worker(app)
    services = get_services(app)
    for template in all_templates(services.catalogs):
        services.approvals.record(template.friendly_name, "approved")
    worker.beat()


@pytest.fixture
def good(apps: list[Flask], fake: FakeTwilio, durable: RedisServer) -> Flask:
    redis.Redis.from_url(durable.url).flushdb()
    app = build(apps, fake, durable)
    ready(app)
    return app


def doctor(app: Flask, *args: str) -> tuple[int, list[str]]:
    result = app.test_cli_runner().invoke(args=["doctor", *args])
    return result.exit_code, result.output.splitlines()


def failures(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.startswith("  ✗")]


def line_of(lines: list[str], start: str) -> str:
    (found,) = [line.strip() for line in lines if line.strip().startswith(start)]
    return found


def test_a_good_set_up_passes_every_check(good: Flask, fake: FakeTwilio) -> None:
    code, lines = doctor(good)
    assert code == 0, "\n".join(lines)
    assert [line for line in lines if not line.startswith("  ")] == [
        "Settings",
        "Redis",
        "Twilio",
        "Templates",
        "Outbox",
        "Clock",
        lines[-1],
    ]
    assert all(line[2] in "✓✗!" and line[3] == " " for line in lines if line.startswith("  "))
    assert failures(lines) == [] and not [line for line in lines if line.startswith("  !")]
    assert lines[-1].startswith("0 failed, 0 warnings, ")
    output = "\n".join(lines)
    for expected in (
        "✓ settings valid: 1 business(es), Redis server, replies as Content API buttons (outbox worker)",
        "✓ catalog test (<catalog test>) valid: 2 service(s), languages en, es, pt, answers +34910000001",
        "✓ numbers unique across businesses: 1 number(s), each claimed once",
        "✓ durability: appendonly yes, maxmemory-policy noeviction",
        f'✓ Twilio credentials valid: account {ACCOUNT_SID} "Test Salon\'s account", active',
        "✓ sender whatsapp:+34910000001 (test): a number of the account",
        f"✓ webhook of +34910000001 (test): {PUBLIC}/webhook",
        "✓ content templates synced: all 22 in tapbook:templates",
        "✓ templates of test outside the 24-hour window: 6 approved by WhatsApp",
        "✓ outbox worker alive: 1 (",
        "✓ outbox depth: 0 customer(s) with unsent messages",
        "✓ clock: the app's and Redis's agree within",
    ):
        assert expected in output, expected
    assert line_of(lines, "✓ Redis reachable:").startswith("✓ Redis reachable: standalone server redis://127.0.0.1:")
    assert not fake.surprises


@pytest.mark.parametrize(
    ("url", "passes"),
    [
        (f"{PUBLIC}/webhook?lang=es", True),  # a language the business speaks
        ("HTTPS://Bot.Example.com:443/webhook", True),
        (f"{PUBLIC}/webhook?lang=de", False),
        (f"{PUBLIC}/webhook?lang=es&x=1", False),
        (f"{PUBLIC}/webhook/", False),
        ("", False),
    ],
)
def test_the_webhook_may_carry_a_language_the_business_speaks(
    good: Flask, fake: FakeTwilio, url: str, passes: bool
) -> None:
    fake.phone_numbers[NUMBER]["sms_url"] = url
    code, lines = doctor(good)
    assert (code == 0) is passes, "\n".join(lines)
    if not passes:
        shown = url or "none"
        assert line_of(lines, "✗ webhook of").startswith(f"✗ webhook of +34910000001 (test): Twilio has {shown} — fix:")


def test_a_wrong_token_is_a_failed_credentials_check(apps: list[Flask], durable: RedisServer, fake: FakeTwilio) -> None:
    redis.Redis.from_url(durable.url).flushdb()
    fake.refuse_credentials = True  # Twilio answers 401 to any other token
    app = build(apps, fake, durable, TWILIO_AUTH_TOKEN="a-token-twilio-does-not-know")
    code, lines = doctor(app)
    assert code == 1
    assert line_of(lines, "✗ Twilio") == (
        "✗ Twilio credentials: Twilio answered 401 (20003): Unable to fetch record: Authenticate"
        " — fix: copy TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN from the Twilio Console (Account info)"
    )
    assert [r.url.split("/")[-1] for r in fake.requests] == [f"{fake.requests[0].url.split('/')[-1]}"]  # nothing more


def test_a_number_whose_webhook_points_elsewhere_says_what_twilio_has_and_the_fix(
    good: Flask, fake: FakeTwilio
) -> None:
    fake.phone_numbers[NUMBER] = {"sms_url": "https://old-bot.example.net/sms"}
    code, lines = doctor(good)
    assert code == 1
    assert failures(lines) == [
        "✗ webhook of +34910000001 (test): Twilio has https://old-bot.example.net/sms — fix: set the number's"
        " “A message comes in” (Console → Phone Numbers → +34910000001) to https://bot.example.com/webhook"
    ]


def test_a_number_called_with_get_fails(good: Flask, fake: FakeTwilio) -> None:
    fake.phone_numbers[NUMBER]["sms_method"] = "GET"
    assert failures(doctor(good)[1]) == [
        f"✗ webhook of +34910000001 (test): Twilio calls {PUBLIC}/webhook with GET — fix: set the number's"
        " “A message comes in” (Console → Phone Numbers → +34910000001) to HTTP POST"
    ]


def test_a_number_the_account_does_not_have(good: Flask, fake: FakeTwilio) -> None:
    fake.phone_numbers.clear()
    code, lines = doctor(good)
    assert code == 1
    (line,) = failures(lines)
    assert line.startswith("✗ sender whatsapp:+34910000001 (test): not a phone number of account AC")


def test_without_public_base_url_the_signature_guidance_is_shown(
    apps: list[Flask], durable: RedisServer, fake: FakeTwilio
) -> None:
    redis.Redis.from_url(durable.url).flushdb()
    app = build(apps, fake, durable, PUBLIC_BASE_URL=None)  # WEBHOOK_HOSTS=bot.example.com only
    ready(app)
    fake.phone_numbers[NUMBER]["sms_url"] = "https://elsewhere.example.com/webhook"
    code, lines = doctor(app)
    assert code == 1
    assert line_of(lines, "! webhook signatures") == (
        "! webhook signatures: signatures are checked against the URL each request arrives with (WEBHOOK_HOSTS)"
        " — fix: behind a proxy or ngrok? set TRUSTED_PROXY_HOPS, or set PUBLIC_BASE_URL to the https URL Twilio calls"
    )
    assert line_of(lines, "✗ webhook of").endswith(
        "to https://bot.example.com/webhook; set PUBLIC_BASE_URL to the https URL Twilio calls"
    )


def test_a_messaging_service_with_its_own_webhook_and_status_callback(
    apps: list[Flask], durable: RedisServer, fake: FakeTwilio
) -> None:
    redis.Redis.from_url(durable.url).flushdb()
    fake.messaging_services[SERVICE] = {
        "friendly_name": "Salon",
        "phone_numbers": [NUMBER],
        "use_inbound_webhook_on_number": False,
        "inbound_request_url": "https://old-bot.example.net/sms",
    }
    app = build(apps, fake, durable, CATALOG=salon(numbers=(NUMBER,), sender=SERVICE))
    ready(app)
    code, lines = doctor(app)
    assert code == 1
    assert failures(lines) == [
        "✗ webhook of +34910000001 (test): Twilio has https://old-bot.example.net/sms — fix: set Messaging Service"
        f" {SERVICE} → Integration → “Send a webhook” to https://bot.example.com/webhook"
    ]
    assert f"✓ sender {SERVICE} (test): Messaging Service 'Salon'" in lines[lines.index("Twilio") + 2]
    assert line_of(lines, "! status callback") == (
        f"! status callback of {SERVICE}: not set (the worker's messages carry their own)"
        f" — fix: set it to {PUBLIC}/webhook/status"
    )

    fake.messaging_services[SERVICE].update(
        inbound_request_url=f"{PUBLIC}/webhook?lang=pt", status_callback=f"{PUBLIC}/webhook/status"
    )
    code, lines = doctor(app)
    assert code == 0, "\n".join(lines)
    assert f"  ✓ webhook of +34910000001 (test): {PUBLIC}/webhook?lang=pt" in lines
    assert f"  ✓ status callback of {SERVICE}: {PUBLIC}/webhook/status" in lines

    fake.messaging_services[SERVICE]["status_callback"] = "https://old-bot.example.net/status"
    assert failures(doctor(app)[1]) == [
        f"✗ status callback of {SERVICE}: Twilio has https://old-bot.example.net/status"
        f" — fix: set it to {PUBLIC}/webhook/status (or clear it)"
    ]
    assert not fake.surprises


def test_a_missing_messaging_service_fails(apps: list[Flask], durable: RedisServer, fake: FakeTwilio) -> None:
    redis.Redis.from_url(durable.url).flushdb()
    app = build(apps, fake, durable, CATALOG=salon(numbers=(NUMBER,), sender=SERVICE))
    ready(app)
    (line,) = failures(doctor(app)[1])
    assert line.startswith(f"✗ sender {SERVICE} (test): no such Messaging Service in AC")


def test_a_template_rejected_by_whatsapp_fails(good: Flask, fake: FakeTwilio) -> None:
    sids = {body["friendly_name"]: sid for sid, body in fake.contents.items()}
    for name in ("tapbook_reminder_en_v1", "tapbook_cancelled_en_v1", "tapbook_cancelled_es_v1"):
        fake.approvals[sids[name]] = ("approved", "")
    fake.approvals[sids["tapbook_reminder_es_v1"]] = ("rejected", "INVALID_FORMAT")
    fake.approvals[sids["tapbook_reminder_pt_v1"]] = ("pending", "")
    fake.submissions[sids["tapbook_cancelled_pt_v1"]] = {"name": "tapbook_cancelled_pt_v1", "category": "UTILITY"}
    assert doctor(good)[0] == 0  # as last recorded: approved
    code, lines = doctor(good, "--fresh")  # as Twilio reads it now
    assert code == 1
    assert failures(lines) == [
        "✗ templates of test outside the 24-hour window: rejected by WhatsApp: tapbook_reminder_es_v1 (INVALID_FORMAT)"
        " — fix: read WhatsApp's reason in the Twilio Console (Content Template Builder) and appeal, or change the"
        " text and submit it again"
    ]
    what = "! templates of test outside the 24-hour window"
    waiting = (
        "until approved they reach only customers who wrote in the last 24 hours"
        " — fix: wait (flask --app wsgi templates list shows the latest)"
    )
    assert [line.strip() for line in lines if line.startswith("  ! templates")] == [
        f"{what}: pending, waiting for WhatsApp: tapbook_reminder_pt_v1; {waiting}",
        f"{what}: received, waiting for WhatsApp: tapbook_cancelled_pt_v1; {waiting}",
    ]
    assert "  ✓ templates of test outside the 24-hour window: 3 approved by WhatsApp" in lines
    recorded = get_services(good).approvals.get("tapbook_reminder_es_v1")
    assert recorded is not None and recorded.status == "rejected"  # what --fresh read is recorded
    assert not fake.surprises


def test_templates_not_synced_fail(apps: list[Flask], durable: RedisServer, fake: FakeTwilio) -> None:
    redis.Redis.from_url(durable.url).flushdb()
    app = build(apps, fake, durable)
    code, lines = doctor(app)
    assert code == 1
    assert line_of(lines, "✗ content templates synced") == (
        "✗ content templates synced: 22 of 22 not synced: tapbook_buttons1_v1, tapbook_buttons2_v1,"
        " tapbook_buttons3_v1 and 19 more — fix: flask --app wsgi templates sync"
    )
    assert line_of(lines, "✗ templates of test").startswith(
        "✗ templates of test outside the 24-hour window: not synced: tapbook_reminder_en_v1, "
    )


def test_redis_without_aof_or_with_eviction_fails(
    apps: list[Flask], own_redis_server: RedisServer, fake: FakeTwilio
) -> None:
    app = build(apps, fake, own_redis_server)  # RedisServer's defaults: no AOF, no save points
    ready(app)
    code, lines = doctor(app)
    assert code == 1
    assert failures(lines) == [
        "✗ durability: appendonly is no and there are no save points: a restart loses every booking"
        " — fix: set appendonly yes (CONFIG SET, and in redis.conf)"
    ]
    db = redis.Redis.from_url(own_redis_server.url)
    db.config_set("save", "900 1")  # snapshots: the start-up check is content, the doctor is not
    db.config_set("maxmemory-policy", "allkeys-lru")
    assert failures(doctor(app)[1]) == [
        "✗ durability: maxmemory-policy is allkeys-lru (maxmemory 0): under memory pressure Redis may evict bookings"
        " — fix: set maxmemory-policy noeviction (CONFIG SET, and in redis.conf)",
        "✗ durability: appendonly is no: a crash loses the bookings written since the last snapshot (save 900 1)"
        " — fix: set appendonly yes (CONFIG SET appendonly yes, and in redis.conf)",
    ]
    db.close()


def test_no_worker_fails_and_a_running_one_passes(apps: list[Flask], durable: RedisServer, fake: FakeTwilio) -> None:
    redis.Redis.from_url(durable.url).flushdb()
    app = build(apps, fake, durable)
    ready(app)
    services = get_services(app)
    services.redis.delete(services.shared_keys.worker_heartbeats)
    code, lines = doctor(app)
    assert code == 1
    assert failures(lines) == [
        f"✗ outbox worker alive: no heartbeat in the last {TTL} s — fix: start one: flask --app wsgi worker"
        " (the Procfile's worker process), and keep it running"
    ]

    worker = synced_worker(app)
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop,), kwargs={"idle": 0.05})
    running.start()
    heartbeats = Heartbeats(services.redis, services.shared_keys.worker_heartbeats)
    try:
        deadline = time.monotonic() + 10
        while not heartbeats.all() and time.monotonic() < deadline:  # the loop's first pass beats
            time.sleep(0.02)
        code, lines = doctor(app)
        assert code == 0, "\n".join(lines)
        assert line_of(lines, "✓ outbox worker alive").startswith(f"✓ outbox worker alive: 1 ({os.uname().nodename}")
    finally:
        stop.set()
        worker.wake()
        running.join(timeout=10)
    assert heartbeats.all() == []  # a clean stop says goodbye at once
    assert doctor(app)[0] == 1


def test_an_overdue_outbox_is_a_warning(good: Flask) -> None:
    services = get_services(good)
    outbox = services.outboxes["test"]
    now_ms = int(time.time() * 1000)
    services.redis.zadd(outbox.keys.due, {"+34600111222": now_ms - 5 * 60_000, "+34600111333": now_ms})
    code, lines = doctor(good)
    assert code == 0
    assert line_of(lines, "! outbox depth").startswith(
        "! outbox depth: 2 customer(s) with unsent messages, one due 5 min "
    )


def test_a_skewed_clock_fails(apps: list[Flask], durable: RedisServer, fake: FakeTwilio) -> None:
    redis.Redis.from_url(durable.url).flushdb()
    app = build(apps, fake, durable, CLOCK=lambda: datetime.now(UTC) + timedelta(seconds=5))
    ready(app)
    code, lines = doctor(app)
    assert code == 1
    (line,) = failures(lines)
    assert line.startswith("✗ clock: the app's clock is 5.0 s ahead of Redis's — fix: synchronise")


def test_on_the_embedded_store_redis_fails_and_shared_state_is_not_checked(fake: FakeTwilio) -> None:
    app = create_app(content_config(fake, CATALOG=salon(numbers=(NUMBER,)), TWILIO_FROM=None))
    code, lines = doctor(app)
    assert code == 1
    assert line_of(lines, "✗ Redis").endswith("— fix: set REDIS_URL (or REDIS_CLUSTER_NODES, or REDIS_SENTINELS)")
    assert "  ! outbox: not checked: no shared Redis to read" in lines


def test_twiml_mode_checks_no_twilio_templates_or_worker(apps: list[Flask], durable: RedisServer) -> None:
    redis.Redis.from_url(durable.url).flushdb()
    from .conftest import app_config

    app = create_app(app_config(REDIS_URL=durable.url, CLOCK=None))
    apps.append(app)
    code, lines = doctor(app)
    assert code == 0, "\n".join(lines)
    assert "  ✓ content templates: not used (replies are TwiML)" in lines
    assert "  ✓ outbox worker: not needed (replies are TwiML)" in lines
    assert line_of(lines, "! Twilio").startswith("! Twilio: TWILIO_ACCOUNT_SID is not set")


def test_redis_down_is_one_failure_not_a_traceback(
    apps: list[Flask], own_redis_server: RedisServer, fake: FakeTwilio
) -> None:
    app = build(apps, fake, own_redis_server)
    own_redis_server.stop()
    code, lines = doctor(app)
    assert code == 1
    assert line_of(lines, "✗ Redis reachable").startswith("✗ Redis reachable: ConnectionError:")
    assert "  ! templates: not checked: no shared Redis to read" in lines


def test_settings_that_do_not_build_an_app_are_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "http://not-redis.example.com")
    result = CliRunner().invoke(standalone, [])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Settings",
        "  ✗ settings valid: REDIS_URL: must start with redis://, rediss:// or unix:// (a cluster: redis+cluster://,"
        " rediss+cluster://) — fix: correct REDIS_URL (environment or .env)",
        "1 failed, 0 warnings, 0 passed",
    ]


def test_python_m_runs_the_doctor_without_the_app_loading_first(tmp_path: Path) -> None:
    catalog = tmp_path / "a.toml"
    catalog.write_text("not = [valid")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "BOT_CATALOG": str(catalog),
        "TWILIO_AUTH_TOKEN": "t",
    }
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "bot.commands.doctor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[1].startswith("  ✗ catalogs valid: BOT_CATALOG: ")
    assert "Traceback" not in done.stderr


def test_a_business_written_to_through_a_messaging_services_numbers(
    apps: list[Flask], durable: RedisServer, fake: FakeTwilio
) -> None:
    """No numbers in the catalog: the service's own webhook, or each of its numbers' when it defers to them."""
    redis.Redis.from_url(durable.url).flushdb()
    fake.messaging_services[SERVICE] = {
        "phone_numbers": [NUMBER],
        "use_inbound_webhook_on_number": True,
        "status_callback": f"{PUBLIC}/webhook/status",
    }
    app = build(apps, fake, durable, CATALOG=salon(sender=SERVICE))
    ready(app)
    code, lines = doctor(app)
    assert code == 0, "\n".join(lines)
    assert f"  ✓ webhook of {NUMBER} (test, in {SERVICE}): {PUBLIC}/webhook" in lines

    fake.messaging_services[SERVICE].update(use_inbound_webhook_on_number=False, inbound_request_url=None)
    assert failures(doctor(app)[1]) == [
        f"✗ webhook of Messaging Service {SERVICE} (test): Twilio has none"
        f" — fix: set the service's Integration → “Send a webhook” to {PUBLIC}/webhook"
    ]
    assert not fake.surprises

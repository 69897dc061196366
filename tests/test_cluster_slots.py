"""Every script and every MULTI transaction the app runs keeps its keys in one Redis Cluster slot.

Redis Cluster runs a script or a transaction only when all its keys hash to one slot. This
test finds the app's scripts and transactions generically, so a new one is covered without
editing it: it records every ``register_script`` while the app is built, and every
``EVAL``/``EVALSHA`` and ``MULTI`` pipeline redis-py sends (directly or pipelined) while the
whole product runs against a real redis-server: a booking, a move, my bookings, a cancel
(TwiML), a failed and a good login to the owner's page (the login limiter's scripts), a
conversation in Content API mode through the outbox worker, a status callback, a cancel by
the business, and ``bookings migrate`` of release-1 data. Then every recorded call must name at
least one key and all its keys must share a slot (the real server says which arguments are
keys, ``COMMAND GETKEYS``), and every script registered at start-up must have run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from bot import create_app, get_services
from bot.blocks import add_block

from .bookings import book, cancel, reschedule
from .conftest import TOKEN, Clock, app_config
from .content_phone import ContentCustomer, content_config, synced_worker
from .redis_server import RedisServer
from .test_outbox import status_callback
from .test_upgrade import release_1_keys
from .twilio_fake import TOO_MANY, FakeTwilio
from .whatsapp import WhatsApp

OWNER_PASSWORD = "owner-secret"
SCRIPT_COMMANDS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}


@dataclass
class Recorder:
    """What the app asked of Redis: scripts registered, script calls and transactions sent."""

    on: bool = False
    registered: dict[str, str] = field(default_factory=dict)  # sha -> first line of the script
    scripts: list[tuple[str, ...]] = field(default_factory=list)  # EVALSHA/EVAL argument tuples
    transactions: list[list[tuple[Any, ...]]] = field(default_factory=list)

    def command(self, args: tuple[Any, ...]) -> None:
        if self.on and str(args[0]).upper() in SCRIPT_COMMANDS:
            self.scripts.append(tuple(str(a) for a in args))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Watches redis-py's client methods; every command still goes to the real server."""
    rec = Recorder()
    register, execute, pipeline_execute = (
        redis.Redis.register_script,
        redis.Redis.execute_command,
        redis.client.Pipeline.execute,
    )

    def recording_register(self: redis.Redis, script: str) -> Any:
        registered = register(self, script)
        if rec.on:
            rec.registered[registered.sha] = script.strip().splitlines()[0]
        return registered

    def recording_execute(self: redis.Redis, *args: Any, **options: Any) -> Any:
        rec.command(args)
        return execute(self, *args, **options)

    def recording_pipeline_execute(self: redis.client.Pipeline, raise_on_error: bool = True) -> Any:
        for args, _ in self.command_stack:
            rec.command(args)
        if rec.on and (self.transaction or self.explicit_transaction) and self.command_stack:
            rec.transactions.append([args for args, _ in self.command_stack])
        return pipeline_execute(self, raise_on_error)

    monkeypatch.setattr(redis.Redis, "register_script", recording_register)
    monkeypatch.setattr(redis.Redis, "execute_command", recording_execute)
    monkeypatch.setattr(redis.client.Pipeline, "execute", recording_pipeline_execute)
    yield rec
    rec.on = False


#: an afternoon off (Tue 20 Jan 2026, 14:00-16:00 UTC)
TIME_OFF = (datetime(2026, 1, 20, 14, tzinfo=UTC), datetime(2026, 1, 20, 16, tzinfo=UTC))


def run_the_product(server: RedisServer, rec: Recorder) -> None:
    """Every path that writes: bookings in TwiML mode, then the outbox in Content API mode."""
    clock = Clock()
    fake = FakeTwilio()
    rec.on = True
    apps = [create_app(app_config(REDIS_URL=server.url, CLOCK=clock, ADMIN_PASSWORD=OWNER_PASSWORD))]
    apps.append(create_app(content_config(fake, REDIS_URL=server.url, CLOCK=clock)))
    plain, content = apps
    ana = WhatsApp(plain.test_client(), TOKEN, phone="+34600111222", name="Ana")
    book(ana, at="12:00")
    reschedule(ana, "Wed 14 Jan 12:00", "Thu 15 Jan", "10:00")
    cancel(ana, "Thu 15 Jan 10:00")
    kept = book(ana, day="Sat 17 Jan", at="10:00")
    WhatsApp(plain.test_client(), TOKEN, phone="+34600999888", name="Cy").send("stop")  # an opt-out
    WhatsApp(plain.test_client(), TOKEN, phone="+99912345678", name="Preview").send("hi")  # the /try page's phone
    owner = plain.test_client()
    assert owner.get("/admin", auth=("owner", "a-wrong-password")).status_code == 401  # counted by the limiter
    assert owner.get("/admin", auth=("owner", OWNER_PASSWORD)).status_code == 200
    assert plain.test_cli_runner().invoke(args=["calendar", "url"]).exit_code == 0  # the owner's calendar feed

    bea = ContentCustomer(content, fake, synced_worker(content), phone="+34600333444")
    bea.pick(bea.send("hi"), "Book")
    message = fake.accepted[-1]
    assert status_callback(content, message["StatusCallback"], message["sid"], "delivered") == 204
    get_services(content).outboxes["test"].enqueue_text("+34600333444", "A notice from the salon")
    fake.plan.append(TOO_MANY)  # a retry written down
    get_services(content).outboxes["test"].enqueue_text("+34600555666", "To someone who never wrote")
    assert synced_worker(content).run_once() == 1  # the retry waits; the other is given up (outside the window)
    synced_worker(content).beat()  # a running worker's heartbeat (flask doctor reads it)
    on_redis_time = create_app(content_config(fake, REDIS_URL=server.url, CLOCK=clock, OUTBOX_CLOCK=None))
    apps.append(on_redis_time)
    get_services(on_redis_time).outboxes["test"].clock()  # the outbox reads the server's clock
    get_services(content).outboxes["test"].unclaim("+34600333444", 0)  # a claim that found its phone busy
    get_services(content).outboxes["test"].release("+34600333444", "a-drain-that-failed")
    content_outbox = get_services(content).outboxes["test"]
    clock.advance(days=2)  # Sat 17 Jan's reminder is due: fired by a worker's claim
    fired = synced_worker(content)
    phones, reminders, _ = content_outbox.claim_all(content_outbox.now_ms(), 10, 15_000, reminders=10)
    assert [fired.fire(member, content_outbox) for member in reminders] == ["queued"]
    clock.advance(days=-2)
    assert content.test_cli_runner().invoke(args=["bookings", "cancel", kept, "--yes"]).exit_code == 0
    book(ana, day="Mon 19 Jan", at="10:00")  # its reminder stays scheduled
    add_block(get_services(content), get_services(content).directory.only, *TIME_OFF, "time off")  # type: ignore[arg-type]
    assert content.test_cli_runner().invoke(args=["templates", "sync"]).exit_code == 0  # submitted for approval
    release_1_keys(get_services(content).redis)  # something for the upgrade to move
    assert content.test_cli_runner().invoke(args=["bookings", "migrate"]).exit_code == 0
    clock.advance(days=367)  # the first bookings past their retention, not the one kept
    assert plain.test_cli_runner().invoke(args=["customers", "retention"]).exit_code == 0
    rec.on = False
    for app in apps:
        get_services(app).redis.close()


def slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def test_every_script_and_transaction_keeps_its_keys_in_one_slot(redis_server: RedisServer, recorder: Recorder) -> None:
    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    db.flushdb()
    run_the_product(redis_server, recorder)

    assert recorder.registered and recorder.scripts  # the recording works (the running bot sends no MULTI today)
    ran = set()
    for args in recorder.scripts:
        command, sha_or_body, numkeys = args[0].upper(), args[1], int(args[2])
        keys = list(args[3 : 3 + numkeys])
        name = recorder.registered.get(sha_or_body, sha_or_body[:60])
        assert keys, f"{command} of {name!r} names no key: Redis Cluster would run it on any node"
        assert len(slots(keys)) == 1, f"{command} of {name!r} spans slots: {keys}"
        ran.add(sha_or_body)
    never_ran = {sha: name for sha, name in recorder.registered.items() if sha not in ran}
    assert not never_ran, f"scripts registered but not exercised here (extend run_the_product): {never_ran}"

    for commands in recorder.transactions:
        keys = [str(key) for args in commands for key in db.command_getkeys(*args)]
        assert keys and len(slots(keys)) == 1, f"a MULTI transaction spans slots: {commands}"
    db.close()

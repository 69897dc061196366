"""Reminders (issue 15): what firing and sending due reminders costs. One command:
``.venv/bin/python bench/reminders.py`` (under a minute; ``--reminders N``).

Starts a real ``redis-server``, builds the app in Content API mode in this process with the
network edge faked (``tests/twilio_fake.py``: the real twilio client builds every request, the
fake answers at once), books ``--reminders`` bookings two days ahead (08:00-20:00) with the owner's booking
script (each schedules its 24 h reminder, as a customer's booking does), moves the app's clock to
when they are due, and runs the worker (``--pool 1``: one at a time, so the CPU per reminder is
the worker's own) until every reminder was fired and sent. Prints, for the same run: reminders/s,
the worker's CPU per reminder (firing and sending apart), and Redis commands and round trips per
reminder (``INFO commandstats``). Then the same for as many plain replies (the outbox's cost
without the reminder), for comparison. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.conversations import CLINIC  # noqa: E402
from bot import create_app, get_services  # noqa: E402
from bot.booking.catalog import load_catalog  # noqa: E402
from bot.booking.records import booking_ref, hold_token  # noqa: E402
from bot.booking.requests import book_request  # noqa: E402
from bot.channels import proactive  # noqa: E402
from bot.i18n import Catalogs  # noqa: E402
from tests.conftest import Clock  # noqa: E402
from tests.content_phone import content_config, synced_worker  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.twilio_fake import FakeTwilio  # noqa: E402


def commands(db: redis.Redis) -> int:
    """Commands Redis ran so far (scripts count once, with the commands they call)."""
    stats: dict[str, Any] = db.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))


class TripCounter:
    """Round trips the app's client makes: each command sent on its own, each pipeline once."""

    def __init__(self, client: redis.Redis) -> None:
        self.trips = 0
        command, pipeline = client.execute_command, client.pipeline

        def counted_command(*args: Any, **options: Any) -> Any:
            self.trips += 1
            return command(*args, **options)

        def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            execute = pipe.execute

            def counted_execute(*a: Any, **k: Any) -> Any:
                self.trips += 1
                return execute(*a, **k)

            pipe.execute = counted_execute  # type: ignore[method-assign]
            return pipe

        client.execute_command = counted_command  # type: ignore[method-assign]
        client.pipeline = counted_pipeline  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reminders", type=int, default=2000)
    args = parser.parse_args()
    catalog = load_catalog(CLINIC, languages=Catalogs.load().languages)
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(Path(workdir))
        server.start()
        try:
            run(server, catalog, args.reminders)
        finally:
            server.stop()


def run(server: RedisServer, catalog: Any, count: int) -> None:
    db = redis.Redis.from_url(server.url, decode_responses=True)
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    fake = FakeTwilio(clock=clock)
    app = create_app(content_config(fake, REDIS_URL=server.url, CLOCK=clock, CATALOG=catalog))
    services = get_services(app)
    (shop,) = services.directory
    business = catalog.business
    day = (clock() + timedelta(days=2)).astimezone(business.timezone).date()
    opening = datetime.combine(day, datetime.min.time(), business.timezone) + timedelta(hours=8)
    started = time.monotonic()
    for n in range(count):  # 64 places a half hour, 08:00-20:00, then the next service
        slot = n // 64
        service = catalog.services[(slot // 24) % len(catalog.services)]
        start = (opening + timedelta(minutes=30 * (slot % 24))).astimezone(UTC)
        token = hold_token(f"SMbench{n}")
        request = book_request(
            business, service, start, token=token, ref=booking_ref(token, 0), phone=f"+1555{n:07d}",
            name="Bench", language="en", now=clock(),
        )  # fmt: skip
        written = shop.bookings.write(request)
        assert written.applied, written
    booked_s = time.monotonic() - started
    worker = synced_worker(app)
    for language in services.catalogs.languages:
        services.approvals.record(proactive.friendly_name(proactive.REMINDER, language), "approved")
    clock.now = (opening + timedelta(hours=11, minutes=45) - timedelta(days=1)).astimezone(UTC)  # all due
    worker.sweep()  # its first pass's sweep (every 5 minutes) is not what a reminder costs
    db.config_resetstat()
    trips = TripCounter(services.redis)
    began, cpu = time.monotonic(), time.process_time()
    outbox = services.outboxes[shop.id]
    fired_cpu = 0.0
    while True:
        _, due, _ = outbox.claim_all(outbox.now_ms(), 0, worker.lease_ms, reminders=200)  # reminders only
        if not due:
            break
        t0 = time.process_time()
        for member in due:
            worker.fire(member, outbox)
        fired_cpu += time.process_time() - t0
    fire_commands, fire_trips = commands(db), trips.trips
    while worker.run_once():
        pass
    seconds, cpu = time.monotonic() - began, time.process_time() - cpu
    sent = sum(1 for m in fake.accepted if m.get("ContentSid"))
    total_commands, total_trips = commands(db), trips.trips
    counts = db.hgetall(shop.keys.reminder_counts)
    print(f"reminders: {count} booked in {booked_s:.1f} s; fired and sent {sent} in {seconds:.2f} s", end="")
    print(f" ({sent / seconds:.0f}/s)")
    print(f"  worker CPU per reminder: {1000 * cpu / sent:.2f} ms (firing {1000 * fired_cpu / sent:.2f} ms)")
    print(
        f"  Redis per reminder: firing {fire_commands / sent:.1f} commands in {fire_trips / sent:.2f} round trips; "
        f"fired and sent {total_commands / sent:.1f} commands in {total_trips / sent:.2f} round trips"
    )
    print(f"  counted: {dict(sorted(counts.items()))}")

    # the same number of plain notices, for the outbox's own cost
    for n in range(count):  # each customer wrote a moment ago (a notice goes only inside the window)
        db.set(shop.keys.window(f"+1555{n:07d}"), outbox.now_ms())
        outbox.enqueue_text(f"+1555{n:07d}", "A notice")
    db.config_resetstat()
    trips.trips = 0
    began, cpu = time.monotonic(), time.process_time()
    while worker.run_once():
        pass
    seconds, cpu = time.monotonic() - began, time.process_time() - cpu
    plain = sum(1 for m in fake.accepted if m.get("Body") == "A notice")
    print(
        f"plain messages (the outbox alone): {plain} in {seconds:.2f} s ({plain / seconds:.0f}/s), "
        f"worker CPU {1000 * cpu / max(plain, 1):.2f} ms each, {commands(db) / max(plain, 1):.1f} Redis commands in "
        f"{trips.trips / max(plain, 1):.2f} round trips each"
    )
    services.redis.close()
    db.close()


if __name__ == "__main__":
    main()

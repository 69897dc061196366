"""Upgrading a running release-1 deployment in place, on a real Redis: nothing is lost.

The keys are release 1's own: ``tests/fixtures/release1.json`` was written by release 1's code
(``tests/fixtures/make_release1.py``) in the middle of a working day: bookings made, moved and
cancelled, a time held at the summary, conversations at several steps and in Portuguese, a reply
waiting in an outbox. Hold expiries and times to live are replayed relative to now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import Result
from flask import Flask

from bot import create_app, get_services
from bot.errors import ConfigError
from bot.sessions import Session
from bot.upgrade import migrate

from .catalogs import salon
from .concurrency import run_together
from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .whatsapp import WhatsApp

FIXTURE = Path(__file__).with_name("fixtures") / "release1.json"
ANA, BOB, CARLA, DAN, EVE, FAY = (f"+3460000000{n}" for n in range(1, 7))
#: what release 1 leaves that this release no longer reads: reply records (60 s) and delivery records
TRANSIENT = (":msg:{", ":delivery:{", ":status:")


def _redis_ms(db: Any) -> int:
    seconds, micros = db.time()
    return int(seconds) * 1000 + int(micros) // 1000


def release_1_keys(db: Any, fixture: Path = FIXTURE) -> dict[str, Any]:
    """Write release 1's keys into ``db`` (a client of a server or of a cluster); returns the dump."""
    dump = json.loads(fixture.read_text())
    shift = _redis_ms(db) - dump["redis_ms"]
    for key, item in dump["keys"].items():
        kind, value, pttl = item["type"], item["value"], item["pttl"]
        if kind == "hash":
            if ":occ:" in key:  # hold expiries are Redis-clock stamps: as far ahead as they were
                value = {e: _shifted(v, shift) for e, v in value.items()}
            db.hset(key, mapping=value)
        elif kind == "zset":
            db.zadd(key, dict(value))
        elif kind == "stream":
            for entry_id, fields in value:
                db.xadd(key, fields, id=entry_id)
        else:
            db.set(key, value)
        if pttl > 0:
            db.pexpire(key, pttl)
    return dump  # type: ignore[no-any-return]


def _shifted(entry: str, shift: int) -> str:
    start, end, expires, *count = entry.split(",")
    return ",".join([start, end, str(int(expires) + shift) if expires != "0" else "0", *count])


def release_1_left(db: redis.Redis) -> list[str]:
    """Keys of release 1 that still hold something this release reads."""
    return sorted(
        key
        for key in db.scan_iter("tapbook:*", count=1000)
        if key.startswith(("tapbook:bk:", "tapbook:session:{", "tapbook:profile:{", "tapbook:outbox:{"))
        or key.startswith(("tapbook:seen:{", "tapbook:outbox-due"))
    )


@pytest.fixture
def db(redis_server: RedisServer) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    return client


@pytest.fixture
def upgraded_app(db: redis.Redis, redis_server: RedisServer) -> tuple[Flask, dict[str, Any]]:
    """Release 1's keys, then this release started on them (as after a deploy)."""
    dump = release_1_keys(db)
    return create_app(app_config(REDIS_URL=redis_server.url)), dump


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args))


def customer(app: Flask, phone: str, name: str = "") -> WhatsApp:
    return WhatsApp(app.test_client(), TOKEN, phone=phone, name=name)


def exported(app: Flask) -> dict[str, dict[str, str]]:
    result = run(app, "bookings", "export", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    return {record["ref"]: record for record in records}


def test_every_booking_and_conversation_survives_the_upgrade(
    upgraded_app: tuple[Flask, dict[str, Any]], db: redis.Redis
) -> None:
    app, dump = upgraded_app
    shop = get_services(app).business()
    assert shop.upgrading
    refs = {key.rsplit(":", 1)[1]: value["value"] for key, value in dump["keys"].items() if ":booking:" in key}
    assert len(refs) == 5

    # before the migration, the diary and every customer see release 1's bookings
    before = exported(app)
    assert {ref: row["status"] for ref, row in before.items()} == {ref: data["status"] for ref, data in refs.items()}
    mine = customer(app, ANA).choose(customer(app, ANA).send("menu"), "My bookings")
    assert mine.options == ["Wed 14 Jan 12:00", "Thu 15 Jan 11:00"]
    newcomer = customer(app, "+34600000099", "Gil")
    days = newcomer.choose(newcomer.choose(newcomer.send("hi"), "Book"), "Haircut")
    assert "Wed 14 Jan" not in days.options  # 12:00 is Ana's and 12:30 is held by Bob: nothing is sold twice

    # conversations go on where they were, from the buttons of release 1's last messages
    bob = customer(app, BOB, "Bob")
    booked = bob.tap("hold1.e:confirm", "Confirm")  # his summary's Confirm: the time he held is his
    assert booked.text.startswith("Booked! ✅ Haircut, Wed 14 Jan, 12:30–13:00."), booked.text
    carla = customer(app, CARLA, "Carla")
    stale = carla.tap("time1.6:1768464000", "09:00")  # a time button of release 1: out of date, shown again
    assert stale.text.startswith("Esse menu já não está atualizado.") and "09:00" in stale.options
    assert carla.choose(stale, "09:00").text.startswith("Confirme a sua marcação:")
    eve = customer(app, EVE, "Eve")
    asked = eve.tap("mng1.8:cancel:GCMG28", "Cancel booking")
    assert eve.choose(asked, "Yes, cancel it").text.startswith("Your booking is cancelled")
    assert customer(app, DAN, "Dan").send("1").text.startswith("Which service would you like?")

    # the migration moves the rest
    result = run(app, "bookings", "migrate")
    assert result.exit_code == 0, result.output
    assert "Done: business test is in this release's layout." in result.output
    assert release_1_left(db) == []
    assert not shop.upgrading
    after = exported(app)
    assert set(after) == set(refs) | {bob_ref(booked.text)}
    assert {ref: row["status"] for ref, row in after.items()} == {
        **{ref: data["status"] for ref, data in refs.items()},
        "GCMG28": "cancelled",
        bob_ref(booked.text): "confirmed",
    }
    assert after["VGE7JE"]["rescheduled_from"] == "JXJQVX" and after["JXJQVX"]["rescheduled_to"] == "VGE7JE"
    assert db.hget("tapbook:{test}:profile:" + CARLA, "language") == "pt"
    assert Session(db.hgetall("tapbook:{test}:session:" + CARLA)).step == "summary"
    fay = db.xrange("tapbook:{test}:outbox:" + FAY)
    assert len(fay) == 1 and json.loads(fay[0][1]["m"])["variables"]["1"].startswith("Hi Fay!")
    assert db.zscore("tapbook:{test}:due", FAY) is not None

    # and the conversations carry on on the new keys
    assert customer(app, ANA).choose(customer(app, ANA).send("menu"), "My bookings").options == mine.options
    again = run(app, "bookings", "migrate")  # idempotent: a second run finds nothing left
    assert again.exit_code == 0 and "nothing to move" in again.output


def bob_ref(text: str) -> str:
    return text.rsplit("Your booking reference: ", 1)[1].split()[0]


def test_the_occupancy_of_every_day_is_the_same_after_the_migration(
    upgraded_app: tuple[Flask, dict[str, Any]], db: redis.Redis
) -> None:
    app, dump = upgraded_app
    old = {key: value["value"] for key, value in dump["keys"].items() if ":occ:" in key}
    assert run(app, "bookings", "migrate").output.splitlines()[1:] == [
        "bookings: 5 moved, 0 already done",
        "business index: 1 moved, 0 already done",
        "customer indexes: 2 moved, 0 already done",
        "hold maps: 5 moved, 0 already done",
        "occupancy days: 3 moved, 0 already done",
        "outbox messages: 1 moved, 0 already done",
        "profiles: 1 moved, 0 already done",
        "sessions: 6 moved, 0 already done",
        "window stamps: 1 moved, 0 already done",
        "Done: business test is in this release's layout.",
    ]
    for key, entries in old.items():
        new = db.hgetall(key.replace("tapbook:bk:{test}:", "tapbook:{test}:"))
        assert set(new) == set(entries), key  # bookings and the live hold, each where it was


def test_the_migration_resumes_where_it_was_stopped(
    upgraded_app: tuple[Flask, dict[str, Any]], db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = upgraded_app
    services = get_services(app)
    monkeypatch.setattr("bot.upgrade.BATCH", 3)
    calls = []

    def stop_after_two(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the operator pressed Ctrl-C, or the machine went down

    with pytest.raises(KeyboardInterrupt):
        migrate(db, services.business(), services.scripts, prefix="tapbook", session_ttl_ms=1_800_000,
                progress=stop_after_two)  # fmt: skip
    assert release_1_left(db)  # half done
    assert services.business().upgrading
    report = migrate(db, services.business(), services.scripts, prefix="tapbook", session_ttl_ms=1_800_000)
    assert report.complete and release_1_left(db) == []
    assert len(exported(app)) == 5


def test_migrating_while_customers_tap_loses_no_tap(db: redis.Redis, redis_server: RedisServer) -> None:
    release_1_keys(db)
    phones = [f"+3461{n:07d}" for n in range(300)]
    for phone in phones:  # 300 more release-1 customers at the menu (Dan's session, copied)
        db.hset(f"tapbook:session:{{{phone}}}", mapping={"r": "1", "s": "M", "t": "1", "n": "0",
                                                          "o": "nav1:book 9ings 5language"})  # fmt: skip
        db.expire(f"tapbook:session:{{{phone}}}", 1800)
    app = create_app(app_config(REDIS_URL=redis_server.url))
    tappers = [customer(app, phone) for phone in phones[:40]]

    def work(i: int) -> object:
        if i == 0:
            return run(app, "bookings", "migrate")
        for person in tappers[(i - 1) :: 4]:
            assert person.send("1").text.startswith("Which service would you like?")  # Book, from release 1
        return None

    result, *_ = run_together(5, work)
    assert result.exit_code in (0, 1), result.output  # 1: a session changed under it; a second pass finishes
    if result.exit_code:
        assert run(app, "bookings", "migrate").exit_code == 0
    for phone in phones[:40]:
        assert Session(db.hgetall(f"tapbook:{{test}}:session:{phone}")).step == "services"  # the tap survived
    assert all(db.exists(f"tapbook:{{test}}:session:{phone}") for phone in phones)
    assert release_1_left(db) == []


def test_release_1_bookings_under_another_id_stop_start_up(db: redis.Redis, redis_server: RedisServer) -> None:
    """Release 1's default business id was ``main``: a catalog that renamed it would hide its bookings."""
    db.zadd("tapbook:bk:{main}:bookings", {"K7Q2MX": 1768392000})
    with pytest.raises(ConfigError, match='no catalog has id = "main"'):
        create_app(app_config(REDIS_URL=redis_server.url, CATALOG=salon(id="bella")))
    assert (
        get_services(create_app(app_config(REDIS_URL=redis_server.url, CATALOG=salon(id="main")))).business().upgrading
    )

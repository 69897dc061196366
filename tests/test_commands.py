"""The operator's commands, as run from a terminal: real app, real store, real output."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pytest
import redis
from click.testing import Result
from flask import Flask

from bot import create_app, get_services
from bot.maintenance import _UPGRADE
from bot.sessions import CURRENT_VERSION, Session, stored_version

from .bookings import book
from .concurrency import run_together
from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .whatsapp import WhatsApp

BK = "tapbook:bk:{test}"


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=list(args), input=input)


@pytest.fixture
def two_bookings(app: Flask, wa: WhatsApp) -> tuple[str, str]:
    bob = WhatsApp(app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    return book(wa, at="12:00"), book(bob, day="Thu 15 Jan", at="10:00")


# -- bookings --------------------------------------------------------------------------------
def test_list_shows_a_table_by_day(app: Flask, two_bookings: tuple[str, str]) -> None:
    ana, bob = two_bookings
    result = run(app, "bookings", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Wed 14 Jan (2026-01-14): 1 booking(s)" in lines
    assert "Thu 15 Jan (2026-01-15): 1 booking(s)" in lines
    header = next(line for line in lines if "Time" in line)
    assert header.split() == ["Time", "Service", "Customer", "Phone", "Status", "Ref"]
    assert f"  12:00–12:30  Haircut  Ana       +34*****222  confirmed  {ana}" in lines
    assert f"  10:00–10:30  Haircut  Bob       +44*****123  confirmed  {bob}" in lines
    only_thursday = run(app, "bookings", "list", "--date", "2026-01-15", "--days", "1").output
    assert bob in only_thursday and ana not in only_thursday


def test_list_says_when_there_is_nothing(app: Flask) -> None:
    result = run(app, "bookings", "list", "--date", "2026-02-01", "--days", "3")
    assert (result.exit_code, result.output) == (0, "No bookings in the 3 day(s) from 2026-02-01.\n")
    assert run(app, "bookings", "list", "--date", "tomorrow").exit_code == 2  # click's usage error


def test_export_csv_and_json_with_full_details(app: Flask, two_bookings: tuple[str, str], tmp_path: Path) -> None:
    ana, bob = two_bookings
    result = run(app, "bookings", "export", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["ref"] for row in rows] == [ana, bob]
    assert rows[0]["phone"] == "+34600111222" and rows[0]["name"] == "Ana"
    assert (rows[0]["start"], rows[0]["service_name"]) == ("2026-01-14T12:00:00+01:00", "Haircut")
    assert "Exported 2 booking(s)." in result.stderr
    out = tmp_path / "bookings.json"
    assert run(app, "bookings", "export", "--format", "json", "-o", str(out)).exit_code == 0
    records = json.loads(out.read_text())
    assert [(r["ref"], r["status"], r["language"]) for r in records] == [
        (ana, "confirmed", "en"),
        (bob, "confirmed", "en"),
    ]


def test_a_profile_name_cannot_become_a_spreadsheet_formula(app: Flask) -> None:
    """WhatsApp profile names are the customer's to choose; opened in a spreadsheet, ``=…`` would run."""
    evil = '=HYPERLINK("http://evil.example")'
    ref = book(WhatsApp(app.test_client(), TOKEN, phone="+34600333444", name=evil))
    (row,) = csv.DictReader(io.StringIO(run(app, "bookings", "export").stdout))
    assert row["ref"] == ref and row["name"] == "'" + evil and row["phone"] == "+34600333444"
    (record,) = json.loads(run(app, "bookings", "export", "--format", "json").stdout)
    assert record["name"] == evil  # JSON carries data, not formulas: unchanged


def test_cancel_frees_the_time_and_says_the_customer_was_not_told(
    app: Flask, wa: WhatsApp, db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ref = book(wa, at="12:00")
    refused = run(app, "bookings", "cancel", ref.lower(), input="n\n")
    assert refused.exit_code == 1 and db.hget(f"{BK}:booking:{ref}", "status") == "confirmed"
    with caplog.at_level(logging.INFO, logger="bot"):
        result = run(app, "bookings", "cancel", ref, "--yes")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Cancelled: Haircut, Wed 14 Jan, 12:00–12:30 ({ref})",
        "The customer was not told (no message channel, or they last wrote over 24 hours ago): please tell them.",
    ]
    assert "no outgoing channel is configured: +34*****222 was not told" in caplog.messages
    assert db.hget(f"{BK}:booking:{ref}", "status") == "cancelled"
    assert get_services(app).stats.get("bookings.cancelled") == 1
    assert wa.choose(wa.send("menu"), "My bookings").text.startswith("You have no upcoming bookings.")
    times = wa.choose(wa.choose(wa.choose(wa.send("menu"), "Book"), "Haircut"), "Wed 14 Jan")
    assert "12:00" in times.options  # free again

    again = run(app, "bookings", "cancel", ref, "--yes")
    assert (again.exit_code, again.output) == (
        1,
        f"Error: Booking {ref} was not cancelled: it was already cancelled.\n",
    )
    unknown = run(app, "bookings", "cancel", "NOPE42", "--yes")
    assert (unknown.exit_code, unknown.output) == (
        1,
        "Error: Booking NOPE42 was not cancelled: there is no such booking.\n",
    )


def test_commands_say_when_redis_is_down(own_redis_server: RedisServer) -> None:
    app = create_app(app_config(REDIS_URL=own_redis_server.url))
    own_redis_server.stop()
    for args in (
        ["bookings", "list"],
        ["bookings", "export"],
        ["sessions", "stats"],
        ["sessions", "migrate"],
        ["bookings", "cancel", "X", "--yes"],
        ["catalog", "check"],
    ):
        result = run(app, *args)
        assert result.exit_code == 1, args
        assert result.output.splitlines()[-1].startswith("Error: Redis cannot be reached or failed: ConnectionError")


# -- sessions --------------------------------------------------------------------------------
def legacy_sessions(db: redis.Redis, count: int) -> list[str]:
    """Sessions as the seed service wrote them: no ``v``, no ``language``."""
    phones = [f"+3460000{i:04d}" for i in range(count)]
    for phone in phones:
        db.hset(f"tapbook:session:{{{phone}}}", mapping={"step": "menu", "opts": "nav1:book nav1:language"})
        db.expire(f"tapbook:session:{{{phone}}}", 900)
    return phones


def test_sessions_stats_by_step_and_language(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    carla = WhatsApp(app.test_client(), TOKEN, phone="+351912345678")
    carla.send("hola", path="/webhook?lang=pt")
    carla.choose(carla.send("menu"), "Marcar")
    legacy_sessions(db, 3)
    db.set("tapbook:profile-not-a-session", "x")
    result = run(app, "sessions", "stats")
    assert result.exit_code == 0, result.output
    assert "Active sessions: 5" in result.output
    assert "By step:         menu 4, services 1" in result.output
    assert "By language:     en 4, pt 1" in result.output  # the seed's sessions speak the default
    assert f"Layout v{CURRENT_VERSION}:       2 current, 3 pending migration" in result.output


def test_sessions_migrate_upgrades_all_keeping_expiry(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    phones = legacy_sessions(db, 1200)  # more than one SCAN batch
    wa.send("hi")
    result = run(app, "sessions", "migrate")
    assert result.exit_code == 0, result.output
    assert "Upgraded 1200 of 1201 session(s); 1 already current; 0 changed by the bot meanwhile" in result.output
    session = db.hgetall(f"tapbook:session:{{{phones[7]}}}")
    assert stored_version(session) == CURRENT_VERSION
    assert (Session(session).language, Session(session).rev, Session(session).step) == ("", "1", "menu")
    assert 0 < db.ttl(f"tapbook:session:{{{phones[7]}}}") <= 900
    assert "0 pending migration" in run(app, "sessions", "stats").output
    again = run(app, "sessions", "migrate").output
    assert "Upgraded 0 of 1201 session(s); 1201 already current" in again
    customer = WhatsApp(app.test_client(), TOKEN, phone=phones[7])
    assert customer.send("2").text.startswith("Which language would you like?")  # its old options still work
    assert get_services(app).stats.get("migrations") == 0  # the tap found nothing left to do


def test_the_upgrade_never_writes_over_a_newer_session(db: redis.Redis) -> None:
    key = "tapbook:session:{+34600111222}"
    db.hset(key, mapping={"step": "menu", "rev": "3"})
    upgrade = db.register_script(_UPGRADE)
    assert upgrade(keys=[key], args=["2", "v", "1", "rev", "3", "step", "stale"]) == 0
    assert db.hgetall(key) == {"step": "menu", "rev": "3"}
    assert upgrade(keys=["tapbook:session:{+1}"], args=["", "v", "1"]) == 0  # gone meanwhile: not recreated
    assert not db.exists("tapbook:session:{+1}")


def test_migrate_while_customers_tap_loses_no_tap(app: Flask, db: redis.Redis) -> None:
    phones = legacy_sessions(db, 300)
    tappers = [WhatsApp(app.test_client(), TOKEN, phone=phone) for phone in phones[:40]]

    def work(i: int) -> object:
        if i == 0:
            return run(app, "sessions", "migrate")
        for customer in tappers[(i - 1) :: 4]:
            customer.send("2")  # Language, from the old layout's options
        return None

    result, *_ = run_together(5, work)
    assert result.exit_code == 0, result.output
    for phone in phones[:40]:
        session = db.hgetall(f"tapbook:session:{{{phone}}}")
        assert (Session(session).step, stored_version(session)) == ("language", CURRENT_VERSION)  # the tap survived
    assert all(stored_version(db.hgetall(f"tapbook:session:{{{phone}}}")) == CURRENT_VERSION for phone in phones)


# -- catalog ---------------------------------------------------------------------------------
def test_catalog_check_validates_and_shows_the_next_free_times(app: Flask, wa: WhatsApp, tmp_path: Path) -> None:
    book(wa, at="12:00")
    catalog = tmp_path / "test.toml"
    catalog.write_text(
        """
[business]
id = "test"
name = "Test Salon"
timezone = "Europe/Madrid"
slot_minutes = 30
min_notice_minutes = 120
horizon_days = 14
hold_minutes = 10
cancel_cutoff_minutes = 120
max_active_bookings = 3

[hours]
wed = ["09:00-13:00"]

[[services]]
id = "cut"
minutes = 30
capacity = 1
price = "25 EUR"
name = { en = "Haircut" }
"""
    )
    result = run(app, "catalog", "check", str(catalog), "--count", "2")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{catalog}: valid. Test Salon, 1 service(s), Europe/Madrid.",
        "  Haircut (cut, 30 min): Wed 14 Jan 12:30, Wed 21 Jan 09:00",  # 12:00 is booked
    ]


def test_catalog_check_refuses_a_bad_file(app: Flask, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[business]\nname = "x"\n')
    result = run(app, "catalog", "check", str(bad))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {bad}: ")
    missing = run(app, "catalog", "check", str(tmp_path / "none.toml"))
    assert (missing.exit_code, missing.output) == (1, f"Error: {tmp_path / 'none.toml'}: no such file\n")


def test_catalog_check_of_the_configured_catalog(app: Flask) -> None:
    result = run(app, "catalog", "check")
    assert result.exit_code == 0
    assert "sample_salon.toml: valid. Bella Hair Studio" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("bookings", "list"),
        ("bookings", "export"),
        ("bookings", "cancel", "K7Q2MX", "--yes"),
        ("sessions", "stats"),
        ("sessions", "migrate"),
        ("templates", "list"),
        ("worker",),
    ],
)
def test_commands_refuse_the_embedded_store_instead_of_reporting_nothing(args: tuple[str, ...]) -> None:
    """Without REDIS_URL each process has its own empty store: "No bookings" would be a lie."""
    app = create_app(app_config(TESTING=False))
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 1
    assert "REDIS_URL is not set" in result.output
    assert "Traceback" not in result.output

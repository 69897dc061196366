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

from .bookings import book
from .catalogs import salon
from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .whatsapp import WhatsApp

BK = "tapbook:{test}"


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
        "The customer was not told (no message channel is set up): please tell them.",
    ]
    assert "+34*****222 is not told of the business's cancel: no_channel" in caplog.messages
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
        ["bookings", "migrate"],
        ["bookings", "cancel", "X", "--yes"],
        ["catalog", "check"],
    ):
        result = run(app, *args)
        assert result.exit_code == 1, args
        assert result.output.splitlines()[-1].startswith("Error: Redis cannot be reached or failed: ConnectionError")


# -- sessions --------------------------------------------------------------------------------
def test_sessions_stats_by_step_and_language(app: Flask, wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    carla = WhatsApp(app.test_client(), TOKEN, phone="+351912345678")
    carla.send("hola", path="/webhook?lang=pt")
    carla.choose(carla.send("menu"), "Marcar")
    db.set("tapbook:{test}:profile-not-a-session", "x")
    result = run(app, "sessions", "stats")
    assert result.exit_code == 0, result.output
    assert "Active sessions: 2" in result.output
    assert "By step:         menu 1, services 1" in result.output
    assert "By language:     en 1, pt 1" in result.output


# -- several businesses ----------------------------------------------------------------------
@pytest.fixture
def two_salons(backend: dict[str, object]) -> Flask:
    first = salon(id="north", numbers=("+34910000001",))
    second = salon(id="south", name="South Salon", numbers=("+34910000002",))
    return create_app(app_config(CATALOG=[first, second], **backend))


@pytest.mark.parametrize("args", [("bookings", "list"), ("bookings", "export"), ("sessions", "stats")])
def test_with_several_businesses_a_command_asks_which(two_salons: Flask, args: tuple[str, ...]) -> None:
    result = run(two_salons, *args)
    assert (result.exit_code, result.output.splitlines()[-1]) == (
        1,
        "Error: there are several businesses (north, south): choose one with --business ID",
    )
    unknown = run(two_salons, *args, "--business", "east")
    assert unknown.output.splitlines()[-1] == "Error: no business 'east'; the businesses are: north, south"
    assert run(two_salons, *args, "--business", "south").exit_code == 0


def test_a_command_sees_only_its_business(two_salons: Flask) -> None:
    ana = WhatsApp(two_salons.test_client(), TOKEN)
    ana.send("hi")
    assert "Active sessions: 0" in run(two_salons, "sessions", "stats", "--business", "north").output


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
        f"{catalog}: valid. Test Salon (test, every number), 1 service(s), Europe/Madrid.",
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
        ("bookings", "migrate"),
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

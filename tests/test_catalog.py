"""The catalog file: what loads, and that every mistake stops start-up naming its field."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.booking.catalog import SAMPLE_CATALOG, OpeningRange, load_catalog
from bot.errors import ConfigError

LANGUAGES = frozenset({"en", "es", "pt"})

# The format the catalog documents, comments included.
GOOD = """
[business]
name = "Bella Hair Studio"
timezone = "Europe/Madrid"        # IANA name; all hours are local wall-clock time
slot_minutes = 30                 # grid step for start times
min_notice_minutes = 120          # earliest start = now + notice
horizon_days = 14                 # last bookable day = today (local) + horizon
hold_minutes = 10                 # how long a picked time is held before confirming
cancel_cutoff_minutes = 120       # no cancel/reschedule closer than this to the start
max_active_bookings = 3           # upcoming bookings one phone may hold
closed = ["2026-12-25"]           # whole days off

[hours]                           # mon..sun; several ranges a day; "24:00" allowed as an end
mon = ["09:00-13:00", "14:00-19:00"]
sat = ["10:00-14:00"]
sun = []

[[services]]
id = "cut"
minutes = 30
capacity = 1                      # customers served at the same time for this service
price = "25 EUR"
buffer_after_minutes = 10         # optional; buffer_before_minutes too
name = { en = "Haircut", es = "Corte", pt = "Corte" }
"""

SECOND_SERVICE = """
[[services]]
id = "{id}"
minutes = 20
capacity = 1
price = "15 EUR"
name = {{ en = "Beard trim" }}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def test_the_sample_salon_loads() -> None:
    catalog = load_catalog(SAMPLE_CATALOG, languages=LANGUAGES)

    business = catalog.business
    assert business.name == "Bella Hair Studio"
    assert business.timezone == ZoneInfo("Europe/Madrid")
    assert business.closed == {date(2026, 12, 25), date(2027, 1, 1), date(2027, 1, 6)}
    assert set(business.hours) == {1, 2, 3, 4, 5}  # Tue..Sat; Mon and Sun closed
    assert business.hours[1] == (OpeningRange(570, 840), OpeningRange(960, 1200))
    assert business.hours[5] == (OpeningRange(540, 840),)
    assert [s.id for s in catalog.services] == ["cut", "colour", "beard", "kids", "styling"]
    styling = catalog.service("styling")
    assert styling is not None and styling.capacity == 2 and styling.name("en") == "Blow-dry"
    for service in catalog.services:
        assert {"en", "es", "pt"} <= set(service.names)
        assert all(len(name) <= 20 for name in service.names.values())


def test_the_documented_format_loads(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD), languages=LANGUAGES)

    business = catalog.business
    assert business.id == "main"
    assert (business.slot_minutes, business.min_notice_minutes, business.horizon_days) == (30, 120, 14)
    assert (business.hold_minutes, business.cancel_cutoff_minutes, business.max_active_bookings) == (10, 120, 3)
    assert business.closed == frozenset({date(2026, 12, 25)})
    assert business.hours == {
        0: (OpeningRange(9 * 60, 13 * 60), OpeningRange(14 * 60, 19 * 60)),
        5: (OpeningRange(10 * 60, 14 * 60),),
    }
    (cut,) = catalog.services
    assert (cut.id, cut.minutes, cut.capacity, cut.price) == ("cut", 30, 1, "25 EUR")
    assert (cut.buffer_before_minutes, cut.buffer_after_minutes) == (0, 10)
    assert cut.resource == "cut"  # no resource: the service is its own
    assert catalog.service("cut") is cut
    assert catalog.service("nope") is None


def test_names_fall_back_to_english(tmp_path: Path) -> None:
    text = edited('name = { en = "Haircut", es = "Corte", pt = "Corte" }', 'name = { en = "Haircut", es = "Corte" }')
    (cut,) = load_catalog(write(tmp_path, text), languages=LANGUAGES).services
    assert cut.name("es") == "Corte"
    assert cut.name("pt") == "Haircut"


def test_ranges_come_out_sorted_and_may_touch_and_end_at_midnight(tmp_path: Path) -> None:
    text = edited('sat = ["10:00-14:00"]', 'sat = ["14:00-24:00", "00:00-09:00", "09:00-14:00"]')
    hours = load_catalog(write(tmp_path, text), languages=LANGUAGES).business.hours
    assert hours[5] == (OpeningRange(0, 540), OpeningRange(540, 840), OpeningRange(840, 1440))


def test_closed_days_may_be_toml_dates(tmp_path: Path) -> None:
    text = edited('closed = ["2026-12-25"]', "closed = [2026-12-25, 2027-01-01]")
    business = load_catalog(write(tmp_path, text), languages=LANGUAGES).business
    assert business.closed == {date(2026, 12, 25), date(2027, 1, 1)}


def test_a_shared_resource_is_kept(tmp_path: Path) -> None:
    text = edited('price = "25 EUR"', 'price = "25 EUR"\nresource = "chair"')
    (cut,) = load_catalog(write(tmp_path, text), languages=LANGUAGES).services
    assert cut.resource == "chair"


BAD = [
    ("bad timezone", edited('"Europe/Madrid"', '"Europe/Madird"'), "business.timezone"),
    ("timezone not text", edited('"Europe/Madrid"', "1"), "business.timezone"),
    ("slot_minutes 0", edited("slot_minutes = 30", "slot_minutes = 0"), "business.slot_minutes"),
    ("slot_minutes fractional", edited("slot_minutes = 30", "slot_minutes = 30.5"), "business.slot_minutes"),
    ("slot_minutes a boolean", edited("slot_minutes = 30", "slot_minutes = true"), "business.slot_minutes"),
    ("missing business setting", edited("hold_minutes = 10", ""), "business.hold_minutes"),
    ("business id with spaces", edited("[business]", '[business]\nid = "my salon"'), "business.id"),
    ("24:00 as a start", edited("sun = []", 'sun = ["24:00-24:00"]'), "hours.sun[0]"),
    ("overlapping ranges", edited('"14:00-19:00"', '"12:30-19:00"'), "hours.mon[1]"),
    ("end before start", edited('"10:00-14:00"', '"14:00-10:00"'), "hours.sat[0]"),
    ("empty range", edited('"10:00-14:00"', '"10:00-10:00"'), "hours.sat[0]"),
    ("not zero-padded", edited('"10:00-14:00"', '"9:00-14:00"'), "hours.sat[0]"),
    ("not a time", edited('"10:00-14:00"', '"10:00-14:60"'), "hours.sat[0]"),
    ("unknown weekday key", edited("sun = []", 'sun = []\nmonday = ["09:00-10:00"]'), "hours.monday"),
    ("no hours table", edited("[hours]", "[opening]"), "hours"),
    ("duplicate service ids", GOOD + SECOND_SERVICE.format(id="cut"), "services[1].id"),
    ("service id with capitals", GOOD + SECOND_SERVICE.format(id="Beard"), "services[1].id"),
    ("service minutes 0", edited("\nminutes = 30", "\nminutes = 0"), "services[0].minutes"),
    ("capacity 0", edited("capacity = 1", "capacity = 0"), "services[0].capacity"),
    ("price too long", edited('"25 EUR"', '"25 EUR, tip not included"'), "services[0].price"),
    ("name too long", edited('es = "Corte"', 'es = "Corte de pelo y lavado"'), "services[0].name.es"),
    ("blank name", edited('es = "Corte"', 'es = " "'), "services[0].name.es"),
    ("name in an unknown language", edited('pt = "Corte"', 'de = "Haarschnitt"'), "services[0].name.de"),
    ("no English name", edited('en = "Haircut", ', ""), "services[0].name.en"),
    ("no services", GOOD.split("[[services]]")[0], "services"),
    ("empty services", "services = []\n" + GOOD.split("[[services]]")[0], "services"),
    ("name not a table", edited("name = {", 'name = "Haircut"\nnames = {'), "services[0].name"),
    (
        "notice >= horizon",
        edited("min_notice_minutes = 120", "min_notice_minutes = 20160"),
        "business.min_notice_minutes",
    ),
    ("closed date not a date", edited('"2026-12-25"', '"2026-12-32"'), "business.closed[0]"),
    ("closed date in another format", edited('"2026-12-25"', '"25/12/2026"'), "business.closed[0]"),
]


@pytest.mark.parametrize(("text", "where"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_value_stops_start_up_naming_its_field(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_catalog(path, languages=LANGUAGES)
    assert caught.value.setting == "BOT_CATALOG"
    message = str(caught.value)
    assert f": {path}: {where}: " in message
    assert "\n" not in message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="BOT_CATALOG") as caught:
        load_catalog(path, languages=LANGUAGES)
    assert str(path) in str(caught.value)


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, edited("slot_minutes = 30", "slot_minutes = "))
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_catalog(path, languages=LANGUAGES)
    assert caught.value.setting == "BOT_CATALOG"
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    """A catalog saved as Latin-1 (``Peluquería``) stops start-up with one line, not a traceback."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(edited("Bella Hair Studio", "Peluquería Bella").encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text") as caught:
        load_catalog(path, languages=LANGUAGES)
    assert caught.value.setting == "BOT_CATALOG"
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_keys_are_ignored_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = "version = 2\n" + edited("slot_minutes = 30", "slot_minutes = 30\nslot_minuts = 15")
    text = text.replace('price = "25 EUR"', 'price = "25 EUR"\ncolour = "red"')
    with caplog.at_level(logging.WARNING, logger="bot.booking.catalog"):
        catalog = load_catalog(write(tmp_path, text), languages=LANGUAGES)

    assert catalog.business.slot_minutes == 30
    (record,) = [r for r in caplog.records if r.name == "bot.booking.catalog"]
    assert record.levelno == logging.WARNING
    for key in ("version", "business.slot_minuts", "services[0].colour"):
        assert key in record.getMessage()

"""Many businesses on one deployment: a catalog folder, routing by the number written to, and nothing
of one business ever reaching another (customers, owners, metrics, logs)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from bot import create_app, get_services
from bot.errors import ConfigError

from .bookings import book
from .catalogs import salon
from .conftest import TOKEN, Clock, app_config
from .content_phone import ContentCustomer, content_config, synced_worker
from .twilio_fake import FakeTwilio
from .whatsapp import WhatsApp

ROOT = Path(__file__).parents[1]
NORTH, SOUTH = "+34910000001", "+34910000002"
SAMPLE = (ROOT / "bot" / "booking" / "sample_salon.toml").read_text()


def two(**overrides: Any) -> list[Any]:
    north = salon(id="north", name="North Salon", numbers=(NORTH,))
    south = salon(id="south", name="South Clinic", numbers=(SOUTH, "+34910000003"), languages=("es", "en"))
    return [north, south]


@pytest.fixture
def app(backend: dict[str, Any], clock: Clock) -> Flask:
    return create_app(app_config(CATALOG=two(), CLOCK=clock, **backend))


def writing_to(app: Flask, number: str, phone: str = "+34600111222", name: str = "Ana") -> WhatsApp:
    """A customer whose every message is written to the business number ``number``."""
    wa = WhatsApp(app.test_client(), TOKEN, phone=phone, name=name)
    form = wa.form

    def to_number(body: str = "", **extra: str) -> dict[str, str]:
        return form(body, **{"To": f"whatsapp:{number}", **extra})

    wa.form = to_number  # type: ignore[method-assign]
    return wa


# -- the catalog folder ---------------------------------------------------------------------------
def catalog_file(folder: Path, name: str, business: str) -> Path:
    path = folder / name
    path.write_text(SAMPLE.replace('[business]\nname = "Bella Hair Studio"', f"[business]\n{business}", 1))
    return path


def test_a_folder_of_catalogs_serves_each_business_on_its_numbers(tmp_path: Path, backend: dict[str, Any]) -> None:
    catalog_file(tmp_path, "bella.toml", 'id = "bella"\nnumbers = ["+34910000001"]\nname = "Bella Hair Studio"')
    catalog_file(tmp_path, "tony.toml", 'id = "tony"\nnumbers = ["whatsapp:+34910000002"]\nname = "Tony\'s Barbers"')
    (tmp_path / "notes.txt").write_text("not a catalog")
    app = create_app(app_config(BOT_CATALOG=str(tmp_path), CATALOG=None, **backend))
    assert get_services(app).directory.ids == ["bella", "tony"]
    assert writing_to(app, NORTH).send("hi").text.startswith("Hi Ana! 👋\n\nWelcome to Bella Hair Studio.")
    assert writing_to(app, SOUTH).send("hi").text.startswith("Hi Ana! 👋\n\nWelcome to Tony's Barbers.")


BELLA = 'id = "bella"\nnumbers = ["+34910000001"]'


@pytest.mark.parametrize(
    ("first", "second", "problem"),
    [
        (BELLA, 'id = "bella"\nnumbers = ["+34910000002"]', "both have business.id 'bella'"),
        (BELLA, 'id = "tony"\nnumbers = ["+34910000001"]', "both claim the number +34910000001"),
        (BELLA, 'numbers = ["+34910000002"]', "b.toml: business.id: is required"),
        (BELLA, 'id = "tony"', "b.toml: business.numbers: is required"),
        ('id = "Bella!"', 'id = "tony"', "a.toml: business.id: must be 1 to 32 of a-z, 0-9 and '-'"),
        ('numbers = ["34910000001"]', 'id = "tony"', "a.toml: business.numbers[0]: must be a phone number"),
        ('id = "bella"\nsender = "+34910000001"', 'id = "tony"', "a.toml: business.sender: must be whatsapp:+"),
        ('id = "bella"\nlanguages = ["fr"]', 'id = "tony"', "a.toml: business.languages[0]: 'fr' is not a language"),
    ],
)  # fmt: skip
def test_a_folder_that_cannot_be_served_stops_start_up_naming_the_files(
    tmp_path: Path, first: str, second: str, problem: str
) -> None:
    a = catalog_file(tmp_path, "a.toml", first + '\nname = "A"')
    b = catalog_file(tmp_path, "b.toml", second + '\nname = "B"')
    with pytest.raises(ConfigError) as caught:
        create_app(app_config(BOT_CATALOG=str(tmp_path), CATALOG=None))
    message = str(caught.value)
    assert caught.value.setting == "BOT_CATALOG" and "\n" not in message
    assert problem in message, message
    if problem.startswith("both"):
        assert str(a) in message and str(b) in message


def test_an_empty_folder_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no \\*.toml catalog"):
        create_app(app_config(BOT_CATALOG=str(tmp_path), CATALOG=None))


# -- routing by the number written to -------------------------------------------------------------
def test_each_number_reaches_its_business(app: Flask) -> None:
    assert writing_to(app, NORTH).send("hi").text.startswith("Hi Ana! 👋\n\nWelcome to North Salon.")
    assert writing_to(app, "+34910000003", phone="+34600999999").send("hi").text.startswith("¡Hola, Ana! 👋")


def test_a_number_no_business_claims_gets_nothing_and_writes_nothing(
    app: Flask, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    db = get_services(app).redis
    stranger = writing_to(app, "+34999999999")
    with caplog.at_level(logging.DEBUG, logger="bot.webhook"):
        answers = [stranger.send(text) for text in ("hi", "1", "menu")]
    assert [(a.status, a.text) for a in answers] == [(200, "")] * 3
    assert all("<Response" in a.body and "<Message" not in a.body for a in answers)
    assert db.dbsize() == 0
    assert get_services(app).stats.get("taps.unrouted", business="none") == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # at most one an hour per number
    assert "no business has the number +34*****999" in warnings[0].getMessage()
    clock.advance(minutes=61)
    with caplog.at_level(logging.DEBUG, logger="bot.webhook"):
        stranger.send("hello?")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_one_catalog_with_numbers_answers_only_those(backend: dict[str, Any]) -> None:
    app = create_app(app_config(CATALOG=salon(numbers=(NORTH,)), **backend))
    assert writing_to(app, NORTH).send("hi").text.startswith("Hi Ana!")
    assert writing_to(app, SOUTH).send("hi").text == ""


def test_one_catalog_without_numbers_answers_every_number(backend: dict[str, Any]) -> None:
    app = create_app(app_config(**backend))
    assert writing_to(app, "+15005550006").send("hi").text.startswith("Hi Ana!")


# -- no cross-talk ----------------------------------------------------------------------------------
def test_one_phone_has_an_independent_conversation_and_language_with_each_business(app: Flask) -> None:
    north, south = writing_to(app, NORTH), writing_to(app, SOUTH)
    north.choose(north.choose(north.send("hi"), "Language"), "Português")
    assert north.send("menu").text.startswith("O que gostaria de fazer?")
    assert south.send("hi").text.startswith("¡Hola, Ana! 👋\n\nBienvenido/a a South Clinic.")  # its default: es
    assert north.send("menu").text.startswith("O que gostaria de fazer?")
    db = get_services(app).redis
    assert db.hget("tapbook:{north}:profile:+34600111222", "language") == "pt"
    assert not db.exists("tapbook:{south}:profile:+34600111222")


def test_a_customer_of_two_businesses_sees_only_each_ones_bookings(app: Flask) -> None:
    north, south = writing_to(app, NORTH), writing_to(app, SOUTH)
    north_ref = book(north, at="12:00")
    south.send("hi")
    mine = south.choose(south.send("menú"), "Mis reservas")
    assert mine.text.startswith("No tienes reservas pendientes.")
    mine = north.choose(north.send("menu"), "My bookings")
    assert north_ref in mine.text
    # the same time at the other business is free: they share nothing
    south_times = south.choose(south.choose(south.choose(south.send("menú"), "Reservar"), "Corte"), "mié 14 ene")
    assert "12:00" in south_times.options


def test_a_button_of_one_business_is_out_of_date_at_the_other(app: Flask) -> None:
    north, south = writing_to(app, NORTH), writing_to(app, SOUTH)
    north.choose(north.send("hi"), "Book")
    db = get_services(app).redis
    service_button = db.hget("tapbook:{north}:session:+34600111222", "offered").split()[0]
    south.send("hola")
    stale = south.tap(service_button.replace("svc1:", "svc1.1:"), "Haircut")
    assert stale.text.startswith("Ese menú ya no está al día.")
    assert not db.exists("tapbook:{south}:occ:cut:20260114")


def test_every_key_of_a_business_carries_its_hash_tag(app: Flask) -> None:
    book(writing_to(app, NORTH), at="12:00")
    writing_to(app, SOUTH).send("hola")
    db = get_services(app).redis
    keys = list(db.scan_iter("tapbook:*"))
    assert keys and all(key.startswith(("tapbook:{north}:", "tapbook:{south}:")) for key in keys)


# -- owners ------------------------------------------------------------------------------------------
def login(app: Flask, user: str, password: str) -> Any:
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return app.test_client().get("/admin", headers={"Authorization": auth})


def test_each_owner_logs_in_to_their_own_business_and_sees_only_it(backend: dict[str, Any]) -> None:
    hashed = generate_password_hash("south-owner-secret")
    north, south = two()
    south = type(south)(
        type(south.business)(**{**south.business.__dict__, "admin_password_hash": hashed}), south.services
    )
    app = create_app(app_config(CATALOG=[north, south], ADMIN_PASSWORD_NORTH="north-owner-secret", **backend))
    north_ref = book(writing_to(app, NORTH), at="12:00")
    page = login(app, "north", "north-owner-secret")
    assert page.status_code == 200 and north_ref in page.get_data(as_text=True)
    assert "North Salon" in page.get_data(as_text=True)
    south_page = login(app, "south", "south-owner-secret")
    assert south_page.status_code == 200 and north_ref not in south_page.get_data(as_text=True)
    assert login(app, "south", "north-owner-secret").status_code == 401  # another business's password
    assert login(app, "north", "south-owner-secret").status_code == 401
    assert login(app, "east", "north-owner-secret").status_code == 401
    refused = login(app, "", "north-owner-secret")
    assert refused.get_data(as_text=True) == "Log in with your business id and its admin password.\n"


def test_one_admin_password_for_several_businesses_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD: is for one business"):
        create_app(app_config(CATALOG=two(), ADMIN_PASSWORD="one-for-everyone"))


def test_a_hash_for_the_catalog_is_made_by_a_command(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["admin", "hash-password", "--password", "a-long-secret"])
    assert result.exit_code == 0 and result.output.startswith(("scrypt:", "pbkdf2:"))


# -- metrics and logs ----------------------------------------------------------------------------------
def test_metrics_and_log_lines_name_the_business(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.webhook"):
        book(writing_to(app, NORTH), at="12:00")
        writing_to(app, SOUTH).send("hola")
    stats = get_services(app).stats
    assert stats.get("bookings.created", business="north") == 1
    assert stats.get("bookings.created", business="south") == 0
    assert stats.get("taps.ok", business="south") == 1
    lines = [r for r in caplog.records if r.getMessage() == "tap ok"]
    assert [line.fields["business"] for line in lines][-1] == "south"  # type: ignore[attr-defined]
    assert {line.fields["business"] for line in lines} == {"north", "south"}  # type: ignore[attr-defined]
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'tapbook_bookings_total{business="north",change="created"} 1.0' in metrics


# -- replies leave from the number the customer wrote to -------------------------------------------------
def test_in_button_mode_each_reply_leaves_from_the_number_written_to(backend: dict[str, Any]) -> None:
    fake = FakeTwilio()
    north, south = two()
    south = type(south)(type(south.business)(**{**south.business.__dict__, "sender": "MG" + "5" * 32}), south.services)
    app = create_app(content_config(fake, CATALOG=[north, south], TWILIO_FROM=None, **backend))
    worker = synced_worker(app)
    ana = ContentCustomer(app, fake, worker, phone="+34600111222")
    ana.wa = writing_to(app, NORTH)
    ana.send("hi")
    assert fake.accepted[-1]["From"] == f"whatsapp:{NORTH}"
    ana.wa = writing_to(app, SOUTH)
    ana.send("hola")
    assert fake.accepted[-1]["MessagingServiceSid"] == "MG" + "5" * 32  # the business's own sender
    assert "b=south" in fake.accepted[-1]["StatusCallback"]
    north_sent = get_services(app).outboxes["north"].delivery("+34600111222")
    south_sent = get_services(app).outboxes["south"].delivery("+34600111222")
    assert [r["state"] for r in north_sent.values()] == ["sent"] == [r["state"] for r in south_sent.values()]

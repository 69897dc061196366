"""The newcomer's terminal chat: real signed requests through the app, replies printed."""

from __future__ import annotations

from bot import create_app

from .catalogs import salon
from .conftest import app_config
from .content_phone import content_config
from .twilio_fake import FakeTwilio


def test_chat_books_views_and_cancels_through_the_signed_webhook() -> None:
    app = create_app(app_config())
    typed = "hi\n1\n1\n1\n1\n1\n2\n1\n2\n1\n"  # book the first time, then My bookings → cancel it
    result = app.test_cli_runner().invoke(args=["chat", "--name", "Ana"], input=typed)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "bot> Hi Ana! 👋" in out
    assert "1. Book" in out and "2. My bookings" in out and "3. Language" in out
    assert "1. Wed 14 Jan" in out
    assert "Please check your booking:" in out and "Wed 14 Jan, 12:00–12:30" in out
    assert "Booked! ✅ Haircut, Wed 14 Jan, 12:00–12:30." in out
    assert "Your booking is cancelled: Haircut, Wed 14 Jan, 12:00–12:30" in out
    assert "[403]" not in out


def test_chat_reschedules_a_booking() -> None:
    app = create_app(app_config())
    # book 12:00 on Wed 14 Jan, then My bookings → the booking → Reschedule → Wed 14 Jan → 12:30 → Confirm
    typed = "hi\n1\n1\n1\n1\n1\n2\n1\n1\n1\n2\n1\n2\n"
    result = app.test_cli_runner().invoke(args=["chat"], input=typed)
    out = result.output
    assert "Please check your new time:" in out
    assert "Moved! ✅ Haircut, Wed 14 Jan, 12:30–13:00." in out
    assert "• Haircut, Wed 14 Jan, 12:30–13:00" in out.rsplit("you>", 2)[-2]  # My bookings, at the end


def test_chat_can_pose_as_a_spanish_business_number() -> None:
    app = create_app(app_config())
    result = app.test_cli_runner().invoke(args=["chat", "--lang", "es"], input="hi\n")
    assert "bot> ¡Hola, Alex! 👋" in result.output
    assert "1. Reservar" in result.output


def test_chat_shows_content_api_replies_as_buttons() -> None:
    fake = FakeTwilio()  # no request is expected: the chat reads the outbox, it does not send
    app = create_app(content_config(fake))
    result = app.test_cli_runner().invoke(args=["chat", "--name", "Ana"], input="hi\n1\n")
    assert result.exit_code == 0, result.output
    assert "Content API mode" in result.output
    assert "bot> Hi Ana! 👋" in result.output
    assert "[Book]  [My bookings]  [Language]" in result.output
    assert "[Haircut]" in result.output  # the services list after typing 1
    assert fake.requests == []


def test_chat_talks_to_the_business_it_is_asked_for() -> None:
    north = salon(id="north", name="North Salon", numbers=("+34910000001",))
    south = salon(id="south", name="South Clinic", numbers=("+34910000002",), languages=("es", "en"))
    app = create_app(app_config(CATALOG=[north, south]))
    asked = app.test_cli_runner().invoke(args=["chat"], input="hi\n")
    assert asked.exit_code == 1 and "choose one with --business ID" in asked.output
    result = app.test_cli_runner().invoke(args=["chat", "--business", "south"], input="hi\n")
    assert result.exit_code == 0, result.output
    assert "Chatting with South Clinic" in result.output
    assert "bot> ¡Hola, Alex! 👋\n     \n     Bienvenido/a a South Clinic." in result.output

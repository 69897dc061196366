"""The whole conversation, in TwiML mode and in Content API mode, in every language.

Content API mode runs against :class:`FakeTwilio` through the real ``twilio`` client and the
real outbox worker: each tap gets an empty ``<Response/>`` and the reply arrives as a
quick reply (1-3 options), a list picker (4-10) or plain text, with labels and IDs as
content variables. Typed numbers and titles keep working.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.channels.content import (
    BODY_MAX,
    BUTTON_TITLE_MAX,
    DESCRIPTION_MAX,
    ID_MAX,
    ITEM_MAX,
    LIST_BUTTON_MAX,
)
from bot.i18n import Catalogs, Translator
from bot.sessions import Session

from .conftest import TOKEN, app_config
from .content_phone import ContentCustomer, Shown, content_config, synced_worker
from .twilio_fake import SENDER, FakeTwilio
from .whatsapp import WhatsApp

LANGUAGES = ["en", "es", "pt"]
CATALOGS = Catalogs.load()


class Customer(Protocol):
    def send(self, text: str) -> Any: ...
    def pick(self, message: Any, title: str) -> Any: ...


class TwimlCustomer:
    def __init__(self, wa: WhatsApp) -> None:
        self.wa = wa

    def send(self, text: str) -> Any:
        return self.wa.send(text)

    def pick(self, message: Any, title: str) -> Any:
        return self.wa.choose(message, title)


def walk(c: Customer, t: Translator) -> None:
    """Book, reschedule and cancel, with a language switch first and one mid-booking."""
    menu = c.send("hi")
    menu = c.pick(c.pick(menu, "Language"), t.language_name)
    assert t("What would you like to do?") in menu.text
    assert menu.options == [t("Book"), t("My bookings"), t("Language")]
    services = c.pick(menu, t("Book"))
    assert services.text.startswith(t("Which service would you like?"))
    days = c.pick(services, services.options[0])
    assert days.text.startswith(t("{service}: which day suits you?").format(service=services.options[0]))
    assert len(days.options) == 10 and days.options[-1] == t("More")
    days = c.pick(c.pick(days, t("More")), t("Back"))
    times = c.pick(days, days.options[1])
    assert times.text.startswith(t("Which time on {day}?").format(day=days.options[1]))
    again = c.pick(c.send(t("back").split(",")[0]), days.options[1])  # typed "back", then forth again
    assert again.options == times.options
    summary = c.pick(again, again.options[0])
    assert summary.text.startswith(t("Please check your booking:"))
    assert summary.options == [t("Confirm"), t("Change"), t("Cancel")]
    done = c.pick(summary, t("Confirm"))
    assert done.text.startswith(t("Booked! ✅ {what}.").split("{")[0])
    mine = c.pick(done, t("My bookings"))
    assert mine.text.startswith(t("Your upcoming bookings:"))
    detail = c.pick(mine, mine.options[0])
    assert detail.options == [t("Reschedule"), t("Cancel booking"), t("Back")]
    days = c.pick(detail, t("Reschedule"))
    times = c.pick(days, days.options[2])
    summary = c.pick(times, times.options[-1])
    assert summary.text.startswith(t("Please check your new time:"))
    moved = c.pick(summary, t("Confirm"))
    assert moved.text.startswith(t("Moved! ✅ {what}.").split("{")[0])
    mine = c.pick(moved, t("My bookings"))
    question = c.pick(c.pick(mine, mine.options[0]), t("Cancel booking"))
    assert question.text.startswith(t("Cancel this booking?"))
    cancelled = c.pick(question, t("Yes, cancel it"))
    assert cancelled.text.startswith(t("Your booking is cancelled: {booking}").split("{")[0])


@pytest.fixture
def content_app(backend: dict[str, Any], fake: FakeTwilio) -> Iterator[Flask]:
    app = create_app(content_config(fake, **backend))
    yield app
    get_services(app).redis.close()


def within_limits(message: Shown) -> list[str]:
    """What in ``message`` breaks WhatsApp's limits (or was clipped to fit)."""
    problems = []
    checks = [(message.text, BODY_MAX, "body")]
    title_max = BUTTON_TITLE_MAX if message.kind == "twilio/quick-reply" else ITEM_MAX
    checks += [(title, title_max, "title") for title in message.options]
    checks += [(ident, ID_MAX, "id") for ident in message.ids]
    checks += [(text, DESCRIPTION_MAX, "description") for text in message.descriptions]
    if message.kind == "twilio/list-picker":
        checks.append((message.button, LIST_BUTTON_MAX, "list button"))
    for value, limit, what in checks:
        if len(value) > limit or (len(value) == limit and value.endswith("…")) or not value.strip():
            problems.append(f"{what} {value!r}")
    return problems


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_whole_conversation_in_twiml_mode(backend: dict[str, Any], language: str) -> None:
    app = create_app(app_config(**backend))
    walk(TwimlCustomer(WhatsApp(app.test_client(), TOKEN)), CATALOGS.get(language))


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_whole_conversation_in_content_api_mode_by_taps(
    content_app: Flask, fake: FakeTwilio, language: str, caplog: pytest.LogCaptureFixture
) -> None:
    customer = ContentCustomer(content_app, fake, synced_worker(content_app))
    with caplog.at_level(logging.WARNING, logger="bot.channels.content"):
        walk(customer, CATALOGS.get(language))
    assert not caplog.records, "something was clipped to fit WhatsApp's limits"
    kinds = {message.kind for message in customer.seen}
    assert kinds == {"twilio/quick-reply", "twilio/list-picker"}
    for message in customer.seen:
        assert not within_limits(message), within_limits(message)
        assert (message.kind == "twilio/quick-reply") == (len(message.options) <= 3)
    assert not fake.surprises


def test_typed_numbers_and_titles_keep_working_in_content_api_mode(content_app: Flask, fake: FakeTwilio) -> None:
    customer = ContentCustomer(content_app, fake, synced_worker(content_app), typed=True)
    walk(customer, CATALOGS.get("es"))
    mine = customer.send("MIS RESERVAS")  # a title, typed
    assert mine.text.startswith(CATALOGS.get("es")("You have no upcoming bookings."))
    assert not fake.surprises


def test_a_messaging_service_sends_instead_of_a_from_number(backend: dict[str, Any], fake: FakeTwilio) -> None:
    service = "MG" + "c" * 32
    app = create_app(content_config(fake, TWILIO_FROM=None, TWILIO_MESSAGING_SERVICE_SID=service, **backend))
    ContentCustomer(app, fake, synced_worker(app)).send("hi")
    (send,) = fake.sends()
    assert send.data["MessagingServiceSid"] == service and "From" not in send.data


def test_a_reply_arrives_with_the_exact_form_fields(content_app: Flask, fake: FakeTwilio) -> None:
    customer = ContentCustomer(content_app, fake, synced_worker(content_app))
    customer.send("hi")
    (send,) = fake.sends()
    form = send.data
    assert set(form) == {"To", "From", "ContentSid", "ContentVariables", "StatusCallback"}
    assert form["To"] == "whatsapp:+34600111222" and form["From"] == SENDER
    assert fake.contents[form["ContentSid"]]["friendly_name"] == "tapbook_buttons3_v1"
    assert isinstance(form["ContentVariables"], str)
    variables = json.loads(form["ContentVariables"])
    offered = Session(get_services(content_app).redis.hgetall("tapbook:{test}:session:+34600111222")).offered
    assert [variables[k] for k in ("2", "4", "6")] == ["Book", "My bookings", "Language"]
    assert [variables[k] for k in ("3", "5", "7")] == offered
    assert variables["1"].startswith("Hi Ana! 👋")
    assert form["StatusCallback"].startswith("https://bot.example.com/webhook/status?b=test&to=%2B34600111222&entry=")
    assert send.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_list_pickers_carry_a_translated_button_and_typed_alternatives(content_app: Flask, fake: FakeTwilio) -> None:
    customer = ContentCustomer(content_app, fake, synced_worker(content_app))
    days = customer.pick(customer.pick(customer.send("hi"), "Book"), "Haircut")
    assert days.kind == "twilio/list-picker" and days.button == "Choose"
    assert days.descriptions[:2] == ["or type 1", "or type 2"]
    fake_template = {c["friendly_name"] for c in fake.contents.values()}
    assert "tapbook_list10_v1" in fake_template
    assert customer.send("2").text.startswith("Which time on Thu 15 Jan?")  # typed number, as the description says


def test_picking_a_language_re_renders_the_step_in_content_api_mode(content_app: Flask, fake: FakeTwilio) -> None:
    customer = ContentCustomer(content_app, fake, synced_worker(content_app))
    days = customer.pick(customer.pick(customer.send("hi"), "Book"), "Haircut")
    picker = customer.send("language")
    assert picker.kind == "twilio/quick-reply" and picker.options == ["English", "Español", "Português"]
    answer = customer.pick(picker, "Español")
    assert answer.text.startswith("¡Hecho! A partir de ahora te escribiré en español.")
    assert "Corte: ¿qué día te viene bien?" in answer.text
    assert answer.kind == "twilio/list-picker" and answer.button == "Elegir"
    assert answer.options[0] == "mié 14 ene" and len(answer.options) == len(days.options)
    assert answer.descriptions[0] == "o escribe 1"


def test_a_retried_webhook_sends_nothing_twice(content_app: Flask, fake: FakeTwilio) -> None:
    customer = ContentCustomer(content_app, fake, synced_worker(content_app))
    form = customer.wa.form("hi")
    customer._post(form)
    again = customer.wa.post(form)  # Twilio retries the same MessageSid
    assert again.status == 200 and "<Response />" in again.body
    assert customer.worker.run_once() == 0
    assert len(fake.sends()) == 1


def test_a_retry_after_its_reply_record_lapsed_sends_nothing_and_changes_nothing(
    content_app: Flask, fake: FakeTwilio
) -> None:
    customer = ContentCustomer(content_app, fake, synced_worker(content_app))
    customer.send("hi")
    form = customer.wa.form("3")  # Language
    customer._post(form)
    db = get_services(content_app).redis
    session_key = f"tapbook:{{test}}:session:{customer.wa.phone}"
    state, queued = db.hgetall(session_key), db.xlen(f"tapbook:{{test}}:outbox:{customer.wa.phone}")
    db.delete(f"tapbook:{{test}}:msg:{form['MessageSid']}")  # as DEDUPE_TTL_SECONDS would
    again = customer.wa.post(form)
    assert again.status == 200 and "<Response />" in again.body
    assert (db.hgetall(session_key), db.xlen(f"tapbook:{{test}}:outbox:{customer.wa.phone}")) == (state, queued)
    assert customer.worker.run_once() == 0


def test_redis_trouble_still_answers_politely_in_twiml(fake: FakeTwilio, own_redis_server: Any) -> None:
    app = create_app(content_config(fake, REDIS_URL=own_redis_server.url))
    wa = WhatsApp(app.test_client(), TOKEN)
    own_redis_server.stop()
    answer = wa.send("hi")
    assert answer.status == 200 and answer.text.startswith("Sorry, we're having trouble right now.")
    assert not fake.requests


def test_content_api_mode_keeps_two_round_trips_a_tap(redis_server: Any, fake: FakeTwilio, sends: list[object]) -> None:  # noqa: F811
    """The outbox append rides in the commit script and the doorbell in the same pipeline."""
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(content_config(fake, REDIS_URL=redis_server.url))
    wa = WhatsApp(app.test_client(), TOKEN)
    wa.send("hi")  # connects and loads the script once

    def cost(typed: str) -> int:
        already = len(sends)
        assert wa.send(typed).status == 200
        return len(sends) - already

    assert [cost(typed) for typed in ("3", "2", "idioma", "help", "menu", "banana")] == [2] * 6
    assert (
        get_services(app).outboxes["test"].pending(wa.phone) == 7 and not fake.requests
    )  # the webhook never calls Twilio
    redis.Redis.from_url(redis_server.url).script_flush()  # a restarted Redis forgets scripts
    assert wa.send("menu").status == 200
    assert get_services(app).outboxes["test"].pending(wa.phone) == 8

"""What Redis keeps for a customer: one hash per phone, sliding expiry, upgrades, retries."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.sessions import CURRENT_VERSION, Session

from .concurrency import run_together
from .conftest import TOKEN, app_config
from .whatsapp import BASE_URL, WhatsApp

SESSION = "tapbook:session:{+34600111222}"
PROFILE = "tapbook:profile:{+34600111222}"


def test_one_hash_per_phone_with_version_language_and_step(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    session = db.hgetall(SESSION)
    assert session["v"] == str(CURRENT_VERSION)
    assert session["language"] == "en"
    assert session["step"] == "menu"
    assert Session(session).offered == ["nav1.1:book", "nav1.1:bookings", "nav1.1:language"]
    assert session["opts"] == "nav1:book 9ings 5language"  # compact: see bot.sessions
    assert 1790 <= db.ttl(SESSION) <= 1800


def test_every_write_slides_the_expiry(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    db.expire(SESSION, 5)  # as if the customer had gone quiet for almost 30 minutes
    wa.send("3")
    assert 1790 <= db.ttl(SESSION) <= 1800


def test_the_key_prefix_is_configurable(backend: dict[str, Any]) -> None:
    app = create_app(app_config(REDIS_KEY_PREFIX="salon7", SESSION_TTL_SECONDS=600, **backend))
    WhatsApp(app.test_client(), TOKEN).send("hi")
    db = get_services(app).redis
    assert db.exists("salon7:session:{+34600111222}")
    assert 590 <= db.ttl("salon7:session:{+34600111222}") <= 600
    assert not db.exists(SESSION)


# -- retries ---------------------------------------------------------------------------
def test_a_retried_delivery_gets_the_first_reply_and_changes_nothing(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    form = wa.form("1")
    first = wa.post(form)
    state = db.hgetall(SESSION)
    again = wa.post(form)
    assert again.body == first.body
    assert db.hgetall(SESSION) == state
    assert 50 < db.ttl(f"tapbook:msg:{{+34600111222}}:{form['MessageSid']}") <= 60


def test_a_retry_after_its_reply_expired_changes_nothing_and_sends_nothing(wa: WhatsApp, db: redis.Redis) -> None:
    """Twilio gives up within 15 s; later copies are still recognised, by the session's ``seen``."""
    wa.send("hi")
    form = wa.form("3")  # Language
    wa.post(form)
    wa.send("menu")
    state = db.hgetall(SESSION)
    db.delete(f"tapbook:msg:{{+34600111222}}:{form['MessageSid']}")  # as DEDUPE_TTL_SECONDS would
    signature = wa.validator.compute_signature(BASE_URL + "/webhook", form)
    again = wa.client.post("/webhook", base_url=BASE_URL, data=form, headers={"X-Twilio-Signature": signature})
    assert (again.status_code, again.mimetype) == (200, "text/xml")
    assert b"<Response" in again.data and b"<Message" not in again.data
    assert db.hgetall(SESSION) == state


def test_an_old_message_retried_after_newer_ones_still_gets_its_own_reply(app: Flask, wa: WhatsApp) -> None:
    first = wa.form("hi")
    answer = wa.post(first)
    wa.send("3")
    wa.send("2")  # Spanish now
    assert wa.post(first).body == answer.body  # the English greeting it got back then
    assert get_services(app).stats.get("taps.duplicate") == 1


def test_concurrent_duplicates_change_state_once(app: Flask, db: redis.Redis) -> None:
    wa = WhatsApp(app.test_client(), TOKEN)
    wa.send("hi")
    wa.send("3")
    form = wa.form("2")  # pick Español, delivered 8 times at once
    answers = run_together(8, lambda i: WhatsApp(app.test_client(), TOKEN).post(form))
    assert len({a.body for a in answers}) == 1
    assert db.hget(SESSION, "rev") == "3"
    assert db.hget(PROFILE, "language") == "es"


def test_concurrent_taps_from_one_phone_lose_no_update(redis_server: Any) -> None:
    """16 threads x 5 taps from one phone: every tap is committed exactly once, in turn."""
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(app_config(REDIS_URL=redis_server.url))
    taps_per_thread, threads = 5, 16

    def customer(i: int) -> list[int]:
        wa = WhatsApp(app.test_client(), TOKEN)
        return [wa.send(["hi", "language", "help"][k % 3]).status for k in range(taps_per_thread)]

    statuses = run_together(threads, customer)
    assert all(s == 200 for batch in statuses for s in batch)
    db = get_services(app).redis
    assert db.hget(SESSION, "rev") == str(threads * taps_per_thread)
    assert len(db.keys("tapbook:msg:*")) == threads * taps_per_thread
    stats = get_services(app).stats
    assert stats.get("taps.ok") == threads * taps_per_thread
    assert stats.get("conflicts") > 0  # the taps really did collide


# -- language --------------------------------------------------------------------------
def test_language_param_wins_and_is_stored_in_the_session(wa: WhatsApp, db: redis.Redis) -> None:
    answer = wa.send("hi", path="/webhook?lang=es")
    assert answer.text.startswith("¡Hola, Ana! 👋")
    assert db.hget(SESSION, "language") == "es"
    assert not db.exists(PROFILE)  # the number's language is not the customer's choice


def test_language_param_beats_the_customers_choice(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    wa.send("3")
    wa.send("3")  # Português
    assert wa.send("menu", path="/webhook?lang=es").text.startswith("¿Qué te gustaría hacer?")
    assert db.hget(PROFILE, "language") == "pt"
    assert wa.send("menu").text.startswith("O que gostaria de fazer?")


def test_an_unsupported_or_regional_param_falls_back_sensibly(wa: WhatsApp) -> None:
    assert wa.send("hi", path="/webhook?lang=es-MX").text.startswith("¡Hola")
    assert wa.send("menu", path="/webhook?lang=klingon").text.startswith("¿Qué te gustaría")  # session: es


def test_the_choice_outlives_the_session(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    wa.send("3")
    wa.send("2")
    db.delete(SESSION)  # 30 quiet minutes later the session has expired
    answer = wa.send("hello again")
    assert answer.text.startswith("¡Hola, Ana! 👋")
    assert db.ttl(PROFILE) > 300 * 86_400


def test_without_anything_stored_the_default_language_is_used(backend: dict[str, Any]) -> None:
    app = create_app(app_config(DEFAULT_LANGUAGE="pt", **backend))
    assert WhatsApp(app.test_client(), TOKEN).send("hi").text.startswith("Olá, Ana! 👋")


def test_param_equal_to_the_stored_language_writes_nothing_extra(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi", path="/webhook?lang=es")
    before = db.hgetall(SESSION)
    wa.send("menu", path="/webhook?lang=es")
    after = db.hgetall(SESSION)
    assert {k for k in after if after[k] != before.get(k)} == {"rev", "seen"}  # seen: the messages answered
    assert not db.exists(PROFILE)


# -- migration -------------------------------------------------------------------------
def test_a_legacy_session_is_upgraded_once_and_keeps_its_expiry(
    app: Flask, wa: WhatsApp, db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    db.hset(SESSION, mapping={"step": "menu", "opts": "nav1:language", "name": "Ana"})
    db.expire(SESSION, 900)
    with caplog.at_level(logging.INFO, logger="bot"):
        answer = wa.send("1")
        wa.send("2")
    assert answer.text.startswith("Which language would you like?")  # the old step's option still works
    session = db.hgetall(SESSION)
    assert session["v"] == str(CURRENT_VERSION)
    assert session["name"] == "Ana"  # fields we do not know are kept
    assert db.ttl(SESSION) > 0
    migrated = [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()]
    assert migrated == ["migrated session of +34*****222 to the current layout"]
    assert get_services(app).stats.get("migrations") == 1


def test_a_legacy_session_gets_the_default_language(backend: dict[str, Any]) -> None:
    app = create_app(app_config(DEFAULT_LANGUAGE="es", **backend))
    db = get_services(app).redis
    db.hset(SESSION, mapping={"step": "menu"})
    WhatsApp(app.test_client(), TOKEN).send("menu")
    assert db.hget(SESSION, "language") == "es"


def test_an_unknown_step_resets_politely_to_the_menu(wa: WhatsApp, db: redis.Redis) -> None:
    db.hset(SESSION, mapping={"v": "1", "rev": "4", "language": "en", "step": "pick_colour", "opts": "paint1:red"})
    answer = wa.send("1")
    assert answer.status == 200
    assert answer.text.startswith("Sorry, we had to start our conversation again.")
    assert answer.options == ["Book", "My bookings", "Language"]
    assert db.hget(SESSION, "step") == "menu"


def test_offered_ids_are_stored_compactly_and_read_back_exactly() -> None:
    """Every stored value stays within Redis' listpack limit, so a session stays one small allocation."""
    days = [f"day1.3f:colour:202601{d:02d}" for d in range(14, 23)] + ["page1.3f:more:1"]
    times = [f"time1.3f:{1768388400 + 1800 * k}" for k in range(9)] + ["page1.3f:more:1"]
    session = Session({"turn": "3f"})
    session.offered = days
    assert session.fields()["opts"] == "day1:colour:20260114 j5 j6 j7 j8 j9 i20 j1 j2 0page1:more:1"
    session.offered = times
    stored = session.fields()
    assert session.offered == times
    assert Session(stored).offered == times
    assert all(len(value) <= 64 for value in stored.values())
    assert [name for name in stored if name.startswith("opts")] == ["opts", "opts2"]
    session.offered = ["nav1.3f:menu"]  # a shorter list leaves no chunk of the longer one behind
    assert [name for name in session.fields() if name.startswith("opts")] == ["opts"]
    assert session.offered == ["nav1.3f:menu"]


def test_a_version_1_session_keeps_what_it_offered(wa: WhatsApp, db: redis.Redis) -> None:
    db.hset(SESSION, mapping={"v": "1", "rev": "4", "language": "en", "step": "menu", "turn": "7",
                              "opts": "nav1.7:book nav1.7:bookings nav1.7:language"})  # fmt: skip
    assert wa.tap("nav1.7:language", "Language").text.startswith("Which language would you like?")
    assert db.hget(SESSION, "v") == str(CURRENT_VERSION)

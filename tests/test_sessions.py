"""What Redis keeps for a customer: one hash per business and phone, sliding expiry, retries,
release 1's conversations read and moved."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import create_app, get_services
from bot.legacy import from_layout3
from bot.sessions import FIELD_MAX, Session

from .catalogs import salon
from .concurrency import run_together
from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .whatsapp import BASE_URL, WhatsApp

PHONE = "+34600111222"
SESSION = f"tapbook:{{test}}:session:{PHONE}"
PROFILE = f"tapbook:{{test}}:profile:{PHONE}"


def stored(db: redis.Redis) -> Session:
    return Session(db.hgetall(SESSION))


def test_one_readable_hash_per_business_and_phone(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    session = db.hgetall(SESSION)
    assert sorted(session) == ["lang", "offered", "rev", "step", "turn"]
    assert (session["step"], session["lang"], session["rev"], session["turn"]) == ("menu", "en", "1", "1")
    assert session["offered"] == "nav1:book ~bookings ~language"  # as tapped, less the turn code and repeated heads
    assert stored(db).offered == ["nav1.1:book", "nav1.1:bookings", "nav1.1:language"]
    assert 1790 <= db.ttl(SESSION) <= 1800


def test_every_write_slides_the_expiry(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    db.expire(SESSION, 100)
    wa.send("help")
    assert db.ttl(SESSION) > 1700


def test_the_key_prefix_is_configurable(backend: dict[str, Any]) -> None:
    app = create_app(app_config(REDIS_KEY_PREFIX="salon-7", **backend))
    WhatsApp(app.test_client(), TOKEN).send("hi")
    db = get_services(app).redis
    assert db.exists(f"salon-7:{{test}}:session:{PHONE}")
    assert not db.exists(SESSION)


# -- retries -----------------------------------------------------------------------------------
def test_a_retried_delivery_gets_the_first_reply_and_changes_nothing(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    form = wa.form("1")
    first = wa.post(form)
    state = db.hgetall(SESSION)
    again = wa.post(form)
    assert again.body == first.body
    assert db.hgetall(SESSION) == state
    assert 50 < db.ttl(f"tapbook:{{test}}:msg:{form['MessageSid']}") <= 60


def test_a_retry_after_its_reply_expired_changes_nothing_and_sends_nothing(wa: WhatsApp, db: redis.Redis) -> None:
    """Twilio gives up within 15 s; later copies are still recognised, by the session's ``seen``."""
    wa.send("hi")
    form = wa.form("3")  # Language
    wa.post(form)
    wa.send("menu")
    state = db.hgetall(SESSION)
    db.delete(f"tapbook:{{test}}:msg:{form['MessageSid']}")  # as DEDUPE_TTL_SECONDS would
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
    assert stored(db).rev == "3"
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
    assert Session(db.hgetall(SESSION)).rev == str(threads * taps_per_thread)
    assert len(db.keys("tapbook:{test}:msg:*")) == threads * taps_per_thread
    stats = get_services(app).stats
    assert stats.get("taps.ok") == threads * taps_per_thread
    assert stats.get("conflicts") > 0  # the taps really did collide


# -- language --------------------------------------------------------------------------
def test_language_param_wins_and_is_stored_in_the_session(wa: WhatsApp, db: redis.Redis) -> None:
    answer = wa.send("hi", path="/webhook?lang=es")
    assert answer.text.startswith("¡Hola, Ana! 👋")
    assert stored(db).language == "es"
    assert not db.exists(PROFILE)  # the number's language is not the customer's choice


def test_the_customers_choice_beats_the_language_param(wa: WhatsApp, db: redis.Redis) -> None:
    """A number's ``?lang`` is a default: the customer's own choice wins everywhere."""
    wa.send("hi")
    wa.send("3")
    wa.send("3")  # Português
    assert wa.send("menu", path="/webhook?lang=es").text.startswith("O que gostaria de fazer?")
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


def test_a_business_speaks_only_its_own_languages(backend: dict[str, Any]) -> None:
    app = create_app(app_config(CATALOG=salon(languages=("es", "en")), **backend))
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.send("hi").text.startswith("¡Hola, Ana! 👋")  # its first language is its default
    assert wa.send("hi", path="/webhook?lang=pt").text.startswith("¿Qué")  # Portuguese: not spoken here
    picker = wa.choose(wa.send("menú"), "Idioma")
    assert picker.options == ["English", "Español"]


def test_param_equal_to_the_stored_language_writes_nothing_extra(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hola", path="/webhook?lang=es")
    before = db.hgetall(SESSION)
    wa.send("menu", path="/webhook?lang=es")
    after = db.hgetall(SESSION)
    assert {k for k in after if after[k] != before.get(k)} == {"rev"}
    assert not db.exists(PROFILE)


def test_an_unknown_step_resets_politely_to_the_menu(wa: WhatsApp, db: redis.Redis) -> None:
    db.hset(SESSION, mapping={"rev": "4", "lang": "en", "step": "pick_colour", "offered": "paint1:red"})
    answer = wa.send("1")
    assert answer.status == 200
    assert answer.text.startswith("Sorry, we had to start our conversation again.")
    assert answer.options == ["Book", "My bookings", "Language"]
    assert stored(db).step == "menu"


# -- the offered IDs ---------------------------------------------------------------------------
def test_offered_ids_are_stored_plainly_in_fields_redis_keeps_compact() -> None:
    """Every stored value stays within Redis' listpack limit, so a session stays one small allocation."""
    days = [f"day1.3f:colour:202601{d:02d}" for d in range(14, 23)] + ["page1.3f:more:1"]
    session = Session({"turn": "3f"})
    session.offered = days
    stored_fields = session.fields()
    assert stored_fields["offered"] == "day1:colour:20260114 ~20260115 ~20260116 ~20260117 ~20260118"
    assert stored_fields["offered2"] == "~20260119 ~20260120 ~20260121 ~20260122 page1:more:1"
    assert [name for name in stored_fields if name.startswith("offered")] == ["offered", "offered2"]
    assert all(len(value) <= FIELD_MAX for value in stored_fields.values())
    assert Session(stored_fields).offered == days
    session.offered = ["nav1.3f:menu"]  # a shorter list leaves no chunk of the longer one behind
    assert [name for name in session.fields() if name.startswith("offered")] == ["offered"]
    assert session.offered == ["nav1.3f:menu"]


_FIELD = st.text("abcxyzABZ0123456789_-+.", max_size=12)
_ID = st.builds(
    lambda kind, version, fields: f"{kind}{version}" + "".join(f":{f}" for f in fields),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8),
    st.integers(0, 99),
    st.lists(st.one_of(_FIELD, st.integers(0, 10**12).map(str)), max_size=3),
)
_TURN = st.text("0123456789abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(_ID, max_size=12), turn=_TURN)
def test_any_offered_ids_read_back_exactly(ids: list[str], turn: str) -> None:
    packed = [f"{head}.{turn}{sep}{rest}" for head, sep, rest in (i.partition(":") for i in ids)]
    session = Session({"turn": turn})
    session.offered = packed
    stored_fields = session.fields()
    assert Session(stored_fields).offered == packed
    assert all(len(value) <= FIELD_MAX for name, value in stored_fields.items() if name.startswith("offered"))


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(["rev", "turn", "offered", "offered2", "step", "seen", "lang", "r", "o", "s", "t", "v"]),
        st.one_of(st.text(max_size=20), st.sampled_from(["-1", "0", "1", "9", "Zx", "+-", "+", "é", "²"])),
    )
)
def test_any_stored_hash_is_read_without_raising(data: dict[str, str]) -> None:
    """A corrupted or hand-edited session never crashes a tap, in this layout or release 1's."""
    for session in (Session(dict(data)), Session(from_layout3(dict(data)))):
        assert isinstance(session.offered, list)
        session.next_turn()
        session.offered = [f"nav1.{session.turn}:menu"]
        assert session.fields()["rev"]


@pytest.mark.parametrize("damage", [{"offered": "nav1:book Zx"}, {"turn": "é"}, {"rev": "²"}, {"step": ""}])
def test_a_damaged_session_gets_a_polite_answer_and_carries_on(
    wa: WhatsApp, db: redis.Redis, damage: dict[str, str]
) -> None:
    wa.send("hi")
    db.hset(SESSION, mapping=damage)
    answer = wa.tap("nav1.1:book", "Book")
    assert answer.status == 200
    assert "went wrong" not in answer.text
    assert wa.send("menu").text.startswith("What would you like to do?")


# -- release 1's conversations -------------------------------------------------------------------
#: a session in the middle of a booking, as release 1 kept it (layout 3: one-letter names, coded offers)
LAYOUT3_SUMMARY = {
    "r": "12", "l": "es", "s": "Y", "t": "1k", "n": "4vPrz 0 bTVA9", "c": "checkup", "d": "20261201",
    "h": "9ae203bde3084c9c", "y": "20261201", "a": "1796117400", "x": "1795937500006", "m": "K7Q2MX",
    "b": "T", "name": "Ana", "o": "time1:1796108400 +1e0 + + + + + + + 0page1:more:1",
}  # fmt: skip


def test_a_release_1_session_reads_as_this_layout_keeping_every_field() -> None:
    data = from_layout3(dict(LAYOUT3_SUMMARY))
    session = Session(data)
    assert (session.rev, session.language, session.step, session.turn) == ("12", "es", "summary", "1k")
    expected = {
        "service": "checkup", "day": "20261201", "hold": "9ae203bde3084c9c", "hold_day": "20261201",
        "at": "1796117400", "hold_until": "1795937500006", "moving": "K7Q2MX", "came_from": "times", "name": "Ana",
        "seen": "4vPrz 0 bTVA9",
    }  # fmt: skip
    assert {name: session.get(name) for name in expected} == expected
    times = [f"time1.1k:{1796108400 + 1800 * k}" for k in range(9)]
    assert session.offered == [*times, "page1.1k:more:1"]
    assert all(len(value) <= FIELD_MAX for value in session.fields().values())


@pytest.mark.parametrize(
    ("coded", "ids"),
    [
        ("day1:colour:20260114 j5 j6 j7 j8 j9 +1 + + 0page1:more:1",
         [f"day1:colour:202601{d:02d}" for d in range(14, 23)] + ["page1:more:1"]),
        ("x1:007 38 39 3010 +1", ["x1:007", "x1:8", "x1:9", "x1:010", "x1:11"]),
        ("time1:1768388400 +1e0 + +5k0 0page1:more:1",
         ["time1:1768388400", "time1:1768390200", "time1:1768392000", "time1:1768399200", "page1:more:1"]),
        ("nav1:book 9ings 5language", ["nav1:book", "nav1:bookings", "nav1:language"]),
    ],
)  # fmt: skip
def test_release_1s_coded_offers_read_back_exactly(coded: str, ids: list[str]) -> None:
    assert Session(from_layout3({"r": "1", "t": "5", "o": coded})).offered == [
        f"{head}.5{sep}{rest}" for head, sep, rest in (i.partition(":") for i in ids)
    ]


def test_sessions_older_than_release_1s_layout_are_not_read() -> None:
    assert from_layout3({"v": "2", "rev": "5", "step": "menu", "opts": "nav1:book"}) == {}
    assert from_layout3({"step": "menu", "opts": ""}) == {}  # the seed service's


@pytest.fixture
def upgrading(redis_server: RedisServer) -> redis.Redis:
    """A Redis where release 1 served the test salon: its booking index exists."""
    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    db.flushdb()
    db.zadd("tapbook:bk:{test}:bookings", {"OLDREF": 1768392000})
    return db


def test_a_release_1_conversation_carries_on_and_moves_to_the_new_key(
    upgrading: redis.Redis, redis_server: RedisServer
) -> None:
    db = upgrading
    db.hset(f"tapbook:session:{{{PHONE}}}", mapping={"r": "4", "s": "L", "t": "7", "b": "M", "n": "0",
                                                       "o": "lang1:en 5es 5pt"})  # fmt: skip
    db.expire(f"tapbook:session:{{{PHONE}}}", 900)
    db.hset(f"tapbook:profile:{{{PHONE}}}", "language", "pt")
    app = create_app(app_config(REDIS_URL=redis_server.url))
    wa = WhatsApp(app.test_client(), TOKEN)
    answer = wa.tap("lang1.7:es", "Español")  # a button of release 1's last message
    assert answer.text.startswith("¡Hecho!")
    assert stored(db).rev == "5" and stored(db).step == "menu"
    assert not db.exists(f"tapbook:session:{{{PHONE}}}")  # moved, not copied
    assert db.hget(PROFILE, "language") == "es"
    assert not db.exists(f"tapbook:profile:{{{PHONE}}}")
    assert get_services(app).stats.get("migrations") == 1


def test_a_release_1_language_choice_is_kept(upgrading: redis.Redis, redis_server: RedisServer) -> None:
    upgrading.hset(f"tapbook:profile:{{{PHONE}}}", "language", "pt")
    app = create_app(app_config(REDIS_URL=redis_server.url))
    assert WhatsApp(app.test_client(), TOKEN).send("hi").text.startswith("Olá, Ana! 👋")
    assert upgrading.hget(PROFILE, "language") == "pt"


@pytest.mark.parametrize(
    "damage",
    [
        {"page": "²"},
        {"step": "summary", "service": "cut", "hold": "tok", "hold_day": "20260114", "at": "²", "hold_until": "²"},
        {"step": "summary", "service": "cut", "hold": "tok", "hold_day": "2026011４", "at": "1768388400"},
        {"step": "times", "service": "cut", "day": "²²²²²²²²", "page": "٣"},
    ],
)
def test_odd_digits_in_a_stored_session_never_crash_a_step(
    wa: WhatsApp, db: redis.Redis, damage: dict[str, str]
) -> None:
    """Unicode has digits ``int`` refuses (``²``) and others it takes (``٣``): a hand-edited session
    must still get an answer, never the "something went wrong" apology."""
    wa.send("hi")
    db.hset(SESSION, mapping=damage)
    for text in ("help", "1", "back", "menu"):
        answer = wa.send(text)
        assert answer.status == 200 and "went wrong" not in answer.text, (text, answer.text)

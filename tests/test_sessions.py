"""What Redis keeps for a customer: one hash per phone, sliding expiry, upgrades, retries."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import create_app, get_services
from bot.dispatch import Registry
from bot.sessions import CURRENT_VERSION, MIGRATIONS, Session, migrate, stored_version

from .concurrency import run_together
from .conftest import TOKEN, app_config
from .whatsapp import BASE_URL, WhatsApp

SESSION = "tapbook:session:{+34600111222}"
PROFILE = "tapbook:profile:{+34600111222}"


def stored(db: redis.Redis) -> Session:
    return Session(db.hgetall(SESSION))


def test_one_hash_per_phone_with_version_language_and_step(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    session = db.hgetall(SESSION)
    assert stored_version(session) == CURRENT_VERSION
    assert Session(session).language == ""  # DEFAULT_LANGUAGE: not stored
    assert Session(session).step == "menu"
    assert Session(session).offered == ["nav1.1:book", "nav1.1:bookings", "nav1.1:language"]
    assert session["o"] == "nav1:book 9ings 5language"  # compact: see bot.sessions
    assert session["s"] == "M"  # a built-in step's code
    assert sorted(session) == ["n", "o", "r", "s", "t"]  # one-letter names: every byte counts
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
    assert len(db.keys("tapbook:msg:*")) == threads * taps_per_thread
    stats = get_services(app).stats
    assert stats.get("taps.ok") == threads * taps_per_thread
    assert stats.get("conflicts") > 0  # the taps really did collide


# -- language --------------------------------------------------------------------------
def test_language_param_wins_and_is_stored_in_the_session(wa: WhatsApp, db: redis.Redis) -> None:
    answer = wa.send("hi", path="/webhook?lang=es")
    assert answer.text.startswith("¡Hola, Ana! 👋")
    assert stored(db).language == "es"
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
    assert {k for k in after if after[k] != before.get(k)} == {"r", "n"}  # rev, seen: the messages answered
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
    assert stored_version(session) == CURRENT_VERSION
    assert session["name"] == "Ana"  # fields we do not know are kept
    assert db.ttl(SESSION) > 0
    migrated = [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()]
    assert migrated == ["migrated session of +34*****222 to the current layout"]
    assert get_services(app).stats.get("migrations") == 1


def test_a_legacy_session_gets_the_default_language(backend: dict[str, Any]) -> None:
    app = create_app(app_config(DEFAULT_LANGUAGE="es", **backend))
    db = get_services(app).redis
    db.hset(SESSION, mapping={"step": "menu"})
    assert WhatsApp(app.test_client(), TOKEN).send("menu").text.startswith("¿Qué te gustaría hacer?")
    assert stored_version(db.hgetall(SESSION)) == CURRENT_VERSION


def test_an_unknown_step_resets_politely_to_the_menu(wa: WhatsApp, db: redis.Redis) -> None:
    db.hset(SESSION, mapping={"v": "1", "rev": "4", "language": "en", "step": "pick_colour", "opts": "paint1:red"})
    answer = wa.send("1")
    assert answer.status == 200
    assert answer.text.startswith("Sorry, we had to start our conversation again.")
    assert answer.options == ["Book", "My bookings", "Language"]
    assert stored(db).step == "menu"


def test_offered_ids_are_stored_compactly_and_read_back_exactly() -> None:
    """Every stored value stays within Redis' listpack limit, so a session stays one small allocation."""
    days = [f"day1.3f:colour:202601{d:02d}" for d in range(14, 23)] + ["page1.3f:more:1"]
    times = [f"time1.3f:{1768388400 + 1800 * k}" for k in range(9)] + ["page1.3f:more:1"]
    session = Session({"t": "3f"})
    session.offered = days
    assert session.fields()["o"] == "day1:colour:20260114 j5 j6 j7 j8 j9 +1 + + 0page1:more:1"
    session.offered = times
    assert session.fields()["o"] == "time1:1768388400 +1e0 + + + + + + + 0page1:more:1"
    assert session.offered == times
    assert Session(session.fields()).offered == times
    many = [f"ref1.3f:{ref}:x" for ref in ("K7Q2MX", "B3ZZ9P", "QQ4R7T", "M2M2M2", "X9Y8Z7", "A1B2C3", "P0P0P0")]
    session.offered = many
    stored = session.fields()
    assert Session(stored).offered == many
    assert all(len(value) <= 64 for value in stored.values())
    assert [name for name in stored if name.startswith("o")] == ["o", "o2"]
    session.offered = ["nav1.3f:menu"]  # a shorter list leaves no chunk of the longer one behind
    assert [name for name in session.fields() if name.startswith("o")] == ["o"]
    assert session.offered == ["nav1.3f:menu"]


@pytest.mark.parametrize(
    "ids",
    [
        ["x1:007", "x1:8", "x1:9", "x1:010", "x1:11"],  # leading zeros are kept
        ["a1:9", "a1:10", "a1:100", "a1:99", "b1:99", "b1:100", "b1:101"],  # shrinking, other prefixes
        ["t1:1768388400", "t1:1768390200", "t1:1768392000", "t1:1768399200", "t1:1768401000", "p1:more:1"],
        ["d1:c:20261130", "d1:c:20261201", "d1:c:20261202", "d1:c:20261203"],
    ],
)
def test_offered_ids_coded_by_increase_read_back_exactly(ids: list[str]) -> None:
    session = Session({"t": "5"})
    session.offered = [f"{head}.5:{rest}" for head, _, rest in (i.partition(":") for i in ids)]
    assert [i.replace(".5", "") for i in Session(session.fields()).offered] == ids


def test_a_version_1_session_keeps_what_it_offered(wa: WhatsApp, db: redis.Redis) -> None:
    db.hset(SESSION, mapping={"v": "1", "rev": "4", "language": "en", "step": "menu", "turn": "7",
                              "opts": "nav1.7:book nav1.7:bookings nav1.7:language"})  # fmt: skip
    assert wa.tap("nav1.7:language", "Language").text.startswith("Which language would you like?")
    assert stored_version(db.hgetall(SESSION)) == CURRENT_VERSION


#: a session in the middle of a booking, as layout 2 (the release before one-letter names) kept it
V2_SUMMARY = {
    "v": "2", "rev": "12", "language": "es", "step": "summary", "turn": "1k", "seen": "3f9a0c1 0000000 a7b8c9d",
    "svc": "checkup", "day": "20261201", "hold": "9ae203bde3084c9c", "hday": "20261201", "at": "1796117400",
    "hexp": "1795937500006", "resched": "K7Q2MX", "prev": "times", "name": "Ana",
    "opts": "time1:1796108400 b10200 c2000 c3800 c5600 c7400 c9200 b21000", "opts2": "c2800 0page1:more:1",
}  # fmt: skip


def test_a_version_2_session_is_upgraded_keeping_every_field() -> None:
    data, migrated = migrate(dict(V2_SUMMARY), "en")
    assert migrated and stored_version(data) == CURRENT_VERSION
    session = Session(data)
    assert (session.rev, session.language, session.step, session.turn) == ("12", "es", "summary", "1k")
    for name in ("svc", "day", "hold", "hday", "at", "hexp", "resched", "prev", "name"):
        assert session.get(name) == V2_SUMMARY[name], name
    times = [f"time1.1k:{1796108400 + 1800 * k}" for k in range(9)]
    assert session.offered == [*times, "page1.1k:more:1"]
    assert data["n"] == "4vPrz 0 bTVA9"  # the same 28 bits of each MessageSid, in base 62
    assert "v" not in data and not {"rev", "seen", "opts", "opts2", "step"} & set(data)
    assert (data["s"], data["b"]) == ("Y", "T")  # summary, times
    assert all(len(value) <= 64 for value in session.fields().values())
    assert Session(migrate(dict(V2_SUMMARY), "es")[0]).language == ""  # the default is not stored


def test_a_version_2_session_still_knows_its_answered_messages(wa: WhatsApp, db: redis.Redis) -> None:
    form = wa.form("3")
    db.hset(SESSION, mapping={"v": "2", "rev": "5", "language": "en", "step": "menu", "turn": "2",
                              "seen": form["MessageSid"][-7:], "opts": "nav1:book 9ings 5language"})  # fmt: skip
    before = db.hgetall(SESSION)
    late = wa.post(form)  # answered before the upgrade; its reply record has lapsed
    assert late.status == 200 and late.text == ""
    assert db.hgetall(SESSION) == before
    assert wa.tap("nav1.2:language", "Language").text.startswith("Which language would you like?")
    after = Session(db.hgetall(SESSION))
    assert (stored_version(db.hgetall(SESSION)), after.rev, after.step) == (CURRENT_VERSION, "6", "language")
    assert wa.post(form).text == ""  # still recognised in the new layout


def test_a_step_cannot_be_named_like_a_stored_step_code() -> None:
    registry = Registry("menu")
    with pytest.raises(ValueError, match="built-in step"):
        registry.step("M")(lambda turn: None)  # type: ignore[arg-type,return-value]


# -- decoding is total ----------------------------------------------------------------------
_FIELD = st.text("abcxyzABZ0123456789_-+.", max_size=12)
_ID = st.builds(
    lambda kind, version, fields: f"{kind}{version}" + "".join(f":{f}" for f in fields),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8),
    st.integers(0, 99),
    st.lists(st.one_of(_FIELD, st.integers(0, 10**12).map(str)), max_size=3),
)


@settings(max_examples=500, deadline=None)
@given(ids=st.lists(_ID, max_size=12), turn=st.text("0123456789abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=4))
def test_any_offered_ids_read_back_exactly(ids: list[str], turn: str) -> None:
    packed = [f"{head}.{turn}{sep}{rest}" for head, sep, rest in (i.partition(":") for i in ids)]
    session = Session({"t": turn})
    session.offered = packed
    stored_fields = session.fields()
    assert Session(stored_fields).offered == packed
    assert Session(migrate(stored_fields, "en")[0]).offered == packed


_TEXT = st.text(max_size=20)


@settings(max_examples=500, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(["v", "r", "rev", "t", "turn", "o", "o2", "opts", "opts2", "s", "step", "n", "seen", "l"]),
        st.one_of(_TEXT, st.sampled_from(["-1", "0", "1", "2", "3", "9", "Zx", "+-", "+", "é", "²"])),
    )
)
def test_any_stored_hash_is_read_without_raising(data: dict[str, str]) -> None:
    """A corrupted or hand-edited session never crashes a tap: what cannot be read offers nothing."""
    session = Session(migrate(dict(data), "en")[0])
    assert isinstance(session.offered, list)
    session.next_turn()
    session.offered = [f"nav1.{session.turn}:menu"]
    assert session.fields()["r"]


@pytest.mark.parametrize("damage", [{"o": "nav1:book Zx"}, {"o": "nav1:book +-"}, {"t": "é"}, {"v": "-1"}, {"r": "²"}])
def test_a_damaged_session_gets_a_polite_answer_and_carries_on(
    wa: WhatsApp, db: redis.Redis, damage: dict[str, str]
) -> None:
    wa.send("hi")
    db.hset(SESSION, mapping=damage)
    answer = wa.tap("nav1.1:book", "Book")
    assert answer.status == 200
    assert "went wrong" not in answer.text
    assert wa.send("menu").text.startswith("What would you like to do?")


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(_ID, max_size=12), turn=st.text("0123456789abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=4))
def test_any_ids_offered_under_layout_1_or_2_still_match_after_the_upgrade(ids: list[str], turn: str) -> None:
    packed = [f"{head}.{turn}{sep}{rest}" for head, sep, rest in (i.partition(":") for i in ids)]
    layout1 = {"v": "1", "rev": "3", "language": "en", "step": "times", "turn": turn, "opts": " ".join(packed)}
    layout2 = {**MIGRATIONS[1](layout1, "en"), "v": "2"}
    for old in (layout1, layout2):
        data, migrated = migrate(dict(old), "en")
        assert migrated and Session(data).offered == packed
        assert (Session(data).rev, Session(data).step, Session(data).turn) == ("3", "times", turn)


def test_a_step_button_offered_under_layout_2_works_after_the_upgrade(wa: WhatsApp, db: redis.Redis) -> None:
    db.hset(SESSION, mapping={"v": "2", "rev": "5", "language": "en", "step": "services", "turn": "7",
                              "seen": "0000000", "opts": "svc1:cut 5dry 0nav1:back"})  # fmt: skip
    answer = wa.tap("svc1.7:dry", "Blow-dry")
    assert answer.text.startswith("Blow-dry: which day suits you?"), answer.text
    assert stored(db).get("svc") == "dry" and stored(db).step == "dates"
    assert wa.tap("svc1.7:cut", "Haircut").text.startswith("That menu is out of date.")

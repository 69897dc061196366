"""The storage contract of a tap, on fakeredis and on a real server: one load, one all-or-nothing write."""

from __future__ import annotations

from datetime import date
from typing import Any

import fakeredis
import pytest
import redis
from redis.crc import key_slot

from bot.booking.requests import HoldRequest, ReleaseRequest
from bot.config import Settings
from bot.i18n import Catalogs
from bot.lua import Scripts
from bot.store import ANSWERED_KEEP, Status, TapPlan, TapStore, answered_id
from bot.tenants import Tenant, build_tenant

from .catalogs import salon

PHONE, SID, SID2 = "+34600111222", "SM" + "1" * 32, "SM" + "2" * 32
DAY = date(2026, 1, 14)
NOON = 1768388400


@pytest.fixture
def shop(client: redis.Redis) -> Tenant:
    settings = Settings.from_mapping({"REDIS_KEY_PREFIX": "t"})
    return build_tenant(
        salon(), client=client, scripts=Scripts(client), settings=settings, catalogs=Catalogs.load(), single=True
    )


@pytest.fixture
def store(client: redis.Redis) -> TapStore:
    return TapStore(client, Scripts(client), session_ttl=1800, profile_ttl=86_400, dedupe_ttl=172_800)


NOW_MS = 1768381200000  # the app's clock: Wed 14 Jan 2026, 09:00 UTC


def apply(
    store: TapStore, shop: Tenant, sid: str, rev: str, reply: str, *requests: Any, now_ms: int = NOW_MS, **fields: str
) -> Any:
    return store.apply(
        TapPlan(
            shop=shop,
            phone=PHONE,
            message_sid=sid,
            expected_rev=rev,
            fields={"rev": str(int(rev or 0) + 1), **fields},
            reply=reply,
            requests=list(requests),
            profile_language=fields.get("lang"),
            now_ms=now_ms,
        )
    )


def hold(client: redis.Redis, token: str, start: int = NOON, capacity: int = 1) -> HoldRequest:
    seconds, micros = client.time()
    expires = int(seconds) * 1000 + int(micros) // 1000 + 600_000
    return HoldRequest("cut", DAY, token, start, start + 1800, capacity, expires)


def test_every_key_of_a_tap_shares_the_business_hash_tag(shop: Tenant) -> None:
    keys = [shop.keys.session(PHONE), shop.keys.profile(PHONE), shop.keys.message(SID), shop.keys.outbox(PHONE)]
    keys += [shop.keys.due, shop.keys.window(PHONE), shop.keys.occupancy("cut", DAY), shop.keys.booking("K7Q2MX")]
    assert keys[0] == "t:{test}:session:+34600111222"
    assert len({key_slot(key.encode()) for key in keys}) == 1


def test_a_first_load_is_empty(store: TapStore, shop: Tenant) -> None:
    snapshot = store.load(shop, PHONE, SID, [])
    assert (snapshot.prior_reply, snapshot.session, snapshot.profile_language) == (None, {}, None)


def test_apply_saves_the_session_reply_and_profile_with_expiries(
    store: TapStore, shop: Tenant, client: redis.Redis
) -> None:
    assert apply(store, shop, SID, "", "<Response/>", step="menu", lang="es").status is Status.OK
    snapshot = store.load(shop, PHONE, SID, [])
    assert snapshot.prior_reply == "<Response/>"
    assert snapshot.session == {"rev": "1", "step": "menu", "lang": "es"}
    assert client.zrange(shop.keys.answered(PHONE), 0, -1, withscores=True) == [(answered_id(SID), NOW_MS // 1000)]
    assert snapshot.profile_language == "es"
    assert 1790 < client.ttl(shop.keys.session(PHONE)) <= 1800
    assert 86_300 < client.ttl(shop.keys.profile(PHONE)) <= 86_400
    assert 172_700 < client.ttl(shop.keys.message(SID)) <= 172_800


def test_apply_replaces_the_whole_hash(store: TapStore, shop: Tenant) -> None:
    apply(store, shop, SID, "", "a", step="menu", extra="x")
    apply(store, shop, SID2, "1", "b", step="language")
    assert store.load(shop, PHONE, SID2, []).session == {"rev": "2", "step": "language"}


def test_a_message_is_applied_once(store: TapStore, shop: Tenant) -> None:
    apply(store, shop, SID, "", "first", step="menu")
    again = apply(store, shop, SID, "1", "second", step="other")
    assert (again.status, again.prior_reply) == (Status.DUPLICATE, "first")
    assert store.load(shop, PHONE, SID2, []).session["step"] == "menu"


def test_a_stale_rev_is_a_conflict_and_writes_nothing(store: TapStore, shop: Tenant, client: redis.Redis) -> None:
    apply(store, shop, SID, "", "first", step="menu")
    token = "tok-lost"
    lost = apply(store, shop, SID2, "", "second", hold(client, token), step="other")
    assert lost.status is Status.CONFLICT
    assert not client.exists(shop.keys.message(SID2))
    assert store.load(shop, PHONE, SID2, []).session["step"] == "menu"
    assert token not in client.hgetall(shop.keys.occupancy("cut", DAY))  # no hold without its session


def test_a_message_whose_record_expired_is_still_applied_once(
    store: TapStore, shop: Tenant, client: redis.Redis
) -> None:
    apply(store, shop, SID, "", "first", step="menu")
    client.delete(shop.keys.message(SID))  # past DEDUPE_TTL_SECONDS
    snapshot = store.load(shop, PHONE, SID, [])
    assert (snapshot.prior_reply, snapshot.answered) == (None, True)
    again = apply(store, shop, SID, "1", "second", step="other")
    assert (again.status, again.prior_reply) == (Status.DUPLICATE, None)
    assert store.load(shop, PHONE, SID2, []).session["step"] == "menu"


HOUR_MS = 3_600_000


def recognised(store: TapStore, shop: Tenant, sid: str) -> bool:
    """Whether a copy of message ``sid`` would change nothing (its reply is kept, or it is remembered)."""
    snapshot = store.load(shop, PHONE, sid, [])
    return snapshot.prior_reply is not None or snapshot.answered


def test_every_message_of_the_last_48_hours_and_the_last_100_are_remembered(
    store: TapStore, shop: Tenant, client: redis.Redis
) -> None:
    sids = [f"SM{n:032x}" for n in range(1, 151)]
    for n, sid in enumerate(sids):  # one message an hour for 150 hours
        assert (
            apply(store, shop, sid, str(n or ""), "reply", now_ms=NOW_MS + n * HOUR_MS, step="menu").status is Status.OK
        )
    kept = client.zrange(shop.keys.answered(PHONE), 0, -1)
    assert kept == [answered_id(sid) for sid in sids[-ANSWERED_KEEP:]]  # more than the last 48 hours' 48
    if not isinstance(client, fakeredis.FakeRedis):  # fakeredis has no OBJECT ENCODING
        assert client.object("encoding", shop.keys.answered(PHONE)) == "listpack"  # one small allocation
    assert 29 * 86_400 < client.ttl(shop.keys.answered(PHONE)) <= 30 * 86_400
    for sid in sids[-ANSWERED_KEEP:]:
        client.delete(shop.keys.message(sid))  # their reply records lapsed long ago
        assert recognised(store, shop, sid)  # a copy of any of them changes nothing
    client.delete(shop.keys.message(sids[0]))
    assert not recognised(store, shop, sids[0])  # 150 messages ago: forgotten


def test_a_burst_keeps_every_message_of_the_last_48_hours(store: TapStore, shop: Tenant, client: redis.Redis) -> None:
    sids = [f"SM{n:032x}" for n in range(1, 131)]
    for n, sid in enumerate(sids):  # 130 messages within one hour
        apply(store, shop, sid, str(n or ""), "reply", now_ms=NOW_MS + n * 1000, step="menu")
    assert client.zcard(shop.keys.answered(PHONE)) == 130
    client.delete(*(shop.keys.message(sid) for sid in sids))
    assert all(recognised(store, shop, sid) for sid in sids)


def test_an_answered_id_is_48_bits_in_at_most_9_characters() -> None:
    assert answered_id("SM" + "f" * 32) == "1hVwxnaA7"
    assert len({answered_id(f"SM{n:032x}") for n in range(10_000)}) == 10_000


# -- the booking requests go with the session, or nothing does ----------------------------------
def test_a_hold_is_written_with_the_session(store: TapStore, shop: Tenant, client: redis.Redis) -> None:
    assert apply(store, shop, SID, "", "held", hold(client, "tok-a"), step="summary", hold="tok-a").status is Status.OK
    assert "tok-a" in client.hgetall(shop.keys.occupancy("cut", DAY))
    assert store.load(shop, PHONE, SID2, []).session["hold"] == "tok-a"


def test_a_refused_request_writes_nothing_at_all(store: TapStore, shop: Tenant, client: redis.Redis) -> None:
    """Another customer holds noon: the tap's hold is refused, and with it its session, reply and profile."""
    apply(store, shop, SID, "", "mine", hold(client, "theirs"), step="summary")
    before = {key: client.type(key) for key in client.scan_iter("t:*")}
    refused = apply(store, shop, SID2, "1", "held!", hold(client, "tok-b"), step="summary", lang="pt")
    assert (refused.status, refused.refused, refused.outcome) == (Status.REFUSED, 0, ("taken", ""))
    assert {key: client.type(key) for key in client.scan_iter("t:*")} == before
    assert store.load(shop, PHONE, SID2, []).session["rev"] == "1"


def test_a_new_hold_and_the_release_of_the_old_one_are_one_write(
    store: TapStore, shop: Tenant, client: redis.Redis
) -> None:
    apply(store, shop, SID, "", "a", hold(client, "tok-a"), step="summary", hold="tok-a")
    moved = HoldRequest("cut", DAY, "tok-b", NOON + 900, NOON + 2700, 1, hold(client, "x").expires_ms, skip=("tok-a",))
    done = apply(store, shop, SID2, "1", "b", moved, ReleaseRequest("cut", DAY, "tok-a"), step="summary", hold="tok-b")
    assert done.status is Status.OK
    assert list(client.hgetall(shop.keys.occupancy("cut", DAY))) == ["tok-b"]


def test_the_reply_goes_to_the_outbox_with_its_doorbell_and_window_stamp(
    store: TapStore, shop: Tenant, client: redis.Redis
) -> None:
    plan = TapPlan(
        shop=shop,
        phone=PHONE,
        message_sid=SID,
        expected_rev="",
        fields={"rev": "1", "step": "menu"},
        reply="<Response/>",
        requests=[],
        outbound='{"body":"hi"}',
        window_ms=1768381200000,
        now_ms=1768381200000,
    )
    assert store.apply(plan).status is Status.OK
    ((_, fields),) = client.xrange(shop.keys.outbox(PHONE))
    assert fields == {"m": '{"body":"hi"}'}
    assert client.zscore(shop.keys.due, PHONE) == 1768381200000
    assert client.get(shop.keys.window(PHONE)) == "1768381200000"

"""The booking store's contract, on fakeredis and on a real server: what a customer or owner would notice.

Instants are fixed epoch seconds on Wed 14 Jan 2026 in Madrid; the app's ``now`` is passed in;
hold expiry follows the Redis clock, and tests make holds lapse by ageing them (``age_holds``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis

from bot.booking.catalog import Service
from bot.booking.occupancy import Occupancy
from bot.booking.requests import BookRequest, CancelRequest, HoldRequest, Moving, ReleaseRequest, Request
from bot.booking.slots import fits, occupancy
from bot.booking.store import BookingStore, Written
from bot.keys import BusinessKeys
from bot.lua import Scripts

from .bookings import age_holds
from .concurrency import run_together
from .redis_server import RedisServer

MADRID = ZoneInfo("Europe/Madrid")
DAY = date(2026, 1, 14)
RESOURCE = "chair"
PHONE, OTHER = "+34600111222", "+34600333444"
LONG_HOLD = 10 * 60_000  # ms: outlives any test
MINUTE = 60


def at(hour: int, minute: int = 0, day: date = DAY) -> int:
    """Epoch seconds of a Madrid wall time."""
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=MADRID).timestamp())


NOON = at(12)  # 11:00 UTC
NOW = at(12) - 24 * 3600  # the app's clock: the day before, so notice and cut-off are far away


def booking_store(client: redis.Redis) -> BookingStore:
    return BookingStore(client, BusinessKeys("t", "test"), Scripts(client))


@pytest.fixture
def store(client: redis.Redis) -> BookingStore:
    return booking_store(client)


def write(store: BookingStore, *requests: Request) -> Written:
    return store.write(*requests)


def hold(
    store: BookingStore,
    token: str,
    start: int,
    end: int | None = None,
    *,
    capacity: int = 1,
    hold_ms: int = LONG_HOLD,
    day: date = DAY,
    resource: str = RESOURCE,
    release: tuple[date, str] | None = None,
    exclude: str = "",
) -> Written:
    """Hold ``[start, end)`` for ``token``; ``release``: the customer's previous hold, given back in the
    same write (as the conversation does); ``exclude``: the REF of a booking being moved."""
    request = HoldRequest(
        resource=resource,
        day=day,
        token=token,
        start=start,
        end=end if end is not None else start + 30 * MINUTE,
        capacity=capacity,
        expires_ms=redis_ms(store.client) + hold_ms,
        moving=Moving(exclude, RESOURCE, DAY) if exclude else None,
        skip=(release[1],) if release else (),
    )
    requests: list[Request] = [request]
    if release:
        requests.append(ReleaseRequest(resource, release[0], release[1]))
    return write(store, *requests)


def book(
    store: BookingStore,
    token: str,
    ref: str,
    start: int,
    end: int | None = None,
    *,
    phone: str = PHONE,
    capacity: int = 1,
    now: int = NOW,
    notice: int = 0,
    max_active: int = 10,
    day: date = DAY,
    resource: str = RESOURCE,
    move: Moving | None = None,
    cutoff: int = 0,
    interval: tuple[int, int] | None = None,
) -> Written:
    end = end if end is not None else start + 30 * MINUTE
    fields = {
        "phone": phone,
        "service": "cut",
        "start": str(start),
        "end": str(end),
        "day": day.strftime("%Y%m%d"),
        "status": "confirmed",
        "ref": ref,
    }
    a, b = interval or (start, end)
    request = BookRequest(
        resource=resource,
        day=day,
        token=token,
        ref=ref,
        start=a,
        end=b,
        capacity=capacity,
        now=now,
        notice=notice,
        max_active=max_active,
        cutoff=cutoff,
        phone=phone,
        fields=fields,
        moving=move,
    )
    return write(store, request)


def cancel(store: BookingStore, ref: str, *, phone: str = PHONE, now: int = NOW, cutoff: int = 0) -> str:
    return store.cancel(CancelRequest(ref=ref, phone=phone, resource=RESOURCE, day=DAY, now=now, cutoff=cutoff))


def entries(client: redis.Redis, store: BookingStore, day: date = DAY, resource: str = RESOURCE) -> dict[str, str]:
    return client.hgetall(store.keys.occupancy(resource, day))


def place(start: int, end: int, count: int = 1) -> dict[str, str]:
    """A day's entry for ``count`` bookings of ``[start, end)``."""
    return {f"={start},{end}": f"{start},{end},0,{count}"}


def booking_keys(client: redis.Redis, store: BookingStore) -> list[str]:
    return sorted(client.scan_iter(match=store.keys.booking("*")))


def redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def service(minutes: int = 30, capacity: int = 1, before: int = 0, after: int = 0) -> Service:
    return Service("cut", minutes, capacity, "10", {"en": "Cut"}, before, after)


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# -- hold, then book -------------------------------------------------------------------------


def test_the_instants_are_madrid_wall_times() -> None:
    assert utc(NOON) == datetime(2026, 1, 14, 11, 0, tzinfo=UTC)


def test_a_held_slot_becomes_a_permanent_booking(store: BookingStore, client: redis.Redis) -> None:
    before = redis_ms(client)
    held = hold(store, "tok-a", NOON)
    assert held.status == "held"
    assert before + LONG_HOLD <= int(held.value) <= redis_ms(client) + LONG_HOLD
    assert entries(client, store) == {"tok-a": f"{NOON},{NOON + 1800},{held.value}"}

    assert book(store, "tok-a", "REF1", NOON) == Written("booked", "REF1")

    saved = store.booking("REF1")
    assert saved["status"] == "confirmed"
    assert (saved["phone"], saved["start"], saved["ref"]) == (PHONE, str(NOON), "REF1")
    assert client.ttl(store.keys.booking("REF1")) == -1  # a booking never expires
    assert client.zrange(store.keys.customer(PHONE), 0, -1, withscores=True) == [("REF1", NOON)]
    assert client.zrange(store.keys.bookings, 0, -1, withscores=True) == [("REF1", NOON)]
    # the hold became the booking: one entry, under the REF, never expiring
    assert entries(client, store) == place(NOON, NOON + 1800)
    assert store.occupancy(RESOURCE, [DAY]).days == {DAY: {f"={NOON},{NOON + 1800}": (NOON, NOON + 1800, 0, 1)}}
    assert saved["occ"] == f"{NOON},{NOON + 1800}"


def test_confirming_twice_makes_one_booking(store: BookingStore, client: redis.Redis) -> None:
    hold(store, "tok-a", NOON)
    assert book(store, "tok-a", "REF1", NOON) == Written("booked", "REF1")
    # a retried or double-tapped confirm: the hold map answers with the first REF, even for a new ref
    assert book(store, "tok-a", "REF1", NOON) == Written("booked", "REF1")
    assert book(store, "tok-a", "REF2", NOON) == Written("booked", "REF1")
    assert booking_keys(client, store) == [store.keys.booking("REF1")]
    assert entries(client, store) == place(NOON, NOON + 1800)
    assert client.zcard(store.keys.customer(PHONE)) == 1
    assert 172_700 < client.ttl(store.keys.from_hold("tok-a")) <= 172_800


def test_booking_without_a_hold_takes_a_free_slot(store: BookingStore) -> None:
    assert book(store, "tok-a", "REF1", NOON) == Written("booked", "REF1")


def test_a_reused_ref_is_refused_without_touching_the_first_booking(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "REF1", NOON)
    assert book(store, "tok-b", "REF1", at(15), phone=OTHER) == Written("ref_taken", "REF1")
    assert store.booking("REF1")["phone"] == PHONE
    assert client.zcard(store.keys.customer(OTHER)) == 0


# -- conflicts ---------------------------------------------------------------------------------

OVERLAPPING = {
    "same": (NOON, NOON + 1800),
    "starts-inside": (NOON + 600, NOON + 2400),
    "ends-inside": (NOON - 600, NOON + 600),
    "contains": (NOON - 600, NOON + 2400),
    "inside": (NOON + 300, NOON + 900),
}


@pytest.mark.parametrize("other", OVERLAPPING.values(), ids=OVERLAPPING.keys())
def test_a_live_hold_keeps_others_out(store: BookingStore, client: redis.Redis, other: tuple[int, int]) -> None:
    assert hold(store, "tok-a", NOON).status == "held"
    assert hold(store, "tok-b", *other) == Written("taken", "")
    assert book(store, "tok-b", "REF2", *other, phone=OTHER) == Written("taken", "")
    assert book(store, "tok-a", "REF1", NOON) == Written("booked", "REF1")
    assert booking_keys(client, store) == [store.keys.booking("REF1")]


@pytest.mark.parametrize("other", OVERLAPPING.values(), ids=OVERLAPPING.keys())
def test_a_booking_keeps_others_out(store: BookingStore, client: redis.Redis, other: tuple[int, int]) -> None:
    book(store, "tok-a", "REF1", NOON)
    assert hold(store, "tok-b", *other).status == "taken"
    assert book(store, "tok-b", "REF2", *other, phone=OTHER).status == "taken"
    assert entries(client, store) == place(NOON, NOON + 1800)
    assert client.zcard(store.keys.customer(OTHER)) == 0


def test_touching_intervals_do_not_conflict(store: BookingStore) -> None:
    book(store, "tok-a", "REF1", NOON, NOON + 1800)
    assert hold(store, "tok-b", NOON + 1800, NOON + 3600).status == "held"  # starts as it ends
    assert hold(store, "tok-c", NOON - 1800, NOON).status == "held"  # ends as it starts
    assert book(store, "tok-b", "REF2", NOON + 1800, NOON + 3600, phone=OTHER).status == "booked"
    assert book(store, "tok-c", "REF3", NOON - 1800, NOON, phone=OTHER).status == "booked"


def test_buffers_stack(store: BookingStore) -> None:
    colour = service(minutes=30, after=10)  # cleaning after
    perm = service(minutes=30, before=15)  # preparing before
    book(store, "tok-a", "REF1", NOON, interval=occupancy(colour, utc(NOON)))  # blocks 12:00-12:40
    # 12:50 with 15 min before needs 12:35: the buffers overlap although the services do not
    assert hold(store, "tok-b", *occupancy(perm, utc(at(12, 50)))).status == "taken"
    # 12:55 needs 12:40, exactly where the cleaning ends
    assert hold(store, "tok-c", *occupancy(perm, utc(at(12, 55)))).status == "held"


def test_other_resources_and_days_far_away_do_not_conflict(store: BookingStore) -> None:
    book(store, "tok-a", "REF1", NOON)
    assert hold(store, "tok-b", NOON, resource="sink").status == "held"
    later = DAY + timedelta(days=7)
    assert hold(store, "tok-c", at(12, day=later), day=later).status == "held"


def test_a_late_entry_filed_the_day_before_is_seen(store: BookingStore) -> None:
    """Entries are filed under their start's day; a check reads the neighbours for what crosses midnight."""
    night = DAY - timedelta(days=1)
    book(store, "tok-a", "REF1", at(23, 30, night), at(0, 30), day=night)  # 23:30-00:30
    assert hold(store, "tok-b", at(0, 0), at(0, 30)).status == "taken"
    assert hold(store, "tok-c", at(0, 30), at(1, 0)).status == "held"


def test_three_chairs_take_three_customers(store: BookingStore, client: redis.Redis) -> None:
    assert hold(store, "tok-a", at(12, 0), at(12, 30), capacity=3).status == "held"
    assert hold(store, "tok-b", at(12, 10), at(12, 40), capacity=3).status == "held"
    assert book(store, "tok-c", "REFC", at(12, 20), at(12, 50), capacity=3).status == "booked"
    # at 12:25 all three are busy
    assert hold(store, "tok-d", at(12, 25), at(12, 35), capacity=3).status == "taken"
    assert book(store, "tok-d", "REFD", at(12, 25), at(12, 35), capacity=3, phone=OTHER).status == "taken"
    # but at 12:40 only the booking is, and before 12:00 nothing
    assert hold(store, "tok-e", at(12, 40), at(13, 10), capacity=3).status == "held"
    assert hold(store, "tok-f", at(11, 0), at(12, 0), capacity=3).status == "held"

    assert cancel(store, "REFC") == "ok"  # frees exactly one place
    assert hold(store, "tok-d", at(12, 25), at(12, 35), capacity=3).status == "held"
    assert hold(store, "tok-g", at(12, 25), at(12, 35), capacity=3).status == "taken"
    assert "tok-g" not in entries(client, store)


# -- cancelling --------------------------------------------------------------------------------


def test_cancelling_keeps_the_record_and_frees_the_slot(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "REF1", NOON)
    assert cancel(store, "REF1", now=NOW + 5) == "ok"
    assert cancel(store, "REF1", now=NOW + 6) == "cancelled"

    saved = store.booking("REF1")
    assert (saved["status"], saved["changed_at"], saved["start"]) == ("cancelled", str(NOW + 5), str(NOON))
    assert client.ttl(store.keys.booking("REF1")) == -1
    assert client.zcard(store.keys.customer(PHONE)) == 0
    assert client.zscore(store.keys.bookings, "REF1") == NOON  # the owner's history keeps it
    assert entries(client, store) == {}
    assert store.upcoming(PHONE, NOW) == []
    assert book(store, "tok-b", "REF2", NOON, phone=OTHER).status == "booked"


def test_nobody_else_can_cancel(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "REF1", NOON)
    assert cancel(store, "REF1", phone=OTHER) == "unknown"
    assert cancel(store, "NOSUCH") == "unknown"
    assert store.booking("REF1")["status"] == "confirmed"
    assert entries(client, store) == place(NOON, NOON + 1800)
    assert client.zcard(store.keys.customer(PHONE)) == 1


def test_cancelling_inside_the_cutoff_is_too_late(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "REF1", NOON)
    assert cancel(store, "REF1", now=NOON - 3599, cutoff=3600) == "too_late"
    assert store.booking("REF1")["status"] == "confirmed"
    assert "changed_at" not in store.booking("REF1")
    assert entries(client, store) == place(NOON, NOON + 1800)
    assert client.zscore(store.keys.customer(PHONE), "REF1") == NOON
    assert cancel(store, "REF1", now=NOON - 3600, cutoff=3600) == "ok"  # exactly the cut-off is still allowed


# -- rules re-checked at commit ----------------------------------------------------------------


def test_a_customer_has_at_most_max_active_upcoming_bookings(store: BookingStore, client: redis.Redis) -> None:
    assert book(store, "tok-a", "REF1", at(12), max_active=2).status == "booked"
    assert book(store, "tok-b", "REF2", at(13), max_active=2).status == "booked"
    assert book(store, "tok-c", "REF3", at(14), max_active=2) == Written("limit", "")
    assert booking_keys(client, store) == [store.keys.booking("REF1"), store.keys.booking("REF2")]
    assert book(store, "tok-c", "REF3", at(14), max_active=2, phone=OTHER).status == "booked"  # per phone
    # once the first has started (start <= now) it no longer counts
    assert book(store, "tok-d", "REF4", at(15), max_active=2, now=at(12)).status == "booked"


def test_cancelled_bookings_do_not_count_towards_the_limit(store: BookingStore) -> None:
    book(store, "tok-a", "REF1", at(12), max_active=1)
    assert book(store, "tok-b", "REF2", at(13), max_active=1).status == "limit"
    cancel(store, "REF1")
    assert book(store, "tok-b", "REF2", at(13), max_active=1).status == "booked"


def test_notice_is_checked_again_when_booking(store: BookingStore, client: redis.Redis) -> None:
    now = NOON - 2 * 3600
    assert hold(store, "tok-a", NOON).status == "held"
    # the hold was taken in time, but the customer confirmed too late
    assert book(store, "tok-a", "REF1", NOON, now=now, notice=2 * 3600 + 1) == Written("too_late", "")
    assert booking_keys(client, store) == []
    assert "tok-a" in entries(client, store)  # the hold is left as it was
    assert book(store, "tok-a", "REF1", NOON, now=now, notice=2 * 3600) == Written("booked", "REF1")


# -- rescheduling ------------------------------------------------------------------------------


def test_a_booking_can_move_over_its_own_old_time(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "OLD", NOON)
    new = (NOON + 900, NOON + 2700)  # overlaps its own 12:00-12:30
    assert hold(store, "tok-b", *new).status == "taken"  # without excluding it, it is in the way
    assert hold(store, "tok-b", *new, exclude="OLD").status == "held"
    moved = book(store, "tok-b", "NEW", *new, move=Moving("OLD", RESOURCE, DAY), now=NOW + 7)
    assert moved == Written("booked", "NEW")

    old, now_ = store.booking("OLD"), store.booking("NEW")
    assert (old["status"], old["rescheduled_to"]) == ("rescheduled", "NEW")
    assert old["changed_at"] == str(NOW + 7)
    assert (now_["status"], now_["rescheduled_from"], now_["start"]) == ("confirmed", "OLD", str(NOON + 900))
    assert client.zrange(store.keys.customer(PHONE), 0, -1) == ["NEW"]
    assert client.zrange(store.keys.bookings, 0, -1) == ["OLD", "NEW"]
    assert entries(client, store) == place(NOON + 900, NOON + 2700)
    assert [b["ref"] for b in store.upcoming(PHONE, NOW)] == ["NEW"]


def test_a_move_without_a_live_hold_also_excludes_the_old_booking(store: BookingStore) -> None:
    book(store, "tok-a", "OLD", NOON)
    assert book(store, "tok-b", "NEW", NOON + 600, NOON + 2400, move=Moving("OLD", RESOURCE, DAY)).status == "booked"


def test_a_moved_from_slot_is_free_at_once(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "OLD", NOON)
    assert book(store, "tok-b", "NEW", at(15), move=Moving("OLD", RESOURCE, DAY)).status == "booked"
    assert hold(store, "tok-c", NOON).status == "held"
    assert book(store, "tok-c", "REF3", NOON, phone=OTHER).status == "booked"


def test_a_move_to_another_day_frees_the_old_day(store: BookingStore, client: redis.Redis) -> None:
    later = DAY + timedelta(days=3)
    book(store, "tok-a", "OLD", NOON)
    assert (
        book(store, "tok-b", "NEW", at(12, day=later), day=later, move=Moving("OLD", RESOURCE, DAY)).status == "booked"
    )
    assert entries(client, store) == {}
    assert entries(client, store, later) == place(at(12, day=later), at(12, 30, day=later))


def test_a_failed_move_keeps_the_old_booking(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "OLD", NOON)
    book(store, "tok-x", "THEIRS", at(15), phone=OTHER)
    assert book(store, "tok-b", "NEW", at(15), move=Moving("OLD", RESOURCE, DAY)) == Written("taken", "")
    old = store.booking("OLD")
    assert old["status"] == "confirmed"
    assert "rescheduled_to" not in old
    assert store.booking("NEW") == {}
    assert client.zrange(store.keys.customer(PHONE), 0, -1) == ["OLD"]
    assert entries(client, store) == {**place(NOON, NOON + 1800), **place(at(15), at(15, 30))}
    assert hold(store, "tok-c", NOON).status == "taken"  # still occupied


def test_only_a_confirmed_booking_can_move(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "GONE", at(10))
    cancel(store, "GONE")
    assert book(store, "tok-b", "NEW", at(15), move=Moving("GONE", RESOURCE, DAY)) == Written("not_active", "cancelled")
    book(store, "tok-c", "OLD", at(11))
    book(store, "tok-d", "MID", at(12), move=Moving("OLD", RESOURCE, DAY))
    assert book(store, "tok-e", "NEW", at(15), move=Moving("OLD", RESOURCE, DAY)) == Written(
        "not_active", "rescheduled"
    )
    assert booking_keys(client, store) == [store.keys.booking(r) for r in ("GONE", "MID", "OLD")]


def test_nobody_else_can_move_a_booking(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "OLD", NOON)
    assert book(store, "tok-b", "NEW", at(15), phone=OTHER, move=Moving("OLD", RESOURCE, DAY)) == Written("unknown", "")
    assert book(store, "tok-c", "NEW", at(15), move=Moving("NOSUCH", RESOURCE, DAY)) == Written("unknown", "")
    assert store.booking("OLD")["status"] == "confirmed"
    assert booking_keys(client, store) == [store.keys.booking("OLD")]


def test_moving_inside_the_cutoff_is_too_late(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-a", "OLD", NOON)
    late = book(store, "tok-b", "NEW", at(15), now=NOON - 1800, move=Moving("OLD", RESOURCE, DAY), cutoff=3600)
    assert late == Written("too_late_to_change", "")
    assert store.booking("OLD")["status"] == "confirmed"
    assert entries(client, store) == place(NOON, NOON + 1800)


def test_a_move_does_not_count_towards_the_limit(store: BookingStore) -> None:
    book(store, "tok-a", "OLD", at(12), max_active=1)
    assert book(store, "tok-b", "NEW", at(15), max_active=1, move=Moving("OLD", RESOURCE, DAY)).status == "booked"


# -- holds -------------------------------------------------------------------------------------


def test_holds_lapse_by_the_redis_clock(store: BookingStore, client: redis.Redis) -> None:
    """Each scenario on its own resource, with its own token (the hold map is per token)."""
    for resource in ("free", "lost", "open", "purge"):
        assert hold(store, f"late-{resource}", NOON, resource=resource).status == "held"
    assert age_holds(client, "t") == 4  # hold_minutes pass on the Redis clock

    # (a) the customer confirms late, but nobody took the slot: the booking still goes through
    assert book(store, "late-free", "REF1", NOON, resource="free") == Written("booked", "REF1")
    assert entries(client, store, resource="free") == place(NOON, NOON + 1800)

    # (b) someone else held it after the lapse: the late confirm is refused
    assert hold(store, "tok-b", NOON, resource="lost").status == "held"
    assert book(store, "late-lost", "REF2", NOON, resource="lost") == Written("taken", "")
    assert list(entries(client, store, resource="lost")) == ["tok-b"]
    assert store.booking("REF2") == {}

    # an expired hold does not block anyone, and is no longer reported as occupancy
    seen = store.occupancy("open", [DAY])
    assert "late-open" in seen.days[DAY] and seen.intervals() == []
    assert hold(store, "tok-c", NOON + 600, resource="open").status == "held"

    # any script touching the day (even for another time) deletes the expired entry: no clean-up job
    assert hold(store, "tok-d", at(18), resource="purge").status == "held"
    assert list(entries(client, store, resource="purge")) == ["tok-d"]


def test_a_new_hold_releases_the_customers_previous_one(store: BookingStore, client: redis.Redis) -> None:
    hold(store, "tok-1", NOON)
    assert hold(store, "tok-2", at(15), release=(DAY, "tok-1")).status == "held"
    assert list(entries(client, store)) == ["tok-2"]
    assert hold(store, "tok-x", NOON).status == "held"  # the old time is free for others


def test_the_released_hold_may_be_on_another_day(store: BookingStore, client: redis.Redis) -> None:
    later = DAY + timedelta(days=2)
    hold(store, "tok-1", NOON)
    assert hold(store, "tok-2", at(12, day=later), day=later, release=(DAY, "tok-1")).status == "held"
    assert entries(client, store) == {}
    assert list(entries(client, store, later)) == ["tok-2"]


def test_a_refused_new_hold_writes_nothing_at_all(store: BookingStore, client: redis.Redis) -> None:
    """All or nothing: a refused hold keeps the previous one too (the conversation then gives it back
    in its own write, with the session that forgets it: see the engine)."""
    hold(store, "tok-1", NOON)
    book(store, "tok-x", "THEIRS", at(15), phone=OTHER)
    before = entries(client, store)
    assert hold(store, "tok-2", at(15), release=(DAY, "tok-1")).status == "taken"
    assert entries(client, store) == before and "tok-1" in before


def test_a_live_hold_only_vouches_for_the_time_it_holds(store: BookingStore, client: redis.Redis) -> None:
    book(store, "tok-x", "THEIRS", at(18), phone=OTHER)
    assert hold(store, "tok-a", at(9)).status == "held"
    assert book(store, "tok-a", "REF1", at(18)) == Written("taken", "")


def test_the_released_hold_frees_room_for_the_new_one(store: BookingStore) -> None:
    """Changing the time to one overlapping the old hold: released first, so not 'taken' by oneself."""
    hold(store, "tok-1", NOON)
    assert hold(store, "tok-2", NOON + 900, release=(DAY, "tok-1")).status == "held"


def test_a_customer_can_change_a_holds_time(store: BookingStore, client: redis.Redis) -> None:
    hold(store, "tok-a", NOON)
    assert hold(store, "tok-a", NOON + 600).status == "held"  # its own hold is not in its way
    assert entries(client, store)["tok-a"].startswith(f"{NOON + 600},")


def test_release(store: BookingStore, client: redis.Redis) -> None:
    hold(store, "tok-a", NOON)
    write(store, ReleaseRequest(RESOURCE, DAY, "tok-a"))
    assert entries(client, store) == {}
    assert hold(store, "tok-b", NOON).status == "held"


# -- reads -------------------------------------------------------------------------------------


def test_occupancy_reports_live_entries_with_the_redis_clock(store: BookingStore, client: redis.Redis) -> None:
    yesterday, tomorrow = DAY - timedelta(days=1), DAY + timedelta(days=1)
    book(store, "tok-a", "REF1", NOON)
    held = hold(store, "tok-b", at(14))
    book(store, "tok-c", "REF3", at(23, day=yesterday), day=yesterday)
    # an expired hold nobody has touched since (written directly, long lapsed)
    client.hset(store.keys.occupancy(RESOURCE, DAY), "tok-old", f"{at(16)},{at(17)},1")

    before = redis_ms(client)
    seen = store.occupancy(RESOURCE, [yesterday, DAY, tomorrow])
    assert isinstance(seen, Occupancy)
    assert before <= seen.redis_ms <= redis_ms(client)
    assert seen.days == {
        yesterday: {
            f"={at(23, day=yesterday)},{at(23, 30, day=yesterday)}": (
                at(23, day=yesterday),
                at(23, 30, day=yesterday),
                0,
                1,
            )
        },
        DAY: {
            f"={NOON},{NOON + 1800}": (NOON, NOON + 1800, 0, 1),
            "tok-b": (at(14), at(14, 30), int(held.value), 1),
            "tok-old": (at(16), at(17), 1, 1),
        },
        tomorrow: {},
    }
    late = (at(23, day=yesterday), at(23, 30, day=yesterday), 1)
    everything = [late, (NOON, NOON + 1800, 1), (at(14), at(14, 30), 1)]
    assert sorted(seen.intervals()) == sorted(everything)
    moving = f"={at(23, day=yesterday)},{at(23, 30, day=yesterday)}"  # REF3's place: one booking fewer
    assert sorted(seen.intervals(skip=frozenset({"tok-b", moving}))) == [(NOON, NOON + 1800, 1)]


def test_upcoming_lists_the_phones_active_future_bookings_soonest_first(store: BookingStore) -> None:
    book(store, "tok-1", "LATE", at(17))
    book(store, "tok-2", "EARLY", at(10))
    book(store, "tok-3", "MID", at(13))
    book(store, "tok-4", "GONE", at(11))
    cancel(store, "GONE")
    book(store, "tok-5", "THEIRS", at(9), phone=OTHER)
    book(store, "tok-6", "OLD", at(12, day=DAY - timedelta(days=9)), day=DAY - timedelta(days=9), now=NOW - 30 * 86400)

    found = store.upcoming(PHONE, NOW)
    assert [b["ref"] for b in found] == ["EARLY", "MID", "LATE"]
    assert found[0] == store.booking("EARLY")
    assert [b["ref"] for b in store.upcoming(PHONE, NOW, limit=2)] == ["EARLY", "MID"]
    assert [b["ref"] for b in store.upcoming(PHONE, at(10))] == ["MID", "LATE"]  # started is not upcoming
    assert store.upcoming("+34999999999", NOW) == []


# -- Lua and Python agree ----------------------------------------------------------------------


def test_the_lua_capacity_check_agrees_with_fits(store: BookingStore, client: redis.Redis) -> None:
    rng = random.Random(7)
    around = {DAY - timedelta(days=1): -1, DAY: 0, DAY + timedelta(days=1): 1}
    outcomes = {True: 0, False: 0}
    for case in range(200):
        resource = f"r{case}"
        capacity = rng.randint(1, 4)
        live: list[tuple[int, int]] = []
        for n in range(rng.randint(0, 8)):
            start = NOON + rng.randrange(-12, 12) * 5 * MINUTE
            end = start + rng.randint(1, 12) * 5 * MINUTE
            day = rng.choice(list(around))  # a check reads the neighbouring days too
            kind = rng.choice(["booking", "booking", "hold", "expired"])
            expires = {"booking": 0, "hold": 9_999_999_999_999, "expired": 1}[kind]
            client.hset(store.keys.occupancy(resource, day), f"e{n}", f"{start},{end},{expires}")
            if kind != "expired":
                live.append((start, end))
        candidate = service(minutes=rng.randint(1, 12) * 5, capacity=capacity)
        start = utc(NOON + rng.randrange(-12, 12) * 5 * MINUTE)
        expected = fits(candidate, start, live)
        got = hold(store, "cand", *occupancy(candidate, start), capacity=capacity, resource=resource)
        assert got.status == ("held" if expected else "taken"), (case, capacity, live, occupancy(candidate, start))
        outcomes[expected] += 1
    assert min(outcomes.values()) > 40  # both answers were exercised


# -- races, on a real server -------------------------------------------------------------------


@pytest.fixture
def real_store(redis_server: RedisServer) -> Iterator[BookingStore]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield booking_store(client)
    client.close()


def test_fifty_customers_booking_the_last_place_at_once_make_one_booking(real_store: BookingStore) -> None:
    results = run_together(50, lambda i: book(real_store, f"tok-{i}", f"REF{i}", NOON, phone=f"+3460000{i:04d}"))
    assert sorted(r.status for r in results).count("booked") == 1
    assert [r.status for r in results].count("taken") == 49
    assert len(booking_keys(real_store.client, real_store)) == 1
    assert len(entries(real_store.client, real_store)) == 1


def test_fifty_customers_holding_the_last_place_at_once_make_one_hold(real_store: BookingStore) -> None:
    results = run_together(50, lambda i: hold(real_store, f"tok-{i}", NOON))
    assert [r.status for r in results].count("held") == 1
    assert [r.status for r in results].count("taken") == 49
    assert len(entries(real_store.client, real_store)) == 1


# -- counted places -------------------------------------------------------------------------------
def test_bookings_of_one_interval_share_one_entry(store: BookingStore, client: redis.Redis) -> None:
    """A day's hash grows with the distinct times booked, not with the bookings: listings stay cheap."""
    for n in range(5):
        assert book(store, f"tok-{n}", f"REF{n}", NOON, phone=f"+3460000000{n}", capacity=5).status == "booked"
    assert entries(client, store) == place(NOON, NOON + 1800, 5)
    assert hold(store, "tok-x", NOON, capacity=5).status == "taken"
    assert cancel(store, "REF2", phone="+34600000002") == "ok"
    assert entries(client, store) == place(NOON, NOON + 1800, 4)
    assert hold(store, "tok-x", NOON, capacity=5).status == "held"


def test_a_booking_filed_before_counts_still_takes_its_place(store: BookingStore, client: redis.Redis) -> None:
    """Entries written by the previous release (REF -> "start,end,0", no "occ") keep working."""
    book(store, "tok-a", "OLD", NOON)
    client.hdel(store.keys.occupancy(RESOURCE, DAY), f"={NOON},{NOON + 1800}")
    client.hdel(store.keys.booking("OLD"), "occ")
    client.hset(store.keys.occupancy(RESOURCE, DAY), "OLD", f"{NOON},{NOON + 1800},0")
    assert hold(store, "tok-b", NOON).status == "taken"
    assert hold(store, "tok-b", NOON, exclude="OLD").status == "held"  # moving it over its own time
    assert cancel(store, "OLD") == "ok"
    assert entries(client, store) == {"tok-b": entries(client, store)["tok-b"]}

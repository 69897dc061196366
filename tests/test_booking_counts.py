"""Counted occupancy against a model, on a real server: any sequence of holds, lapses, bookings, moves,
cancels and bookings filed by the previous release (one entry per REF) keeps every slot sold at most
``capacity`` times and frees exactly what it took."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.booking.requests import Moving
from bot.booking.store import BookingStore
from bot.keys import BusinessKeys
from bot.lua import Scripts

from .bookings import age_holds
from .redis_server import RedisServer
from .test_booking_store import DAY, NOON, RESOURCE, book, cancel, hold

QUARTER = 900
#: intervals (buffers included) that touch, overlap partly, contain one another or coincide
INTERVALS = [(NOON + QUARTER * i, NOON + QUARTER * (i + n)) for i in range(4) for n in (1, 2, 3)]
TOKENS = [f"tok{i}" for i in range(4)]
REFS = [f"REF{i}" for i in range(5)]

ops = st.one_of(
    st.tuples(st.just("hold"), st.sampled_from(TOKENS), st.sampled_from(INTERVALS), st.sampled_from(["", *REFS])),
    st.tuples(st.just("book"), st.sampled_from(TOKENS), st.sampled_from(REFS), st.sampled_from(INTERVALS)),
    st.tuples(st.just("cancel"), st.sampled_from(REFS)),
    st.tuples(st.just("lapse")),
    st.tuples(st.just("legacy"), st.sampled_from(REFS)),
)


def busiest(intervals: list[tuple[int, int]], a: int, b: int) -> int:
    clipped = [(max(s, a), min(e, b)) for s, e in intervals if s < b and a < e]
    return max((sum(1 for s, e in clipped if s <= p < e) for p in {a, *(s for s, _ in clipped)}), default=0)


class Model:
    """What the store should do, written plainly: a list of bookings and live holds."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.bookings: dict[str, dict] = {}  # ref -> interval, status, legacy
        self.holds: dict[str, tuple[int, int]] = {}  # live holds: token -> interval
        self.excludes: dict[str, str] = {}  # token -> the booking its hold was placed to move
        self.booked: dict[str, str] = {}  # token -> ref

    def taken(self, interval: tuple[int, int], token: str, moving: str) -> bool:
        others = [h for t, h in self.holds.items() if t != token]
        live = [b for b in self.bookings.values() if b["status"] == "confirmed"]
        counted = Counter(b["interval"] for b in live if not b["legacy"])
        mine = self.bookings.get(moving)
        if mine and not mine["legacy"] and counted[mine["interval"]] > 0:
            counted[mine["interval"]] -= 1  # its place, as the scripts skip it
        legacy = [b["interval"] for r, b in self.bookings.items()
                  if b["status"] == "confirmed" and b["legacy"] and r != moving]  # fmt: skip
        return busiest([*others, *legacy, *counted.elements()], *interval) >= self.capacity

    def hold(self, token: str, interval: tuple[int, int], exclude: str) -> str:
        if self.taken(interval, token, exclude):
            return "taken"
        self.holds[token] = interval
        self.excludes[token] = exclude
        return "held"

    def book(self, token: str, ref: str, interval: tuple[int, int], old: str) -> str:
        if token in self.booked:
            return "booked"
        if ref in self.bookings:
            return "ref_taken"
        if old and old not in self.bookings:
            return "unknown"
        if old and self.bookings[old]["status"] != "confirmed":
            return "not_active"
        live = self.holds.get(token) == interval
        if not live and self.taken(interval, token, old):
            return "taken"
        self.holds.pop(token, None)
        self.bookings[ref] = {"interval": interval, "status": "confirmed", "legacy": False}
        if old:
            self.bookings[old]["status"] = "rescheduled"
        self.booked[token] = ref
        return "booked"

    def cancel(self, ref: str) -> str:
        if ref not in self.bookings:
            return "unknown"
        if self.bookings[ref]["status"] != "confirmed":
            return self.bookings[ref]["status"]
        self.bookings[ref]["status"] = "cancelled"
        return "ok"

    def entries(self) -> dict[str, str]:
        """The day's booking entries as the store should have them."""
        confirmed = {r: b for r, b in self.bookings.items() if b["status"] == "confirmed"}
        counts = Counter(b["interval"] for b in confirmed.values() if not b["legacy"])
        found = {f"={a},{b}": f"{a},{b},0,{n}" for (a, b), n in counts.items()}
        found.update({r: "{},{},0".format(*b["interval"]) for r, b in confirmed.items() if b["legacy"]})
        return found


def make_legacy(client: redis.Redis, store: BookingStore, ref: str) -> None:
    """Rewrite a counted booking as the previous release filed it: its own entry, no ``occ``."""
    day_key = store.keys.occupancy(RESOURCE, DAY)
    a, b = client.hget(store.keys.booking(ref), "occ").split(",")
    field = f"={a},{b}"
    n = int(client.hget(day_key, field).split(",")[3]) - 1
    if n:
        client.hset(day_key, field, f"{a},{b},0,{n}")
    else:
        client.hdel(day_key, field)
    client.hdel(store.keys.booking(ref), "occ")
    client.hset(day_key, ref, f"{a},{b},0")


@pytest.fixture(scope="module")
def counted_store(redis_server: RedisServer) -> Iterator[BookingStore]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield BookingStore(client, BusinessKeys("tcount", "test"), Scripts(client))
    client.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capacity=st.integers(1, 3), steps=st.lists(ops, max_size=25))
def test_counted_occupancy_agrees_with_a_plain_model(
    counted_store: BookingStore, capacity: int, steps: list[tuple]
) -> None:
    store, client = counted_store, counted_store.client
    for key in client.scan_iter("tcount:*"):
        client.delete(key)
    model = Model(capacity)
    for step in steps:
        kind, *args = step
        if kind == "hold":
            token, interval, exclude = args
            got = hold(store, token, *interval, capacity=capacity, exclude=exclude).status
            assert got == model.hold(token, interval, exclude), step
        elif kind == "book":
            token, ref, interval = args
            old = model.excludes.get(token, "")  # as the session keeps it, whether the hold lapsed or not
            move = Moving(old, RESOURCE, DAY) if old else None
            got = book(store, token, ref, *interval, capacity=capacity, move=move).status
            assert got == model.book(token, ref, interval, old), step
        elif kind == "cancel":
            assert cancel(store, args[0]) == model.cancel(args[0]), step
        elif kind == "lapse":
            age_holds(client, "tcount")
            model.holds.clear()
        elif kind == "legacy" and model.bookings.get(args[0], {}).get("status") == "confirmed":
            if not model.bookings[args[0]]["legacy"]:
                make_legacy(client, store, args[0])
                model.bookings[args[0]]["legacy"] = True
        stored = {
            k: v for k, v in client.hgetall(store.keys.occupancy(RESOURCE, DAY)).items() if v.split(",")[2] == "0"
        }
        assert stored == model.entries(), step
        sold = [b["interval"] for b in model.bookings.values() if b["status"] == "confirmed"]
        assert all(busiest(sold, a, b) <= capacity for a, b in INTERVALS)
    assert {ref for ref in model.bookings} == {k.rsplit(":", 1)[1] for k in client.scan_iter("tcount:*:booking:*")}
    assert all(client.hget(store.keys.booking(r), "status") == b["status"] for r, b in model.bookings.items())


def test_moving_a_booking_from_another_resource_does_not_free_a_place_on_this_one(
    counted_store: BookingStore,
) -> None:
    """After a catalog edit moved a service to another resource, a booking of the old resource being
    moved must not make an equal interval on the new resource look one booking emptier."""
    store, client = counted_store, counted_store.client
    for key in client.scan_iter("tcount:*"):
        client.delete(key)
    assert book(store, "tok-y", "THEIRS", NOON, phone="+34600999999", resource="chair2").status == "booked"
    assert book(store, "tok-x", "MINE", NOON).status == "booked"
    client.hset(store.keys.booking("MINE"), "resource", RESOURCE)  # as the desk records it
    assert hold(store, "tok-m", NOON, resource="chair2", exclude="MINE").status == "taken"
    assert book(store, "tok-m", "MOVED", NOON, resource="chair2", move=Moving("MINE", RESOURCE, DAY)).status == "taken"
    assert hold(store, "tok-n", NOON, exclude="MINE").status == "held"  # on its own resource it is skipped

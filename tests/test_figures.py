"""The owner's numbers (issue 17): bookings per week, no-shows, customers' confirmations, the chart.

Bookings are made through the webhook (the real booking script) on a real Redis over three weeks
of the test clock; the fields other features write (``attendance``, ``customer_confirmed_at``,
``reminded:<offset>``) are set with HSET, as they will be.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, datetime

import pytest
import redis
import redis.connection
from flask import Flask

from bot import create_app, get_services
from bot.figures import Figures, Week, bar_chart, figures, rate_text
from bot.tenants import Tenant

from .bookings import book, cancel, reschedule
from .conftest import TOKEN, Clock, app_config
from .whatsapp import WhatsApp

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def real_app(redis_server, clock: Clock) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock))
    yield app
    get_services(app).redis.close()


def shop_of(app: Flask) -> Tenant:
    shop = get_services(app).directory.get("test")
    assert shop is not None
    return shop


def record(db: redis.Redis, ref: str, **fields: str) -> None:
    db.hset(f"tapbook:{{test}}:booking:{ref}", mapping=fields)


def new_ref(db: redis.Redis, before: set[str]) -> str:
    (ref,) = set(db.zrange("tapbook:{test}:bookings", 0, -1)) - before
    return ref


@pytest.fixture
def booked(real_app: Flask, clock: Clock) -> dict[str, str]:
    """Three weeks of bookings (Wed 14, 21, 28 Jan 2026, 10:00 in Madrid), by name:

    * week of 12 Jan: ``kept`` (Wed 14 12:00), ``cancelled`` (Wed 14 12:30, cancelled),
      ``moved`` (Thu 15 10:00, moved to Mon 19 10:00: its old record);
    * week of 19 Jan: ``moved_to`` (Mon 19 10:00), ``later`` (Thu 22 11:00);
    * week of 26 Jan: ``future`` (Thu 29 11:00), after the clock's now (Wed 28 10:00).
    """
    db = get_services(real_app).redis
    ana = WhatsApp(real_app.test_client(), TOKEN)
    bob = WhatsApp(real_app.test_client(), TOKEN, phone="+447700900123", name="Bob")
    refs = {"kept": book(ana, at="12:00"), "cancelled": book(ana, at="12:30")}
    cancel(ana, "Wed 14 Jan 12:30")
    refs["moved"] = book(bob, day="Thu 15 Jan", at="10:00")
    before = set(db.zrange("tapbook:{test}:bookings", 0, -1))
    reschedule(bob, "Thu 15 Jan 10:00", "Mon 19 Jan", "10:00")
    refs["moved_to"] = new_ref(db, before)
    clock.advance(days=7)
    refs["later"] = book(ana, day="Thu 22 Jan", at="11:00")
    clock.advance(days=7)
    refs["future"] = book(ana, day="Thu 29 Jan", at="11:00")
    statuses = {name: db.hget(f"tapbook:{{test}}:booking:{ref}", "status") for name, ref in refs.items()}
    assert statuses == {
        "kept": "confirmed",
        "cancelled": "cancelled",
        "moved": "rescheduled",
        "moved_to": "confirmed",
        "later": "confirmed",
        "future": "confirmed",
    }
    return refs


def test_bookings_per_week(real_app: Flask, clock: Clock, booked: dict[str, str]) -> None:
    found = figures(shop_of(real_app), clock.now)
    assert [week.start for week in found.weeks] == [
        date(2025, 12, 8),
        date(2025, 12, 15),
        date(2025, 12, 22),
        date(2025, 12, 29),
        date(2026, 1, 5),
        date(2026, 1, 12),
        date(2026, 1, 19),
        date(2026, 1, 26),
    ]
    assert found.weeks[-3:] == (
        Week(date(2026, 1, 12), "12 Jan", made=2, kept=1),  # the cancel is made, not kept; the move is not here
        Week(date(2026, 1, 19), "19 Jan", made=2, kept=2),  # the moved booking counts once, where it went
        Week(date(2026, 1, 26), "26 Jan", made=1, kept=1),
    )
    assert all(week.made == week.kept == 0 for week in found.weeks[:-3])
    assert found.weeks[0].label == "8 Dec"
    assert [week.start for week in figures(shop_of(real_app), clock.now, weeks=2).weeks] == [
        date(2026, 1, 19),
        date(2026, 1, 26),
    ]


def test_the_current_week_is_the_local_one(real_app: Flask, clock: Clock, booked: dict[str, str]) -> None:
    """Sun 1 Feb 23:30 UTC is Mon 2 Feb 00:30 in Madrid: a new week, without bookings yet."""
    found = figures(shop_of(real_app), datetime.fromisoformat("2026-02-01T23:30:00+00:00"), weeks=2)
    assert found.weeks == (Week(date(2026, 1, 26), "26 Jan", 1, 1), Week(date(2026, 2, 2), "2 Feb", 0, 0))
    found = figures(shop_of(real_app), datetime.fromisoformat("2026-02-01T22:30:00+00:00"), weeks=1)
    assert found.weeks == (Week(date(2026, 1, 26), "26 Jan", 1, 1),)


def test_nothing_marked_or_reminded_gives_no_rates(real_app: Flask, clock: Clock, booked: dict[str, str]) -> None:
    found = figures(shop_of(real_app), clock.now)
    assert (found.no_show_rate, found.no_shows, found.marked) == (None, 0, 0)
    assert (found.confirmed_share, found.confirmed, found.reminded) == (None, 0, 0)
    assert rate_text(found.no_show_rate) == "—"


def test_no_show_rate(real_app: Flask, clock: Clock, booked: dict[str, str]) -> None:
    db = get_services(real_app).redis
    record(db, booked["kept"], attendance="attended")
    record(db, booked["moved_to"], attendance="no_show")
    # left out: not ended yet, a cancelled booking, a moved booking's old record
    record(db, booked["future"], attendance="no_show")
    record(db, booked["cancelled"], attendance="no_show")
    record(db, booked["moved"], attendance="attended")
    # "later" ended and is not marked
    found = figures(shop_of(real_app), clock.now)
    assert (found.no_show_rate, found.no_shows, found.marked) == (0.5, 1, 2)
    assert rate_text(found.no_show_rate) == "50 %"
    record(db, booked["later"], attendance="attended")
    found = figures(shop_of(real_app), clock.now)
    assert (found.no_shows, found.marked) == (1, 3)
    assert rate_text(found.no_show_rate) == "33 %"


def test_confirmed_share(real_app: Flask, clock: Clock, booked: dict[str, str]) -> None:
    db = get_services(real_app).redis
    record(db, booked["kept"], **{"reminded:24h": "1-0", "customer_confirmed_at": "1768300000"})
    record(db, booked["later"], **{"reminded:24h": "2-0"})
    record(db, booked["future"], **{"reminded:2h": "3-0", "customer_confirmed_at": "1769600000"})
    record(db, booked["moved_to"], **{"reminded:24h": "4-0", "customer_confirmed_at": ""})
    # left out: no reminder went, a cancelled booking, a moved booking's old record
    record(db, booked["cancelled"], **{"reminded:24h": "5-0", "customer_confirmed_at": "1768300000"})
    record(db, booked["moved"], **{"reminded:24h": "6-0", "customer_confirmed_at": "1768300000"})
    found = figures(shop_of(real_app), clock.now)
    assert (found.confirmed_share, found.confirmed, found.reminded) == (0.5, 2, 4)
    assert rate_text(found.confirmed_share) == "50 %"


def test_at_most_three_round_trips(real_app: Flask, clock: Clock, booked: dict[str, str], sends: list[object]) -> None:
    shop = shop_of(real_app)
    before = len(sends)
    found = figures(shop, clock.now)
    assert 0 < len(sends) - before <= 3  # the REFs, then their records in one pipeline
    assert sum(week.made for week in found.weeks) == 5
    get_services(real_app).redis.flushdb()
    before = len(sends)
    empty = figures(shop, clock.now)
    assert 0 < len(sends) - before <= 3
    assert empty == Figures(
        weeks=tuple(Week(week.start, week.label, 0, 0) for week in found.weeks),
        no_show_rate=None,
        no_shows=0,
        marked=0,
        confirmed_share=None,
        confirmed=0,
        reminded=0,
    )


def test_rate_text() -> None:
    texts = {None: "—", 0.0: "0 %", 0.125: "13 %", 1 / 3: "33 %", 0.995: "100 %", 1.0: "100 %"}
    assert {rate: rate_text(rate) for rate in texts} == texts


def weeks_of(*made_kept: tuple[int, int]) -> list[Week]:
    return [Week(date(2026, 1, 5 + 7 * i), f"{5 + 7 * i} Jan", made, kept) for i, (made, kept) in enumerate(made_kept)]


def test_bar_chart_is_accessible_svg() -> None:
    weeks = weeks_of((3, 2), (0, 0), (5, 4), (1, 1))
    svg = bar_chart(weeks)
    root = ET.fromstring(str(svg))
    assert root.tag == SVG + "svg"
    assert root.get("role") == "img"
    label = root.get("aria-label")
    assert label and "5 Jan: 3 made, 2 kept" in label and "19 Jan: 5 made, 4 kept" in label
    title = root.find(SVG + "title")
    assert title is not None and title.text == label
    assert len(root.findall(f"{SVG}g[@class='week']")) == 4
    made = root.findall(f".//{SVG}rect[@class='made']")
    kept = root.findall(f".//{SVG}rect[@class='kept']")
    assert len(made) == len(kept) == 4
    heights = [float(rect.get("height", "")) for rect in made]
    assert heights[1] == 0 and heights[2] == max(heights) and heights[0] == pytest.approx(heights[2] * 3 / 5)
    assert float(kept[2].get("height", "")) == pytest.approx(heights[2] * 4 / 5)
    labels = [text.text for text in root.findall(f"{SVG}text[@class='label']")]
    assert labels == ["12 Jan", "26 Jan"]  # every other week, the current one included
    peaks = [text.text for text in root.findall(f"{SVG}text[@class='peak']")]
    assert peaks == ["5"]
    assert "<script" not in svg and "href" not in svg
    assert svg.__html__() == svg  # Markup: a template prints it as it is


def test_bar_chart_escapes_its_labels() -> None:
    weeks = [Week(date(2026, 1, 5), '<&>"', 2, 1), Week(date(2026, 1, 12), "12 Jan", 1, 0)]
    svg = bar_chart(weeks, width=200, height=80)
    assert "<&>" not in svg
    root = ET.fromstring(str(svg))
    assert root.get("width") == "200" and root.get("height") == "80"
    assert '<&>"' in root.get("aria-label", "")
    title = root.find(SVG + "title")
    assert title is not None and '<&>"' in (title.text or "")
    assert [text.text for text in root.findall(f"{SVG}text[@class='label']")] == ["12 Jan"]
    weeks.append(Week(date(2026, 1, 19), "<b>&amp;</b>", 0, 0))
    root = ET.fromstring(str(bar_chart(weeks)))
    assert [text.text for text in root.findall(f"{SVG}text[@class='label']")] == ['<&>"', "<b>&amp;</b>"]


def test_bar_chart_of_nothing() -> None:
    root = ET.fromstring(str(bar_chart(weeks_of((0, 0), (0, 0)))))
    assert len(root.findall(f".//{SVG}rect[@class='made']")) == 2
    assert root.findall(f"{SVG}text[@class='peak']") == []
    assert ET.fromstring(str(bar_chart([]))).get("role") == "img"

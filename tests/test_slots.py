"""The times a customer is offered: opening hours, notice, horizon, DST, buffers and capacity."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.booking.catalog import Business, OpeningRange, Service
from bot.booking.slots import (
    day_starts,
    day_window,
    fits,
    free_starts,
    local_today,
    occupancy,
    open_dates,
)

MADRID = "Europe/Madrid"
WEDNESDAY = date(2026, 1, 14)
NOW = datetime(2026, 1, 13, 12, 0, tzinfo=UTC)  # the day before, so no notice gets in the way


def opening(text: str) -> OpeningRange:
    start, end = (int(t[:2]) * 60 + int(t[3:]) for t in text.split("-"))
    return OpeningRange(start, end)


def make_business(
    tz: str = MADRID,
    hours: Iterable[str] = ("09:00-20:00",),
    *,
    weekdays: Iterable[int] = range(7),
    slot: int = 30,
    notice: int = 0,
    horizon: int = 14,
    closed: Iterable[date] = (),
) -> Business:
    ranges = tuple(opening(text) for text in hours)
    return Business(
        id="main",
        name="Test Salon",
        timezone=ZoneInfo(tz),
        slot_minutes=slot,
        min_notice_minutes=notice,
        horizon_days=horizon,
        hold_minutes=10,
        cancel_cutoff_minutes=120,
        max_active_bookings=3,
        closed=frozenset(closed),
        hours={weekday: ranges for weekday in weekdays},
    )


def make_service(minutes: int = 30, *, capacity: int = 1, before: int = 0, after: int = 0) -> Service:
    return Service(
        id="cut",
        minutes=minutes,
        capacity=capacity,
        price="25 EUR",
        names={"en": "Haircut"},
        buffer_before_minutes=before,
        buffer_after_minutes=after,
    )


def walls(starts: list[datetime], tz: str = MADRID) -> list[str]:
    """The start times as the customer reads them, on the business's clock."""
    return [start.astimezone(ZoneInfo(tz)).strftime("%H:%M") for start in starts]


def at(day: date, hhmm: str, tz: str = MADRID) -> datetime:
    """An aware UTC instant from a local wall time (first occurrence)."""
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def span(day: date, start: str, end: str) -> tuple[int, int]:
    """An occupancy entry between two local wall times, in epoch seconds."""
    return int(at(day, start).timestamp()), int(at(day, end).timestamp())


def grid(first: str, last: str, step: int = 30) -> list[str]:
    start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (first, last))
    return [f"{m // 60:02d}:{m % 60:02d}" for m in range(start, end + 1, step)]


# --- daylight saving ------------------------------------------------------------------------

# (zone, the night the clocks change, the wall times that night skips or shows twice)
SPRING_FORWARD = [
    (MADRID, date(2026, 3, 29), ["02:00", "02:30"]),
    ("America/New_York", date(2026, 3, 8), ["02:00", "02:30"]),
]
FALL_BACK = [
    (MADRID, date(2026, 10, 25), ["02:00", "02:30"]),
    ("America/New_York", date(2026, 11, 1), ["01:00", "01:30"]),
]


def the_day_before(day: date) -> datetime:
    return datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=UTC)


@pytest.mark.parametrize(("tz", "day", "skipped"), SPRING_FORWARD)
def test_spring_forward_never_offers_a_time_the_clock_skips(tz: str, day: date, skipped: list[str]) -> None:
    business = make_business(tz, ["00:00-24:00"])
    starts = day_starts(business, make_service(), day, the_day_before(day))

    assert walls(starts, tz) == [t for t in grid("00:00", "23:30") if t not in skipped]
    assert starts == sorted(set(starts))
    start, end = day_window(business, day)
    assert end - start == 23 * 3600


@pytest.mark.parametrize(("tz", "day", "skipped"), SPRING_FORWARD)
def test_spring_forward_measures_the_service_in_real_time(tz: str, day: date, skipped: list[str]) -> None:
    business = make_business(tz, ["01:00-04:00"])  # 01:00 to 04:00 is only two real hours that night
    now = the_day_before(day)

    assert walls(day_starts(business, make_service(30), day, now), tz) == ["01:00", "01:30", "03:00", "03:30"]
    # 01:00 + 2 h ends exactly at closing; 01:30 + 2 h would end at 04:30 on the clock.
    assert walls(day_starts(business, make_service(120), day, now), tz) == ["01:00"]
    assert day_starts(business, make_service(150), day, now) == []


@pytest.mark.parametrize(("tz", "day", "repeated"), FALL_BACK)
def test_fall_back_offers_a_repeated_time_once_the_first_time(tz: str, day: date, repeated: list[str]) -> None:
    business = make_business(tz, ["00:00-24:00"])
    starts = day_starts(business, make_service(), day, the_day_before(day))

    assert walls(starts, tz) == grid("00:00", "23:30")  # 48 times, none twice
    assert starts == sorted(set(starts))
    for start in starts:
        if walls([start], tz)[0] in repeated:  # the summer-time occurrence, an hour before the second
            local = start.astimezone(ZoneInfo(tz))
            assert local.dst() == timedelta(hours=1)
            assert start + timedelta(hours=1) not in starts
    start, end = day_window(business, day)
    assert end - start == 25 * 3600


@pytest.mark.parametrize(("tz", "day", "repeated"), FALL_BACK)
def test_fall_back_measures_the_service_in_real_time(tz: str, day: date, repeated: list[str]) -> None:
    business = make_business(tz, ["01:00-04:00"])  # 01:00 to 04:00 lasts four real hours that night
    now = the_day_before(day)

    assert walls(day_starts(business, make_service(30), day, now), tz) == grid("01:00", "03:30")
    # Four real hours from 01:00 (summer time) end at 04:00 on the clock: it fits.
    assert walls(day_starts(business, make_service(240), day, now), tz) == ["01:00"]
    assert day_starts(business, make_service(270), day, now) == []


def test_a_range_closing_inside_the_skipped_hour_closes_when_the_clock_jumps() -> None:
    tz, day = "America/New_York", date(2026, 3, 8)  # 02:00 EST jumps to 03:00 EDT (07:00 UTC)
    business = make_business(tz, ["01:00-02:30"])
    now = the_day_before(day)

    assert walls(day_starts(business, make_service(30), day, now), tz) == ["01:00", "01:30"]
    assert day_starts(business, make_service(60), day, now) == [datetime(2026, 3, 8, 6, 0, tzinfo=UTC)]
    assert day_starts(business, make_service(90), day, now) == []


def test_a_day_whose_midnight_is_skipped_starts_when_the_clock_jumps() -> None:
    business = make_business("America/Santiago")  # 2026-09-06: 00:00 (-04) jumps to 01:00 (-03)
    start, end = day_window(business, date(2026, 9, 6))
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)
    assert end - start == 23 * 3600
    assert day_window(business, date(2026, 9, 5))[1] == start


def test_an_ordinary_day_is_24_hours_from_local_midnight() -> None:
    start, end = day_window(make_business(), WEDNESDAY)
    assert (start, end) == (int(at(WEDNESDAY, "00:00").timestamp()), int(at(WEDNESDAY, "00:00").timestamp()) + 86400)
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 1, 13, 23, 0, tzinfo=UTC)  # Madrid is UTC+1


def test_half_hour_offset_hours_map_to_the_right_instants() -> None:
    business = make_business("Asia/Kolkata", ["09:00-10:30"])  # UTC+05:30
    starts = day_starts(business, make_service(30), WEDNESDAY, NOW)
    assert starts == [
        datetime(2026, 1, 14, 3, 30, tzinfo=UTC),
        datetime(2026, 1, 14, 4, 0, tzinfo=UTC),
        datetime(2026, 1, 14, 4, 30, tzinfo=UTC),
    ]
    assert all(start.tzinfo is UTC for start in starts)


# --- notice, closing time, closed days, horizon ------------------------------------------------


def test_minimum_notice_exactly_at_the_boundary_is_offered() -> None:
    business = make_business(notice=120)
    now = at(WEDNESDAY, "10:00")  # 12:00 is exactly two hours away

    assert walls(day_starts(business, make_service(), WEDNESDAY, now))[0] == "12:00"
    a_minute_later = now + timedelta(minutes=1)  # 12:00 would have 119 minutes' notice
    assert walls(day_starts(business, make_service(), WEDNESDAY, a_minute_later))[0] == "12:30"


def test_the_last_slot_ends_exactly_at_closing() -> None:
    business = make_business(hours=["09:00-13:00"])
    starts = walls(day_starts(business, make_service(60), WEDNESDAY, NOW))
    assert starts[-1] == "12:00"  # ends 13:00; 12:30 would end 13:30
    assert starts == grid("09:00", "12:00")


def test_buffers_may_fall_outside_opening_hours() -> None:
    business = make_business(hours=["09:00-13:00"])
    starts = walls(day_starts(business, make_service(60, before=15, after=15), WEDNESDAY, NOW))
    assert starts == grid("09:00", "12:00")


def test_a_range_ending_at_24_00_offers_the_slot_ending_at_midnight() -> None:
    business = make_business(hours=["22:00-24:00"])
    starts = day_starts(business, make_service(60), WEDNESDAY, NOW)
    assert walls(starts) == ["22:00", "22:30", "23:00"]
    assert starts[-1] + timedelta(minutes=60) == at(WEDNESDAY + timedelta(days=1), "00:00")


def test_closed_dates_and_days_without_hours_offer_nothing() -> None:
    thursday, sunday = date(2026, 1, 15), date(2026, 1, 18)
    business = make_business(weekdays=range(6), closed=[thursday])  # Mon-Sat, Thursday off

    dates = open_dates(business, NOW)
    assert thursday not in dates and sunday not in dates
    assert WEDNESDAY in dates and date(2026, 1, 16) in dates
    assert day_starts(business, make_service(), thursday, NOW) == []
    assert day_starts(business, make_service(), sunday, NOW) == []


def test_the_horizon_last_day_is_included_and_the_next_is_not() -> None:
    business = make_business(horizon=3)
    today = date(2026, 1, 13)

    assert open_dates(business, NOW) == [today + timedelta(days=n) for n in range(4)]
    assert day_starts(business, make_service(), today + timedelta(days=3), NOW) != []
    assert day_starts(business, make_service(), today + timedelta(days=4), NOW) == []
    assert day_starts(business, make_service(), today - timedelta(days=1), NOW) == []


def test_today_is_the_business_local_date() -> None:
    late_evening_utc = datetime(2026, 1, 14, 23, 30, tzinfo=UTC)  # already 00:30 on the 15th in Madrid
    business = make_business()
    assert local_today(business, late_evening_utc) == date(2026, 1, 15)
    assert open_dates(business, late_evening_utc)[0] == date(2026, 1, 15)
    assert day_starts(business, make_service(), WEDNESDAY, late_evening_utc) == []


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_today(make_business(), datetime(2026, 1, 14, 9, 0))


# --- the grid, buffers, capacity -----------------------------------------------------------------


def test_the_grid_is_anchored_at_the_range_start_and_ignores_bookings() -> None:
    business = make_business(hours=["09:15-12:00"])
    service = make_service(30)
    expected = ["09:15", "09:45", "10:15", "10:45", "11:15"]
    assert walls(day_starts(business, service, WEDNESDAY, NOW)) == expected

    booked = [span(WEDNESDAY, "09:50", "10:20")]  # an off-grid booking does not shift later times
    assert walls(free_starts(business, service, WEDNESDAY, NOW, booked)) == ["09:15", "10:45", "11:15"]
    assert walls(day_starts(business, service, WEDNESDAY, NOW)) == expected


def test_occupancy_covers_the_buffers() -> None:
    start = at(WEDNESDAY, "10:00")
    assert occupancy(make_service(30, before=10, after=15), start) == span(WEDNESDAY, "09:50", "10:45")
    assert all(isinstance(edge, int) for edge in occupancy(make_service(), start))


def test_an_entry_touching_the_buffers_does_not_block() -> None:
    service = make_service(30, before=10, after=10)  # at 10:00 it occupies 09:50-10:40
    start = at(WEDNESDAY, "10:00")

    assert fits(service, start, [span(WEDNESDAY, "09:00", "09:50")])
    assert fits(service, start, [span(WEDNESDAY, "10:40", "11:00")])
    assert not fits(service, start, [span(WEDNESDAY, "09:00", "09:51")])
    assert not fits(service, start, [span(WEDNESDAY, "10:39", "11:00")])


def test_buffers_stack_between_bookings() -> None:
    business = make_business(hours=["10:00-12:00"], slot=10)
    service = make_service(30, before=10, after=10)
    earlier = occupancy(service, at(WEDNESDAY, "10:00"))  # 09:50-10:40, including its after-buffer

    free = walls(free_starts(business, service, WEDNESDAY, NOW, [earlier]))
    assert free[0] == "10:50"  # 10:00 + 30 min + 10 after + 10 before


@pytest.mark.parametrize("capacity", [1, 2, 3])
def test_capacity_c_overlapping_entries_block_and_c_minus_one_do_not(capacity: int) -> None:
    service = make_service(30, capacity=capacity)
    start = at(WEDNESDAY, "10:00")
    entries = [span(WEDNESDAY, "09:45", "10:15")] * capacity

    assert not fits(service, start, entries)
    assert fits(service, start, entries[:-1])


def test_entries_overlapping_the_candidate_but_not_each_other_count_once() -> None:
    start = at(WEDNESDAY, "10:00")  # 10:00-10:30
    entries = [span(WEDNESDAY, "09:30", "10:10"), span(WEDNESDAY, "10:20", "11:00")]
    assert fits(make_service(30, capacity=2), start, entries)
    assert not fits(make_service(30, capacity=1), start, entries)

    back_to_back = [span(WEDNESDAY, "10:00", "10:15"), span(WEDNESDAY, "10:15", "10:30")]
    assert fits(make_service(30, capacity=2), start, back_to_back)


def test_an_entry_inside_the_candidate_blocks() -> None:
    start = at(WEDNESDAY, "10:00")
    assert not fits(make_service(60), start, [span(WEDNESDAY, "10:20", "10:30")])


def test_free_starts_takes_any_iterable_of_entries() -> None:
    business = make_business(hours=["09:00-11:00"])
    entries = (entry for entry in [span(WEDNESDAY, "09:00", "10:00")])
    assert walls(free_starts(business, make_service(30), WEDNESDAY, NOW, entries)) == ["10:00", "10:30"]


def test_counted_entries_weigh_their_count_and_limit_stops_early() -> None:
    business = make_business(hours=["09:00-11:00"])
    three = make_service(30, capacity=3)
    nine_to_ten = span(WEDNESDAY, "09:00", "10:00")
    every = ["09:00", "09:30", "10:00", "10:30"]
    assert walls(free_starts(business, three, WEDNESDAY, NOW, [(*nine_to_ten, 2)])) == every
    assert walls(free_starts(business, three, WEDNESDAY, NOW, [(*nine_to_ten, 3)])) == ["10:00", "10:30"]
    assert walls(free_starts(business, three, WEDNESDAY, NOW, [(*nine_to_ten, 3)], limit=1)) == ["10:00"]

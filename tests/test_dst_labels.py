"""The night the clocks go back, a booking's times still read right (issue 13, item 8).

On Sun 25 Oct 2026 Madrid's clocks go from 03:00 summer time (GMT+2) back to 02:00 (GMT+1), so
02:00-03:00 happens twice. A 60-minute booking at the first 02:00 ends at the second one: it used to
read "02:00–02:00" to the customer and on /admin. Both ends now carry their UTC offset and the
length follows (bot/booking/formats.py, ``times_label``), in every language.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from bot import create_app, get_services
from bot.booking import formats
from bot.booking.catalog import OpeningRange
from bot.i18n import Catalogs

from .catalogs import salon
from .conftest import TOKEN, Clock, app_config
from .whatsapp import Answer, WhatsApp

PASSWORD = "owner-secret"
NOW = datetime(2026, 10, 24, 10, 0, tzinfo=UTC)  # Sat 24 Oct 2026, 12:00 in Madrid
SUNDAY_ROUND_THE_CLOCK = {6: (OpeningRange(0, 24 * 60),)}

# language → (picker title, the Blow-dry's name, the day, the booking's times)
LANGUAGES = {
    "en": ("English", "Blow-dry", "Sun 25 Oct", "02:00 GMT+2 – 02:00 GMT+1 (60 min)"),
    "es": ("Español", "Peinado", "dom 25 oct", "02:00 GMT+2 – 02:00 GMT+1 (60 min)"),
    "pt": ("Português", "Escova", "dom. 25 out.", "02:00 +2 GMT – 02:00 +1 GMT (60 min)"),
}


@pytest.fixture(params=sorted(LANGUAGES))
def language(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def app(backend: dict[str, Any], language: str) -> Iterator[Flask]:
    catalog = salon(hours=SUNDAY_ROUND_THE_CLOCK)
    config = app_config(CATALOG=catalog, CLOCK=Clock(NOW), ADMIN_PASSWORD=PASSWORD, DEFAULT_LANGUAGE=language)
    app = create_app({**config, **backend})
    yield app
    get_services(app).redis.close()


def pick(wa: WhatsApp, answer: Answer, index: int) -> Answer:
    """Type the number of the option at ``index`` (titles differ by language)."""
    assert len(answer.options) > index, answer.text
    return wa.send(str(index + 1))


def test_the_customer_reads_a_booking_across_the_repeated_hour(app: Flask, language: str) -> None:
    picker_title, service, day, times = LANGUAGES[language]
    wa = WhatsApp(app.test_client(), TOKEN)
    wa.send("hi")
    menu = wa.choose(wa.send("language"), picker_title)
    days = pick(wa, pick(wa, menu, 0), 1)  # Book → Blow-dry (60 min)
    assert days.text.startswith(f"{service}:"), days.text
    time_buttons = wa.choose(days, day)
    summary = wa.choose(time_buttons, "02:00")  # offered once: the first 02:00, summer time

    assert f"\n{day}, {times}\n" in summary.text, summary.text
    done = pick(wa, summary, 0)  # Confirm
    assert f"{service}, {day}, {times}." in done.text, done.text
    ref = re.search(r"\b([A-Z0-9]{6})\b", done.text)  # "Your booking reference: K7Q2MX"
    assert ref, done.text

    mine = pick(wa, wa.send("menu"), 1)  # My bookings
    booking = pick(wa, mine, 0)
    assert f"{service}, {day}, {times} ({ref.group(1)})" in booking.text, booking.text
    assert "02:00–02:00" not in summary.text + done.text + booking.text


def test_the_owner_reads_it_on_the_admin_page(app: Flask, language: str) -> None:
    _picker, _service, day, times = LANGUAGES[language]
    wa = WhatsApp(app.test_client(), TOKEN)
    times_offered = wa.choose(pick(wa, pick(wa, wa.send("menu"), 0), 1), day)  # Book → Blow-dry → Sunday
    done = pick(wa, wa.choose(times_offered, "02:00"), 0)  # → Confirm
    assert get_services(app).redis.keys("*:booking:*"), done.text

    owner = app.test_client()
    owner.environ_base["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"owner:{PASSWORD}".encode()).decode()
    html = owner.get("/admin").get_data(as_text=True)
    assert f'<span class="time">{times}</span>' in html
    assert "02:00–02:00" not in html


# -- the rule, zone by zone ---------------------------------------------------------------------
MADRID, NEW_YORK, LONDON = ZoneInfo("Europe/Madrid"), ZoneInfo("America/New_York"), ZoneInfo("Europe/London")


def wall(tz: ZoneInfo, text: str, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).astimezone(UTC)


CASES = [
    # the clocks go back: the wall clock runs an hour short, so the length follows
    (MADRID, "2026-10-25 02:00", 60, "02:00 GMT+2 – 02:00 GMT+1 (60 min)"),
    (MADRID, "2026-10-25 02:30", 45, "02:30 GMT+2 – 02:15 GMT+1 (45 min)"),
    (MADRID, "2026-10-25 01:30", 90, "01:30 GMT+2 – 02:00 GMT+1 (90 min)"),
    (NEW_YORK, "2026-11-01 01:00", 60, "01:00 GMT-4 – 01:00 GMT-5 (60 min)"),
    (LONDON, "2026-10-25 01:00", 60, "01:00 GMT+1 – 01:00 GMT (60 min)"),
    # the clocks go forward: an hour long though the clock shows two
    (MADRID, "2026-03-29 01:30", 60, "01:30 GMT+1 – 03:30 GMT+2 (60 min)"),
    # inside the repeated hour without crossing: which 02:00 is meant, no length needed
    (MADRID, "2026-10-25 02:00", 30, "02:00 GMT+2 – 02:30 GMT+2"),
    (MADRID, "2026-10-25 01:30", 60, "01:30 GMT+2 – 02:30 GMT+2"),
    # any other time, that night or not, is left as it was
    (MADRID, "2026-10-25 03:00", 60, "03:00–04:00"),
    (MADRID, "2026-01-14 10:30", 30, "10:30–11:00"),
    (MADRID, "2026-01-14 23:30", 60, "23:30–00:30"),
]


@pytest.mark.parametrize(
    ("tz", "start", "minutes", "expected"),
    CASES,
    ids=[f"{tz.key.split('/')[-1]}-{start[5:].replace(' ', 'T')}+{minutes}" for tz, start, minutes, _ in CASES],
)
def test_times_across_a_clock_change(tz: ZoneInfo, start: str, minutes: int, expected: str) -> None:
    at = wall(tz, start)
    assert formats.times_label(at, at + timedelta(minutes=minutes), tz, Catalogs.load().get("en")) == expected


def test_the_second_of_two_equal_wall_times_is_told_apart() -> None:
    second = wall(MADRID, "2026-10-25 02:00", fold=1)  # 01:00 UTC, after the clocks went back
    label = formats.times_label(second, second + timedelta(minutes=60), MADRID, Catalogs.load().get("en"))
    assert label == "02:00 GMT+1 – 03:00 GMT+1"

"""The benchmark's conversations must stay ones the bot accepts, or the benchmark measures nothing.

Each generated request is posted, signed as generated, to the real app: every tap is answered
200, no button is refused as out of date, and each conversation ends in a booking; in the
two-business run, in the business whose number it wrote to.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from bench.conversations import TAPS, TWO_CLINICS, ConversationPlan, Tap, interleave, two_clinics
from bench.taps import LANGUAGES, conversations
from bot import create_app, get_services
from bot.booking.catalog import load_catalog

from .conftest import NOW, TOKEN, app_config
from .whatsapp import BASE_URL, Answer

CLINIC = Path(__file__).parents[1] / "bench" / "clinic.toml"


def post_all(app: Flask, taps: list[Tap]) -> list[Answer]:
    client = app.test_client()
    answers = []
    for tap in taps:
        response = client.post(
            "/webhook", base_url=BASE_URL, data=tap.form, headers={"X-Twilio-Signature": tap.signature}
        )
        answers.append(Answer.parse(response.status_code, response.data))
    return answers


@pytest.fixture
def clinic_app(backend: dict[str, object]) -> Flask:
    return create_app(app_config(CATALOG=load_catalog(CLINIC, languages=frozenset({"en", "es", "pt"})), **backend))


def test_generated_conversations_end_in_bookings(clinic_app: Flask) -> None:
    plan = ConversationPlan(clinic_app.config["CATALOG"], token=TOKEN, url=BASE_URL + "/webhook", now=NOW)
    made = list(plan.conversations(first_phone=1, count=5))
    assert all(len(taps) == TAPS for taps in made)
    answers = post_all(clinic_app, interleave(made, width=2))
    assert [a.status for a in answers] == [200] * len(answers)
    assert not [a.text for a in answers if "out of date" in a.text or "didn't catch" in a.text]
    assert sum(a.text.startswith("Booked!") for a in answers) == 5
    stats = get_services(clinic_app).stats
    assert stats.get("taps.ok") == 5 * TAPS


def test_a_wrong_token_would_be_refused(clinic_app: Flask) -> None:
    """The signatures are real: signed with another token, the first tap is refused."""
    plan = ConversationPlan(clinic_app.config["CATALOG"], token="other", url=BASE_URL + "/webhook", now=NOW)
    ((first, *_),) = plan.conversations(first_phone=1, count=1)
    response = clinic_app.test_client().post(
        "/webhook", base_url=BASE_URL, data=first.form, headers={"X-Twilio-Signature": first.signature}
    )
    assert response.status_code == 403


def test_two_business_conversations_book_each_in_its_own_business(tmp_path: Path, backend: dict[str, object]) -> None:
    """bench/run.py's two-business run: the clinic twice (a catalog folder), conversations split
    evenly between the two numbers, every one booked in the business it wrote to."""
    files = two_clinics(tmp_path)
    app = create_app(app_config(BOT_CATALOG=str(tmp_path), CATALOG=None, **backend))
    plans = [
        ConversationPlan(load_catalog(path, languages=LANGUAGES), token=TOKEN, url=BASE_URL + "/webhook", now=NOW)
        for path in files
    ]
    made = conversations(plans, first_phone=1, count=8, threads=2)
    assert [business for business, _ in made] == [0, 0, 1, 1, 0, 0, 1, 1]
    answers = post_all(app, interleave([taps for _, taps in made], width=4))
    assert [a.status for a in answers] == [200] * len(answers)
    assert not [a.text for a in answers if "out of date" in a.text or "didn't catch" in a.text]
    assert sum(a.text.startswith("Booked!") for a in answers) == 8
    services = get_services(app)
    for index, (business_id, number) in enumerate(TWO_CLINICS):
        shop = services.directory.route(f"whatsapp:{number}")
        assert shop is not None and shop.id == business_id
        phones = {taps[0].form["From"].removeprefix("whatsapp:") for b, taps in made if b == index}
        refs = services.redis.zrange(shop.keys.bookings, 0, -1)
        assert len(refs) == len(phones) == 4
        assert {shop.bookings.booking(ref)["phone"] for ref in refs} == phones
    services.redis.close()

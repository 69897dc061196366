"""The benchmark's conversations must stay ones the bot accepts, or the benchmark measures nothing.

Each generated request is posted, signed as generated, to the real app: every tap is answered
200, no button is refused as out of date, and each conversation ends in a booking.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from bench.conversations import TAPS, ConversationPlan, interleave
from bot import create_app, get_services
from bot.booking.catalog import load_catalog

from .conftest import NOW, TOKEN, app_config
from .whatsapp import BASE_URL, Answer

CLINIC = Path(__file__).parents[1] / "bench" / "clinic.toml"


@pytest.fixture
def clinic_app(backend: dict[str, object]) -> Flask:
    return create_app(app_config(CATALOG=load_catalog(CLINIC, languages=frozenset({"en", "es", "pt"})), **backend))


def test_generated_conversations_end_in_bookings(clinic_app: Flask) -> None:
    plan = ConversationPlan(clinic_app.config["CATALOG"], token=TOKEN, url=BASE_URL + "/webhook", now=NOW)
    conversations = list(plan.conversations(first_phone=1, count=5))
    assert all(len(taps) == TAPS for taps in conversations)
    client = clinic_app.test_client()
    answers = []
    for tap in interleave(conversations, width=2):
        response = client.post(
            "/webhook", base_url=BASE_URL, data=tap.form, headers={"X-Twilio-Signature": tap.signature}
        )
        answers.append(Answer.parse(response.status_code, response.data))
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

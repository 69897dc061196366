"""Only Twilio can drive the bot: a missing, wrong or misplaced signature is 403 and touches nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services

from .conftest import TOKEN, app_config
from .whatsapp import WhatsApp


def redis_commands(db: redis.Redis) -> int:
    """Commands the server has processed so far (the fake server keeps no count: 0)."""
    try:
        return int(db.info("stats")["total_commands_processed"])
    except (KeyError, redis.ResponseError):
        return 0


@pytest.mark.parametrize(
    "how",
    ["missing", "garbage", "other token", "other url", "other query", "tampered field", "extra field"],
)
def test_forged_requests_are_refused_and_touch_nothing(app: Flask, wa: WhatsApp, db: redis.Redis, how: str) -> None:
    form = wa.form("hi")
    kwargs: dict[str, Any] = {}
    if how == "missing":
        kwargs["signature"] = ""
    elif how == "garbage":
        kwargs["signature"] = "bm90IGEgc2lnbmF0dXJl"
    elif how == "other token":
        kwargs["signature"] = WhatsApp(app.test_client(), "another-token").validator.compute_signature(
            "https://bot.example.com/webhook", form
        )
    elif how == "other url":
        kwargs["signed_path"] = "/other-webhook"
    elif how == "other query":
        kwargs.update(path="/webhook?lang=es", signed_path="/webhook")
    elif how == "tampered field":
        kwargs["signature"] = wa.validator.compute_signature("https://bot.example.com/webhook", form)
        form = {**form, "Body": "something else"}
    elif how == "extra field":
        kwargs["signature"] = wa.validator.compute_signature("https://bot.example.com/webhook", form)
        form = {**form, "Injected": "1"}
    before = redis_commands(db)
    answer = wa.post(form, **kwargs)
    assert answer.status == 403
    assert "Response" not in answer.body
    assert redis_commands(db) == before + (1 if before else 0)  # only our own INFO call
    assert db.dbsize() == 0
    assert get_services(app).stats.get("taps.forged") == 1


def test_unknown_fields_twilio_adds_are_part_of_the_signature_and_accepted(wa: WhatsApp) -> None:
    form = wa.form("hi", ChannelMetadata='{"type":"whatsapp"}', ReferralNumMedia="0", SomethingNew="x")
    assert wa.post(form).status == 200


def test_the_query_string_is_signed_too(wa: WhatsApp) -> None:
    answer = wa.send("hi", path="/webhook?lang=es")
    assert answer.status == 200
    assert answer.text.startswith("¡Hola, Ana!")


def test_standard_ports_may_be_given_or_not(wa: WhatsApp) -> None:
    form = wa.form("hi")
    signature = wa.validator.compute_signature("https://bot.example.com:443/webhook", form)
    assert wa.post(form, signature=signature).status == 200


def test_behind_tls_termination_public_base_url_names_what_twilio_called(backend: dict[str, Any]) -> None:
    app = create_app(app_config(PUBLIC_BASE_URL="https://bot.example.com/", **backend))
    wa = WhatsApp(app.test_client(), TOKEN)
    form = wa.form("hi")
    signature = wa.validator.compute_signature("https://bot.example.com/webhook", form)
    # the proxy forwards plain http to an internal address
    assert wa.post(form, signature=signature, base_url="http://10.0.0.7:8000").status == 200
    assert (
        wa.post(
            wa.form("hi"),
            base_url="http://10.0.0.7:8000",
            signature=wa.validator.compute_signature("http://10.0.0.7:8000/webhook", form),
        ).status
        == 403
    )


def test_trusted_proxy_headers_are_honoured_only_when_configured(backend: dict[str, Any]) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bot.example.com"}
    for hops, expected in ((1, 200), (0, 403)):
        app = create_app(app_config(TRUSTED_PROXY_HOPS=hops, **backend))
        wa = WhatsApp(app.test_client(), TOKEN)
        form = wa.form("hi")
        signature = wa.validator.compute_signature("https://bot.example.com/webhook", form)
        answer = wa.post(form, signature=signature, base_url="http://10.0.0.7:8000", headers=headers)
        assert answer.status == expected


def test_checks_can_be_switched_off_explicitly_for_local_experiments() -> None:
    """On the embedded store only: next to a real Redis start-up refuses (tests/test_fail_closed.py)."""
    app = create_app(app_config(TWILIO_VALIDATE_SIGNATURE="false"))
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.post(wa.form("hi"), signature="").status == 200


def test_testing_mode_alone_switches_checks_off() -> None:
    """On the embedded store only, as above."""
    app = create_app({"TESTING": True})
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.post(wa.form("hi"), signature="").status == 200


def logged(stream: io.StringIO, logger: str) -> list[dict[str, Any]]:
    """The lines ``logger`` wrote since the last call, as production writes them (JSON, phones masked)."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    stream.truncate(0)
    stream.seek(0)
    return [line for line in lines if line["logger"] == logger]


PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bot.example.com"}
BOTH_HINTS = "set PUBLIC_BASE_URL to the https URL Twilio calls; behind a proxy or ngrok? set TRUSTED_PROXY_HOPS"


def test_a_refusal_hints_at_public_base_url_and_at_a_proxy_no_hop_of_which_is_trusted(
    backend: dict[str, Any], json_lines: io.StringIO
) -> None:
    app = create_app(app_config(**backend))  # WEBHOOK_HOSTS only, TRUSTED_PROXY_HOPS 0
    wa = WhatsApp(app.test_client(), TOKEN, phone="+34600111222")
    form = wa.form("hi")
    signature = wa.validator.compute_signature("https://bot.example.com/webhook", form)
    assert wa.post(form, signature=signature, base_url="http://bot.example.com", headers=PROXY).status == 403
    (line,) = logged(json_lines, "bot.webhook")
    assert (line["msg"], line["url"], line["hint"]) == (
        "tap forged: wrong X-Twilio-Signature",
        "http://bot.example.com/webhook",
        BOTH_HINTS,
    )
    assert wa.post(wa.form("hi"), signature="forged", base_url="http://bot.example.com").status == 403
    (line,) = logged(json_lines, "bot.webhook")
    assert line["hint"] == "set PUBLIC_BASE_URL to the https URL Twilio calls"  # no proxy: only the first hint

    status = app.test_client().post(
        "/webhook/status?to=%2B34600111222&entry=1-0",
        base_url="http://bot.example.com",
        data={"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"},
        headers={"X-Twilio-Signature": "forged", **PROXY},
    )
    assert status.status_code == 403
    (line,) = logged(json_lines, "bot.signature")
    assert line["msg"] == (
        "signature refused: wrong X-Twilio-Signature; checked http://bot.example.com/webhook/status?to=+34*****222"
        "&entry=1-0; hint: set PUBLIC_BASE_URL to the https URL Twilio calls"
        "; hint: behind a proxy or ngrok? set TRUSTED_PROXY_HOPS"
    )
    assert "600111" not in json_lines.getvalue()


def test_no_hint_when_the_urls_are_set_up_and_the_proxy_trusted(
    backend: dict[str, Any], json_lines: io.StringIO
) -> None:
    app = create_app(app_config(PUBLIC_BASE_URL="https://bot.example.com", TRUSTED_PROXY_HOPS=1, **backend))
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.post(wa.form("hi"), signature="forged", base_url="http://10.0.0.7", headers=PROXY).status == 403
    (line,) = logged(json_lines, "bot.webhook")
    assert line["msg"] == "tap forged: wrong X-Twilio-Signature" and "hint" not in line

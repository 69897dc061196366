"""Whatever a client posts, the webhook answers with a clear 4xx or a reply, never a 500."""

from __future__ import annotations

import pytest
import redis
from flask import Flask

from bot.errors import MalformedMessage
from bot.inbound import parse_inbound

from .conftest import TOKEN
from .whatsapp import WhatsApp

SID = "SM" + "a" * 32


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"MessageSid": None}, "MessageSid: Missing data for required field."),
        ({"MessageSid": "not-a-sid"}, "MessageSid: must be a Twilio message SID"),
        ({"MessageSid": SID + "x"}, "MessageSid: must be a Twilio message SID"),
        ({"From": None}, "From: Missing data for required field."),
        ({"From": "+34600111222"}, "From: must be whatsapp:+<E.164 phone number>"),
        ({"From": "whatsapp:+0123"}, "From: must be whatsapp:+<E.164 phone number>"),
        ({"From": "whatsapp:hello"}, "From: must be whatsapp:+<E.164 phone number>"),
        ({"From": "messenger:+34600111222"}, "From: must be whatsapp:+<E.164 phone number>"),
        ({"Body": "x" * 4097}, "Body: Longer than maximum length 4096."),  # more than WhatsApp carries
        ({"ButtonPayload": "x" * 257}, "ButtonPayload: Longer than maximum length 256."),
        ({"ProfileName": "x" * 257}, "ProfileName: Longer than maximum length 256."),
        ({"WaId": "abc"}, "WaId: String does not match expected pattern."),
    ],
)
def test_what_cannot_be_a_whatsapp_message_is_400_with_a_reason(
    wa: WhatsApp, db: redis.Redis, change: dict[str, str | None], reason: str
) -> None:
    form = {k: v for k, v in {**wa.form("hi"), **change}.items() if v is not None}
    answer = wa.post(form)
    assert (answer.status, answer.body.strip()) == (400, reason)
    assert db.dbsize() == 0


def test_a_field_given_twice_is_refused(app: Flask, db: redis.Redis) -> None:
    wa = WhatsApp(app.test_client(), TOKEN)
    form = wa.form("hi")
    pairs = [*form.items(), ("MessageSid", "SM" + "b" * 32)]
    from werkzeug.datastructures import MultiDict

    data = MultiDict(pairs)
    signature = wa.validator.compute_signature("https://bot.example.com/webhook", data)
    response = app.test_client().post(
        "/webhook", base_url="https://bot.example.com", data=data, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 400
    assert b"MessageSid: given more than once" in response.data
    assert db.dbsize() == 0


def test_the_longest_body_twilio_sends_is_fine(wa: WhatsApp) -> None:
    assert wa.send("ñ" * 1600).status == 200


def raw_post(app: Flask, body: bytes, content_type: str, *, signed: bool = True):
    """Post raw bytes, signed over the URL alone (what Twilio would sign for such a body)."""
    wa = WhatsApp(app.test_client(), TOKEN)
    signature = wa.validator.compute_signature("https://bot.example.com/webhook", {}) if signed else ""
    return app.test_client().post(
        "/webhook",
        base_url="https://bot.example.com",
        data=body,
        headers={"Content-Type": content_type, "X-Twilio-Signature": signature},
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"MessageSid": "SMx", "From": "whatsapp:+34600111222"}', "application/json"),
        (b"MessageSid=%ZZ&From=%E2%82", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00garbage=\xff", "application/x-www-form-urlencoded"),
        (b"--xx\r\nbroken multipart", "multipart/form-data; boundary=xx"),
        (b"--xx\r\nbroken multipart", "multipart/form-data"),
        (b"", "text/plain"),
        (b"a=" + b"&a=" * 5000, "application/x-www-form-urlencoded"),
    ],
    ids=["json", "bad-percent", "bad-utf8", "bad-multipart", "no-boundary", "empty", "many-keys"],
)
def test_unreadable_bodies_get_a_4xx_never_a_500(app: Flask, db: redis.Redis, body: bytes, content_type: str) -> None:
    response = raw_post(app, body, content_type)
    assert 400 <= response.status_code < 500
    assert db.dbsize() == 0


def test_a_huge_body_is_refused_with_413_before_parsing(app: Flask, db: redis.Redis) -> None:
    response = raw_post(app, b"Body=" + b"x" * 200_000, "application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert db.dbsize() == 0


def test_only_post_is_served(app: Flask) -> None:
    assert app.test_client().get("/webhook").status_code == 405


def test_parse_normalises_the_phone_and_keeps_what_twilio_sent() -> None:
    message = parse_inbound(
        {
            "MessageSid": SID,
            "From": "whatsapp:+34600111222",
            "To": "whatsapp:+14155238886",
            "Body": "Corte",
            "ButtonPayload": "svc1:cut",
            "ButtonText": "Corte",
            "ProfileName": "Ana",
            "WaId": "34600111222",
            "MessageType": "button",
            "OriginalRepliedMessageSid": "SM" + "c" * 32,
            "AccountSid": "AC" + "0" * 32,
        }
    )
    assert message.phone == "+34600111222"
    assert (message.button_payload, message.button_text, message.message_type) == ("svc1:cut", "Corte", "button")
    assert message.original_replied_message_sid == "SM" + "c" * 32
    with pytest.raises(MalformedMessage) as caught:
        parse_inbound({"From": "whatsapp:+34600111222"})
    assert caught.value.field == "MessageSid"

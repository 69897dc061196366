"""Whatever arrives at /webhook: never a 5xx, never a crash in the log, no Redis write for a refusal.

A hypothesis property test posts arbitrary forms, headers and bodies (through Flask's test
client) to the app on a real redis-server: Twilio-like forms with fields dropped, repeated,
overlong or full of control characters; raw bytes; broken percent-encoding; multipart and
JSON; bodies over the size limit; signatures right, wrong, missing or made for another URL.
Writes are counted by Redis itself (``rdb_changes_since_last_save`` counts every change to
the data set), so a refused request provably wrote nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from bot import MAX_CONTENT_LENGTH, create_app, get_services
from bot.cli import twilio_form

from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .whatsapp import BASE_URL, WhatsApp

# Deterministic (same examples every run) and without a deadline: a shared 2-core CI machine
# must not turn a slow example into a failure. 2,000 examples take a few seconds.
settings.register_profile(
    "hostile",
    max_examples=2000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FIELDS = [
    "MessageSid", "From", "To", "Body", "ButtonPayload", "ButtonText", "ListId", "ProfileName",
    "WaId", "MessageType", "OriginalRepliedMessageSid", "AccountSid", "NumMedia",
]  # fmt: skip
PLAUSIBLE = [
    "", "hi", "1", "3", "menu", "back", "Confirm", "whatsapp:+34600111222", "whatsapp:+0", "+34600111222",
    "SM" + "a" * 32, "SM" + "A" * 32, "nav1:menu", "nav1.1:book", "svc1.1:cut", "hold1.1:confirm",
    "time1.zz:1768388400", "mng1.1:cancel:ABCDEF", "lang1:xx", "zzz9.1:x", "button", "34600111222",
]  # fmt: skip
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=b0undary",
    "multipart/form-data",
    "application/json",
    "text/plain",
    "",
]

texts = st.one_of(
    st.text(max_size=30),  # any code point hypothesis likes: control characters, RTL marks, emoji
    st.sampled_from(PLAUSIBLE),
    st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=3), st.integers(200, 2500)),  # overlong
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))


@st.composite
def forms(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A Twilio form, then fields dropped, replaced, repeated or added."""
    pairs = list(twilio_form(draw(st.sampled_from(["+34600111222", "+447700900123"])), draw(texts)).items())
    for _ in range(draw(st.integers(0, 4))):
        what = draw(st.sampled_from(["drop", "replace", "repeat", "add"]))
        if what == "drop" and pairs:
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        elif what == "replace" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            pairs[index] = (pairs[index][0], draw(texts))
        elif what == "repeat" and pairs:
            pairs.append((draw(st.sampled_from(pairs))[0], draw(texts)))
        else:
            pairs.append((draw(keys), draw(texts)))
    return pairs


BROKEN_ESCAPES = ["%", "%Z", "%ZZ", "%E2%82", "%C3%28", "%FF", "%00", "%%", "+%2"]


def multipart(pairs: list[tuple[str, str]], cut: int | None) -> bytes:
    parts = [f'--b0undary\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in pairs]
    body = ("".join(parts) + "--b0undary--\r\n").encode("utf-8", "surrogatepass")
    return body if cut is None else body[:cut]


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    pairs = draw(forms())
    encoding = draw(st.sampled_from(["form", "form", "form", "broken", "raw", "multipart", "json", "huge"]))
    content_type = draw(st.one_of(st.sampled_from(CONTENT_TYPES), st.from_regex(r"[ -~]{0,40}", fullmatch=True)))
    if encoding == "form":
        body, content_type = urlencode(pairs).encode(), "application/x-www-form-urlencoded"
    elif encoding == "broken":
        text = urlencode(pairs)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(BROKEN_ESCAPES)) + text[at:]
        body = text.encode()
    elif encoding == "raw":
        body = draw(st.binary(max_size=300))
    elif encoding == "multipart":
        body = multipart(pairs, draw(st.none() | st.integers(0, 400)))
    elif encoding == "json":
        body = json.dumps(dict(pairs)).encode()
    else:
        body = urlencode([*pairs, ("Pad", "x" * (MAX_CONTENT_LENGTH + draw(st.integers(0, 5000))))]).encode()
    query = draw(st.sampled_from(["", "lang=es", "lang=xx", "lang=%FF%FE", "%ZZ=1&lang", "lang=es&lang=pt"]))
    extra = draw(st.one_of(st.just(""), st.text(max_size=10).map(quote), st.sampled_from(BROKEN_ESCAPES)))
    query += "&" + extra if extra else ""
    query = "?" + query.lstrip("&") if query else ""
    return {
        "pairs": pairs,
        "body": body,
        "content_type": content_type,
        "path": "/webhook" + query,
        "signature": draw(st.sampled_from(["valid", "valid", "valid", "missing", "garbage", "other url"])),
        "headers": draw(st.dictionaries(st.from_regex(r"X-[A-Za-z0-9-]{1,15}", fullmatch=True),
                                        st.from_regex(r"[ -~]{0,60}", fullmatch=True), max_size=3)),
    }  # fmt: skip


def writes(db: redis.Redis) -> int:
    """Changes to the data set so far, as counted by Redis."""
    return int(db.info("persistence")["rdb_changes_since_last_save"])


@pytest.fixture
def real_app(redis_server: RedisServer) -> Iterator[Flask]:
    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(app_config(REDIS_URL=redis_server.url))
    yield app
    get_services(app).redis.close()


@given(request=requests())
@settings(settings.get_profile("hostile"))
def test_whatever_is_posted_never_gets_a_5xx_and_refusals_write_nothing(
    real_app: Flask, caplog: pytest.LogCaptureFixture, request: dict[str, Any]
) -> None:
    db = get_services(real_app).redis
    validator = WhatsApp(real_app.test_client(), TOKEN).validator
    signature = {
        "valid": validator.compute_signature(BASE_URL + request["path"], MultiDict(request["pairs"])),
        "missing": "",
        "garbage": "bm90IGEgc2lnbmF0dXJl",
        "other url": validator.compute_signature(BASE_URL + "/elsewhere", MultiDict(request["pairs"])),
    }[request["signature"]]
    headers = {**request["headers"], "Content-Type": request["content_type"], "X-Twilio-Signature": signature}
    logged = len(caplog.records)
    before = writes(db)
    with caplog.at_level(logging.INFO):
        response = real_app.test_client().post(
            request["path"], base_url=BASE_URL, data=request["body"], headers=headers
        )
    event(f"{request['signature']} signature, status {response.status_code}")  # --hypothesis-show-statistics
    assert response.status_code < 500
    if response.status_code == 200:
        assert response.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    else:
        assert response.status_code in (400, 403, 413)
        assert writes(db) == before, "a refused request wrote to Redis"
    problems = [r for r in caplog.records[logged:] if r.levelno >= logging.ERROR or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]


def test_a_valid_request_does_write_so_the_counter_sees_writes(real_app: Flask) -> None:
    """The write counter the property relies on does move when a tap is answered."""
    db = get_services(real_app).redis
    before = writes(db)
    assert WhatsApp(real_app.test_client(), TOKEN).send("hi").status == 200
    assert writes(db) > before


@pytest.mark.parametrize(
    "change",
    [{"From": None}, {"MessageSid": None}, {"From": None, "MessageSid": None}],
    ids=["no From", "no MessageSid", "neither"],
)
def test_a_signed_request_without_from_or_sid_writes_nothing(real_app: Flask, change: dict[str, None]) -> None:
    db = get_services(real_app).redis
    wa = WhatsApp(real_app.test_client(), TOKEN)
    form = {k: v for k, v in {**wa.form("hi"), **change}.items() if v is not None}
    before = writes(db)
    assert wa.post(form).status == 400
    assert writes(db) == before


def test_a_replayed_signature_on_another_url_writes_nothing(real_app: Flask) -> None:
    db = get_services(real_app).redis
    wa = WhatsApp(real_app.test_client(), TOKEN)
    form = wa.form("hi")
    signature = wa.validator.compute_signature(BASE_URL + "/webhook", form)
    assert wa.post(form, signature=signature).status == 200  # the original delivery
    before = writes(db)
    for path in ("/webhook?lang=es", "/webhook?x=1"):
        assert wa.post(form, path=path, signature=signature).status == 403
    assert wa.post(form, signature=signature, base_url="https://evil.example.com").status == 403
    assert writes(db) == before


def test_phone_numbers_and_message_text_never_reach_the_log(real_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    phone, secret = "+34600987654", "my-secret-words-4711"
    wa = WhatsApp(real_app.test_client(), TOKEN, phone=phone, name="Zoe Secretname")
    with caplog.at_level(logging.DEBUG):
        wa.send("hi")
        wa.send(secret)  # not understood: a hint
        wa.tap(f"zzz1.1:{secret}", secret)  # an unusable button
        wa.tap("nav1.3:book", "Book")
        wa.post({**wa.form(secret), "Body": secret * 200})  # too long: 400
        wa.post({**wa.form(secret), "From": f"whatsapp:{phone}x"})  # not a phone: 400
        wa.post(wa.form(secret), signature="forged")  # 403
    assert caplog.records, "the log said nothing at all"
    text = caplog.text
    for unmasked in (phone, phone.lstrip("+"), phone[3:], secret):
        assert unmasked not in text

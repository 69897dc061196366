"""Every phone number the webhook accepts is masked alike, short ones included (issue 13, item 6).

The parser (``bot.inbound.E164``) takes ``+`` and 7 to 15 digits. ``mask_phone`` and the
formatters' safety net must agree on that whole range, and a 7- or 8-digit number (a small
country's) must show at most 2 of its digits.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from flask import Flask

from bot.inbound import E164, parse_inbound
from bot.logs import JsonFormatter, PlainFormatter, mask_phone

from .conftest import TOKEN, json_log
from .whatsapp import WhatsApp

#: One number per length the parser accepts: +6831234 (7 digits, Cook Islands-like) … 15 digits
ACCEPTED = ["+68312345678901234"[: 1 + digits] for digits in range(7, 16)]


def record(message: str, *args: object, raising: str = "") -> logging.LogRecord:
    exc_info = None
    if raising:
        try:
            raise RuntimeError(raising)
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("bot.test", logging.WARNING, __file__, 1, message, args, exc_info)


def shown_digits(masked: str) -> int:
    return len(re.findall(r"\d", masked))


def test_the_numbers_are_the_ones_the_parser_accepts() -> None:
    for phone in ACCEPTED:
        assert E164.fullmatch(phone)
        form = {"MessageSid": "SM" + "a" * 32, "From": f"whatsapp:{phone}"}
        assert parse_inbound(form).phone == phone
    assert not E164.fullmatch(ACCEPTED[0][:-1]) and not E164.fullmatch(ACCEPTED[-1] + "5")  # 6 and 16 digits


@pytest.mark.parametrize("phone", ACCEPTED)
def test_mask_phone_hides_every_accepted_length(phone: str) -> None:
    masked = mask_phone(phone)
    assert "*****" in masked and phone not in masked
    digits = len(phone) - 1
    assert shown_digits(masked) <= (2 if digits <= 8 else 5)
    assert masked.startswith(phone[:2]) and masked.endswith(phone[-1])  # still tells numbers apart a little


def test_a_short_number_shows_at_most_two_digits() -> None:
    assert mask_phone("+6831234") == "+6*****4"
    assert mask_phone("+68312345") == "+6*****5"
    assert mask_phone("+683123456") == "+68*****456"  # 9 digits and more: as before
    assert mask_phone("+34600111222") == "+34*****222"


@pytest.mark.parametrize("fmt", [PlainFormatter, JsonFormatter])
@pytest.mark.parametrize("phone", ACCEPTED)
def test_both_formatters_mask_every_accepted_length_as_mask_phone_does(
    fmt: type[logging.Formatter], phone: str
) -> None:
    lines = [
        fmt().format(record(f"from {phone}: no reply")),  # slipped into a message
        fmt().format(record("from %s: no reply", phone)),  # as an argument
        fmt().format(record("whatsapp:%s.", phone)),  # glued to other text
        fmt().format(record("failed", raising=f"no answer for {phone}")),  # in a traceback
    ]
    for line in lines:
        assert mask_phone(phone) in line, line
        assert phone[1:] not in line and phone[2:-1] not in line, line


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every line the bot's loggers write, DEBUG included, as production writes them (JSON)."""
    with json_log(logging.DEBUG) as stream:
        yield stream


def test_a_customer_with_a_seven_digit_number_is_masked_in_every_line(
    app: Flask, json_lines: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    wa = WhatsApp(app.test_client(), TOKEN, phone="+6831234", name="Tui")
    with caplog.at_level(logging.DEBUG):
        assert wa.send("hi").status == 200
        assert wa.send("1").status == 200
    taps = [e for e in map(json.loads, json_lines.getvalue().splitlines()) if e["logger"] == "bot.webhook"]
    assert [tap["from"] for tap in taps] == ["+6*****4", "+6*****4"]
    plain = "\n".join(PlainFormatter().format(r) for r in caplog.records)
    for text in (json_lines.getvalue(), plain):
        assert "831234" not in text and "68312" not in text

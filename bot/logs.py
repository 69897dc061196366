"""Logging set-up and masking: no full phone number ever reaches a log line.

Two formats for the bot's own loggers (``bot.*``), both one line per record:

- ``plain`` (development): ``2026-01-14 10:00:00,123 INFO bot.webhook: tap ok sid=SM… from=+34*****222``
- ``json`` (production, for a log shipper): ``{"ts": "…", "level": "INFO", "logger": "bot.webhook",
  "msg": "tap ok", "sid": "SM…", "from": "+34*****222", …}``

Structured fields travel in ``extra={"fields": {...}}``. As a safety net both formatters
mask anything shaped like an E.164 number that slipped into a message or a traceback.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

FORMATS = ("plain", "json")

#: ``+`` and 7-15 digits: every phone number the webhook accepts (E.164, bot.inbound), wherever it appears
_PHONE = re.compile(r"\+\d{7,15}(?!\d)")


def mask_phone(phone: str) -> str:
    """``+34600123789`` → ``+34*****789``: a fixed-width mask that hides even the length.

    A short number (7 or 8 digits, a small country's) keeps only its first and last digit,
    ``+6831234`` → ``+6*****4``: showing five of its seven digits would leave a hundred guesses.
    """
    digits = len(phone) - 1
    if digits < 7:
        return "*****"
    if digits <= 8:
        return phone[:2] + "*****" + phone[-1:]
    return phone[:3] + "*****" + phone[-3:]


def _masked(text: str) -> str:
    return _PHONE.sub(lambda m: mask_phone(m.group()), text)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value …``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        if extra:
            head, sep, tail = line.partition("\n")  # keep a traceback below the fields
            line = f"{head} {extra}{sep}{tail}"
        return _masked(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _masked(json.dumps(entry, ensure_ascii=False, default=str))


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else PlainFormatter()


def choose_format(setting: str, *, production: bool) -> str:
    """``auto`` is ``json`` in production (a real Redis, not debug/testing), else ``plain``."""
    if setting == "auto":
        return "json" if production else "plain"
    return setting


def configure(level: str, fmt: str = "plain") -> None:
    """Lines on stderr for the bot's own loggers, unless the host configured logging itself."""
    logger = logging.getLogger("bot")
    logger.setLevel(level)
    for handler in logger.handlers:
        if getattr(handler, "tapbook", False):  # a second app in this process: same handler
            handler.setFormatter(formatter(fmt))
            return
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.tapbook = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(fmt))
    logger.addHandler(handler)

"""Logging set-up and masking: no full phone number ever reaches a log line."""

from __future__ import annotations

import logging


def mask_phone(phone: str) -> str:
    """``+34600123789`` → ``+34*****789``: a fixed-width mask that hides even the length."""
    if len(phone) < 8:
        return "*****"
    return phone[:3] + "*****" + phone[-3:]


def configure(level: str) -> None:
    """Plain lines on stderr for the bot's own loggers, unless the host configured logging."""
    logger = logging.getLogger("bot")
    logger.setLevel(level)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)

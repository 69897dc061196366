"""The bot's exceptions. Each carries the data a caller needs to answer or log it."""

from __future__ import annotations


class TapbookError(Exception):
    """Base class for the bot's own errors."""


class ConfigError(TapbookError, SystemExit):
    """A setting is missing or invalid.

    It is also a ``SystemExit``: left uncaught (gunicorn, the flask CLI), the process
    stops with this one line on stderr instead of a traceback.
    """

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        message = f"tapbook: invalid configuration: {setting}: {reason}"
        TapbookError.__init__(self, message)
        self.code = message  # what SystemExit prints

    def __str__(self) -> str:
        return str(self.code)


class MalformedMessage(TapbookError):
    """The posted form cannot be a WhatsApp message; ``reason`` is safe to show the sender."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class BadButtonId(TapbookError, ValueError):
    """A button ID that does not unpack: unknown kind, wrong shape, or too long."""

    def __init__(self, reason: str, *, payload: str) -> None:
        super().__init__(f"{reason}: {payload[:40]!r}")
        self.reason = reason
        self.payload = payload

"""Preview phones: the customers of the ``/try`` page, who never reach Twilio.

A preview phone is ``+999`` and eight digits (``+999`` is a country code no one has). The
conversation treats it as any customer, with three differences, so an owner trying the bot on a
live deployment sends nothing to anyone: its replies go to a stream the page reads instead of the
outbox, no reminder is scheduled for its bookings, and no notice (the owner's alert, the
business's cancel) is queued for them.
"""

from __future__ import annotations

import secrets

PREVIEW_PREFIX = "+999"


def is_preview(phone: str) -> bool:
    return phone.startswith(PREVIEW_PREFIX)


def new_preview_phone() -> str:
    """A fresh preview phone: ``+999`` and eight random digits."""
    return PREVIEW_PREFIX + "".join(secrets.choice("0123456789") for _ in range(8))

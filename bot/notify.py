"""Telling a customer something outside a conversation, e.g. that the business cancelled.

WhatsApp allows a free-form message only within 24 hours of the customer's last one;
anything else needs an approved template sent through Twilio's API. Until that outgoing
channel exists, :func:`tell_customer` says so in the log and returns ``False``, and
callers tell the operator that the customer still has to be told.
"""

from __future__ import annotations

import logging

from .booking.desk import Booking
from .booking.formats import booking_label
from .i18n import N_
from .logs import mask_phone
from .services import Services

log = logging.getLogger(__name__)

CANCELLED = N_("Your booking is cancelled: {booking}")


def tell_customer(services: Services, phone: str, text: str) -> bool:
    """Send ``text`` to ``phone``; whether it went out (today: never, no channel is configured)."""
    log.info("no outgoing channel is configured: %s was not told", mask_phone(phone))
    services.stats.incr("notify.unsent")
    return False


def tell_cancelled(services: Services, booking: Booking) -> bool:
    """Tell the customer, in the language they booked in, that ``booking`` was cancelled."""
    language = services.catalogs.pick(booking.language) or services.settings.default_language
    t = services.catalogs.get(language)
    text = t.gettext(CANCELLED).format(booking=booking_label(services.catalog, booking, t))
    return tell_customer(services, booking.phone, text)

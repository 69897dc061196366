"""Telling a customer something outside a conversation, e.g. that the business cancelled.

Only with the Content API channel (``TWILIO_ACCOUNT_SID`` and a sender set): the text joins
the customer's outbox and the worker sends it in order after anything already queued.
WhatsApp allows such a free-form message only within 24 hours of the customer's last
message, so outside that window nothing is queued, nor to a customer who wrote STOP. Either
way the caller learns whether the customer will be told, and tells the operator to do it otherwise (also when Redis
refuses the message: what the caller did, e.g. a cancel, has happened all the same).
"""

from __future__ import annotations

import logging

import redis

from .booking.formats import booking_label
from .booking.records import Booking
from .i18n import N_
from .logs import mask_phone
from .outbox import epoch_ms, in_window
from .services import Services
from .tenants import Tenant

log = logging.getLogger(__name__)

CANCELLED = N_("Your booking is cancelled: {booking}")


def tell_customer(services: Services, shop: Tenant, phone: str, text: str) -> bool:
    """Queue ``text`` for ``phone`` from ``shop``; whether it will go out (a channel exists and the
    window is open)."""
    if not shop.channel.out_of_band:
        log.info("no outgoing channel is configured: %s was not told", mask_phone(phone))
        services.stats.incr("notify.no_channel")
        return False
    outbox = services.outboxes[shop.id]
    try:
        seen, opted_out = outbox.reach(phone)
        if opted_out:
            log.info("%s wrote STOP: no message the business starts, not told", mask_phone(phone))
            services.stats.incr("notify.opted_out")
            return False
        if not in_window(seen, epoch_ms(services.clock())):
            log.info("%s last wrote over 24 hours ago: WhatsApp allows no free-form text, not told", mask_phone(phone))
            services.stats.incr("notify.outside_window")
            return False
        outbox.enqueue_text(phone, text, shop.sender)
    except redis.RedisError as exc:  # what was done (e.g. a cancel) stands; the operator must tell them
        log.warning("could not queue a message to %s: %s: %s", mask_phone(phone), type(exc).__name__, exc)
        services.stats.incr("notify.failed")
        return False
    log.info("queued a message to %s", mask_phone(phone))
    services.stats.incr("notify.queued")
    return True


def tell_cancelled(services: Services, shop: Tenant, booking: Booking) -> bool:
    """Tell the customer, in the language they booked in, that ``booking`` was cancelled."""
    language = shop.pick_language(booking.language, services.catalogs) or shop.default_language
    t = services.catalogs.get(language)
    text = t.gettext(CANCELLED).format(booking=booking_label(shop.catalog, booking, t))
    return tell_customer(services, shop, booking.phone, text)


def told_text(told: bool) -> str:
    """What the operator reads after a cancel (in English, like the admin page)."""
    if told:
        return "A WhatsApp message telling the customer is on its way."
    return (
        "The customer was not told (no message channel, they last wrote over 24 hours ago, or they asked for no"
        " messages): please tell them."
    )

"""Messages the business starts outside a conversation: a customer told of the business's cancel
or move, the owner told of each booking, move and cancel.

Only with the Content API channel (``TWILIO_ACCOUNT_SID`` and a sender set). Each is an approved
template (:mod:`bot.channels.proactive`) queued as a :class:`~bot.booking.requests.Notice` in the
same atomic step as the write that causes it, so a cancel is never stored without its notice nor
the other way round. The worker sends it in order after anything already queued for that phone:
inside WhatsApp's 24-hour window in any case, outside it only once WhatsApp approved the template;
never to someone who wrote STOP. Queueing never fails the write: whether the customer will be told
is read beforehand (:func:`reach`), and the operator is asked to tell them otherwise.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import redis

from .booking.formats import booking_label
from .booking.records import Booking
from .booking.requests import BookRequest, CancelRequest, Notice, Request
from .channels import proactive
from .i18n import N_, Catalogs, Translator
from .logs import mask_phone
from .outbox import epoch_ms, in_window
from .phones import is_preview
from .tenants import Tenant

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger(__name__)

NEW_BOOKING = N_("new booking {booking}, {name} {phone}")
MOVED_BOOKING = N_("{name} {phone} moved {old} to {booking}")
CANCELLED_BOOKING = N_("{name} {phone} cancelled {booking}")


def _message(kind: str, language: str, variables: dict[str, str], shop: Tenant, **extra: Any) -> str:
    if shop.sender:
        extra["from"] = shop.sender
    return json.dumps(proactive.message(kind, language, variables, **extra), ensure_ascii=False)


def _translator(shop: Tenant, catalogs: Catalogs, language: str | None) -> Translator:
    return catalogs.get(shop.pick_language(language, catalogs) or shop.default_language)


def customer_notice(shop: Tenant, catalogs: Catalogs, booking: Booking, kind: str) -> Notice | None:
    """The customer's notice of the business's cancel (``cancelled``) or move (``moved``, ``booking``
    at its new time) of their booking, in the language they booked in; None without a channel."""
    if not shop.channel.out_of_band:
        return None
    t = _translator(shop, catalogs, booking.language)
    variables = {"1": shop.business.name, "2": booking_label(shop.catalog, booking, t)}
    return Notice(booking.phone, _message(kind, t.code, variables, shop))


def owner_notices(shop: Tenant, catalogs: Catalogs, requests: list[Request], read: Any) -> tuple[Notice, ...]:
    """The owner's alerts of the bookings, moves and cancels in ``requests`` (made by a customer):
    one per change, to ``owner_whatsapp`` in the business's default language. ``read(ref)`` gives a
    booking's stored hash (a cancel's or a move's booking, as the tap read it)."""
    owner = shop.business.owner_whatsapp
    if not owner or not shop.channel.out_of_band:
        return ()
    t = catalogs.get(shop.default_language)
    notices = []
    for request in requests:
        if isinstance(request, BookRequest):
            fields = dict(request.fields)
            booking = booking_label(shop.catalog, Booking.from_hash(fields), t)
            who = {"name": fields.get("name") or "-", "phone": request.phone}
            if request.moving:
                old = read(request.moving.ref)
                old_label = booking_label(shop.catalog, Booking.from_hash(old), t) if old else request.moving.ref
                what = t(MOVED_BOOKING).format(old=old_label, booking=booking, **who)
            else:
                what = t(NEW_BOOKING).format(booking=booking, **who)
        elif isinstance(request, CancelRequest):
            data = read(request.ref)
            if not data:
                continue
            cancelled = Booking.from_hash(data)
            label = booking_label(shop.catalog, cancelled, t)
            what = t(CANCELLED_BOOKING).format(booking=label, name=cancelled.name or "-", phone=cancelled.phone)
        else:
            continue
        variables = {"1": shop.business.name, "2": what}
        notices.append(Notice(owner, _message(proactive.OWNER, t.code, variables, shop)))
    return tuple(notices)


def reach(services: Services, shop: Tenant, phone: str, kind: str, language: str | None) -> str:
    """Whether a ``kind`` template to ``phone`` will go out now: ``yes``, or why not (``no_channel``,
    ``opted_out``, ``not_approved``: outside the window with the template not approved yet,
    ``preview``: a phone of the /try page, ``redis``). One round trip."""
    if not shop.channel.out_of_band:
        return "no_channel"
    if is_preview(phone):
        return "preview"
    try:
        seen, opted_out = services.outboxes[shop.id].reach(phone)
    except redis.RedisError as exc:
        log.warning("could not read whether %s can be told: %s: %s", mask_phone(phone), type(exc).__name__, exc)
        return "redis"
    if opted_out:
        return "opted_out"
    if in_window(seen, epoch_ms(services.clock())):
        return "yes"
    name = proactive.friendly_name(kind, _translator(shop, services.catalogs, language).code)
    return "yes" if services.approvals.approved(name) else "not_approved"


def told_text(reached: str) -> str:
    """What the operator reads after a cancel (in English, like the admin page)."""
    if reached == "yes":
        return "A WhatsApp message telling the customer is on its way."
    why = {
        "no_channel": "no message channel is set up",
        "opted_out": "they asked for no messages (STOP)",
        "not_approved": "they last wrote over 24 hours ago and WhatsApp has not approved the template yet "
        "(flask templates list)",
        "preview": "it was booked from the /try preview: there is nobody to tell",
    }.get(reached, "the message could not be queued")
    return f"The customer was not told ({why}): please tell them."

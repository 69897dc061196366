"""``POST /webhook``: signature → parse → conversation → TwiML. A thin view."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from .errors import MalformedMessage
from .i18n import N_
from .inbound import parse_inbound
from .logs import mask_phone
from .replies import render_text_only
from .services import get_services

bp = Blueprint("webhook", __name__)
log = logging.getLogger(__name__)

OOPS = N_("Sorry, something went wrong on our side. Please try again.")


def _plain(status: int, reason: str) -> Response:
    return Response(reason + "\n", status, mimetype="text/plain")


@bp.post("/webhook")
def receive() -> Response:
    services = get_services()
    started = time.perf_counter()
    if not services.signature.is_valid(request):
        services.stats.incr("taps.forged")
        log.warning("webhook refused: missing or wrong X-Twilio-Signature")
        return _plain(403, "invalid X-Twilio-Signature")
    try:
        message = parse_inbound(request.form)
    except MalformedMessage as exc:
        services.stats.incr("taps.malformed")
        log.info("webhook refused: %s", exc.reason if exc.field != "From" else "From: not a WhatsApp phone")
        return _plain(400, exc.reason)

    result = services.conversation.reply_to(message, lang_param=request.args.get("lang"))
    services.stats.incr(f"taps.{result.outcome}")
    log.info(
        "webhook sid=%s from=%s outcome=%s handler=%s round_trips=%d attempts=%d ms=%.1f",
        message.message_sid,
        mask_phone(message.phone),
        result.outcome,
        result.handler or "-",
        result.round_trips,
        result.attempts,
        (time.perf_counter() - started) * 1000,
    )
    return Response(result.body, 200, mimetype="text/xml")


@bp.errorhandler(HTTPException)
def refuse(exc: HTTPException) -> Response:
    """Oversized or unreadable bodies: a short reason, never a stack trace."""
    return _plain(exc.code or 400, exc.description or exc.name)


@bp.errorhandler(Exception)
def apologise(exc: Exception) -> Response:
    """A bug must not cost the customer an answer: log it, reply politely, count it."""
    log.exception("webhook failed")
    services = get_services()
    services.stats.incr("taps.error")
    language = services.catalogs.pick(request.args.get("lang")) or services.settings.default_language
    body = render_text_only(services.catalogs.get(language).gettext(OOPS))
    return Response(body, 200, mimetype="text/xml")

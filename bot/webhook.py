"""``POST /webhook``: signature → parse → conversation → TwiML. A thin view."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from .errors import MalformedMessage
from .i18n import N_
from .inbound import parse_inbound
from .logs import mask_phone
from .replies import EMPTY_TWIML, render_text_only
from .services import Services, get_services

bp = Blueprint("webhook", __name__)
log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

OOPS = N_("Sorry, something went wrong on our side. Please try again.")


def _plain(status: int, reason: str) -> Response:
    return Response(reason + "\n", status, mimetype="text/plain")


@bp.post("/webhook")
def receive() -> Response:
    services = get_services()
    g.tap = {"request_id": _request_id(), "started": time.perf_counter()}
    verdict = services.signature.check(request)
    if not verdict.valid:
        # The URL checked holds no secret and is what a newcomer behind a proxy or ngrok needs to see.
        hint = {"hint": "; ".join(verdict.hints)} if verdict.hints else {}  # what to set (bot.signature)
        _finish(services, "forged", logging.WARNING, reason=verdict.reason, url=verdict.urls_for_log(), **hint)
        return _plain(403, "invalid X-Twilio-Signature")
    try:
        message = parse_inbound(request.form)
    except MalformedMessage as exc:
        _finish(services, "malformed", reason=exc.reason if exc.field != "From" else "From: not a WhatsApp phone")
        return _plain(400, exc.reason)

    g.tap.update(sid=message.message_sid, phone=mask_phone(message.phone))
    shop = services.directory.route(message.to)
    if shop is None:
        return _unrouted(services, message.to)
    g.tap["business"] = shop.id
    result = services.conversation.reply_to(shop, message, lang_param=request.args.get("lang"))
    seconds = _finish(
        services,
        result.outcome,
        handler=result.handler or "-",
        round_trips=result.round_trips,
        attempts=result.attempts,
    )
    services.stats.observe_tap(result.handler, seconds, result.round_trips)
    return Response(result.body, 200, mimetype="text/xml")


#: a message to an unclaimed number is logged as a WARNING at most once an hour per number (per process)
WARN_EVERY = 3600.0


def _unrouted(services: Services, to: str) -> Response:
    """A message to a number no business claims: answered with nothing, written nowhere."""
    number = to.removeprefix("whatsapp:")[:20] or "-"
    now, warned = services.clock().timestamp(), services.unrouted_warned
    warn = now - warned.get(number, now - WARN_EVERY) >= WARN_EVERY
    if warn:
        if len(warned) > 10_000:  # a flood of made-up numbers must not grow this without bound
            warned.clear()
        warned[number] = now
    _finish(
        services,
        "unrouted",
        logging.WARNING if warn else logging.DEBUG,
        reason=f"no business has the number {mask_phone(number)} (check the catalogs' numbers)",
    )
    return Response(EMPTY_TWIML, 200, mimetype="text/xml")


def _request_id() -> str:
    """The proxy's ``X-Request-Id`` (Heroku, nginx) when it looks like one, else a fresh one."""
    given = request.headers.get("X-Request-Id", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _finish(services: Services, outcome: str, level: int = logging.INFO, **fields: object) -> float:
    """Count the webhook's outcome and write its one log line; returns its duration in seconds."""
    tap = g.get("tap") or {"started": time.perf_counter()}
    seconds = time.perf_counter() - tap["started"]
    services.stats.incr(f"taps.{outcome}", business=tap.get("business"))
    line = {
        "request_id": tap.get("request_id", "-"),
        "business": tap.get("business", "-"),
        "sid": tap.get("sid", "-"),
        "from": tap.get("phone", "-"),
        "outcome": outcome,
        **fields,
        "ms": round(seconds * 1000, 1),
    }
    reason = line.pop("reason", "")
    message = f"tap {outcome}: {reason}" if reason else f"tap {outcome}"
    log.log(level, message, extra={"fields": line}, exc_info=level >= logging.ERROR)
    return seconds


@bp.errorhandler(HTTPException)
def refuse(exc: HTTPException) -> Response:
    """Oversized or unreadable bodies: a short reason, never a stack trace."""
    _finish(get_services(), "malformed", reason=f"{exc.code} {exc.name}")
    return _plain(exc.code or 400, exc.description or exc.name)


@bp.errorhandler(Exception)
def apologise(exc: Exception) -> Response:
    """A bug must not cost the customer an answer: log it, reply politely, count it."""
    services = get_services()
    _finish(services, "error", logging.ERROR, reason=f"webhook failed: {type(exc).__name__}")
    shop = services.directory.get(g.get("tap", {}).get("business", "")) or services.directory.only
    language = (shop and shop.pick_language(request.args.get("lang"), services.catalogs)) or (
        shop.default_language if shop else services.settings.default_language
    )
    body = render_text_only(services.catalogs.get(language).gettext(OOPS))
    return Response(body, 200, mimetype="text/xml")

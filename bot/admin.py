"""``GET /admin``: the business owner's page: today's and upcoming bookings, with cancel.

HTTP basic auth against ``ADMIN_PASSWORD`` (any user name); without it the page answers
404 and start-up says so. Each cancel button carries a token signed with the password
(itsdangerous) and bound to its booking, so another site cannot make the owner's browser
cancel anything (CSRF), and a page left open overnight must be reloaded first.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

import redis
from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from werkzeug.exceptions import HTTPException

from .agenda import agenda, today, why_not
from .notify import tell_cancelled, told_text
from .services import get_services

bp = Blueprint("admin", __name__, url_prefix="/admin")
log = logging.getLogger(__name__)

#: How long a rendered cancel button stays valid.
TOKEN_MAX_AGE = 12 * 3600
#: a cancel's outcome is shown right after the redirect; an old or crafted link shows nothing
NOTICE_MAX_AGE = 300
REALM = 'Basic realm="tapbook admin", charset="UTF-8"'


def _password() -> str | None:
    return get_services().settings.admin_password


class _ClockSigner(TimestampSigner):
    """Timestamps from the app's clock, so a test can age a page."""

    def get_timestamp(self) -> int:
        return int(get_services().clock().timestamp())


def _signer(password: str, salt: str = "tapbook-admin-cancel") -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(password, salt=salt, signer=_ClockSigner)


def _notices() -> URLSafeTimedSerializer:
    """Signs the outcome a redirect shows, so a crafted link cannot put words on the owner's page."""
    return _signer(_password() or "", salt="tapbook-admin-notice")


def _plain(status: int, text: str, **headers: str) -> Response:
    return Response(text + "\n", status, mimetype="text/plain", headers=headers)


@bp.before_request
def require_login() -> Response | None:
    password = _password()
    if password is None:
        return _plain(404, "The admin page is off: set ADMIN_PASSWORD to turn it on.")
    auth = request.authorization
    given = auth.password if auth and auth.type == "basic" and auth.password else ""
    if not hmac.compare_digest(given.encode(), password.encode()):
        return _plain(401, "Log in with the admin password.", **{"WWW-Authenticate": REALM})
    return None


@bp.after_request
def private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("")
def bookings() -> str:
    services = get_services()
    days = agenda(services, today(services), services.catalog.business.horizon_days + 1)
    signer = _signer(_password() or "")
    return render_template(
        "admin/bookings.html",
        business=services.catalog.business.name,
        days=days,
        token=lambda ref: signer.dumps(ref),
        notice=_notice(request.args),
    )


@bp.post("/cancel")
def cancel() -> Response:
    services = get_services()
    ref = request.form.get("ref", "")
    try:
        signed = _signer(_password() or "").loads(request.form.get("token", ""), max_age=TOKEN_MAX_AGE)
    except BadSignature:
        signed = None
    if not ref or signed != ref:
        return _plain(400, "This page is out of date or the form was not sent from it: reload it and try again.")
    result, booking = services.desk.cancel_for_business(ref, services.clock())
    if result != "ok" or booking is None:
        log.info("admin: cancel of %s refused (%s)", ref, result)
        return redirect(url_for("admin.bookings", notice=_notices().dumps({"refused": ref, "why": result})), 303)
    told = tell_cancelled(services, booking)
    log.info("admin: cancelled %s (customer told: %s)", ref, "yes" if told else "no")
    return redirect(url_for("admin.bookings", notice=_notices().dumps({"cancelled": ref, "told": told})), 303)


def _notice(args: Mapping[str, str]) -> str:
    try:
        notice = _notices().loads(args.get("notice", ""), max_age=NOTICE_MAX_AGE)
    except BadSignature:
        return ""
    if ref := notice.get("cancelled"):
        return f"Booking {ref} is cancelled. {told_text(bool(notice.get('told')))}"
    if ref := notice.get("refused"):
        return f"Booking {ref} was not cancelled: {why_not(notice.get('why', ''))}."
    return ""


@bp.errorhandler(redis.RedisError)
def redis_down(exc: redis.RedisError) -> Response:
    log.warning("admin: redis error: %s: %s", type(exc).__name__, exc)
    return _plain(503, "The booking store cannot be reached right now. Please try again in a minute.")


@bp.errorhandler(HTTPException)
def refuse(exc: HTTPException) -> Response:
    return _plain(exc.code or 400, exc.description or exc.name)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    if not get_services(app).settings.admin_password:
        log.info("admin page is off: set ADMIN_PASSWORD to turn on /admin")

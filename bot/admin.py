"""``GET /admin``: a business owner's page: today's and upcoming bookings, with cancel.

HTTP basic auth, per business: the user name is the business id (with one business, any name),
the password its ``ADMIN_PASSWORD_<ID>`` (``ADMIN_PASSWORD`` with one business) or the hash in its
catalog (``admin_password_hash``). An owner sees and cancels only their own business's bookings
(its keys carry its hash tag). Without any password the page answers 404 and start-up says so.
Failed logins are limited per client address and per business, and logged (:mod:`bot.logins`).

Nothing on the page is signed with a password, so nothing it shows can test guesses of one
offline: each cancel button carries a token signed with ``SECRET_KEY`` (itsdangerous, salted with
the business's id so a token of one business is void at another) and bound to its booking, so
another site cannot make the owner's browser cancel anything (CSRF), and a page left open
overnight must be reloaded first. A cancel's outcome travels in Flask's flashed messages (the
session cookie, signed with ``SECRET_KEY``, scoped to ``/admin``), not in the redirect's URL.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta

import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from werkzeug.exceptions import HTTPException
from werkzeug.security import check_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from . import logins
from .agenda import (
    agenda,
    cancel_for_business,
    reminder_figures,
    today,
    undelivered,
    waiting_templates,
    why_not,
)
from .notify import told_text
from .services import get_services
from .tenants import Tenant

bp = Blueprint("admin", __name__, url_prefix="/admin")
log = logging.getLogger(__name__)
#: Flask-WTF's CSRF protection, for the owner's forms
csrf = CSRFProtect()

#: How long a rendered cancel button stays valid.
TOKEN_MAX_AGE = 12 * 3600
#: the app's login limiter, in ``app.extensions``
LIMITER = "tapbook-admin-logins"
REALM = 'Basic realm="tapbook admin", charset="UTF-8"'


def _secret(shop: Tenant) -> str:
    return shop.admin_password or shop.admin_password_hash or ""


def _shop() -> Tenant:
    shop: Tenant = g.admin_shop
    return shop


def shop_tried() -> str | None:
    """The business a login is for: the only one, or the user name (or the form's business id) when
    it is a business's id."""
    directory = get_services().directory
    if directory.only is not None:
        return directory.only.id
    auth = request.authorization
    name = (auth.username or "").strip().lower() if auth is not None and auth.type == "basic" else ""
    if not name and request.method == "POST":
        name = str(request.form.get("business", "")).strip().lower()
    return name if directory.get(name) is not None else None


def owner_login(user: str, given: str) -> Tenant | None:
    """The business whose owner logged in as ``user`` with ``given``, or None."""
    directory = get_services().directory
    shop = directory.only or directory.get(user.strip().lower())
    if shop is None or not given:
        return None
    if shop.admin_password is not None:
        return shop if hmac.compare_digest(given.encode(), shop.admin_password.encode()) else None
    if shop.admin_password_hash is not None:
        return shop if check_password_hash(shop.admin_password_hash, given) else None
    return None


class _ClockSigner(TimestampSigner):
    """Timestamps from the app's clock, so a test can age a page."""

    def get_timestamp(self) -> int:
        return int(get_services().clock().timestamp())


def _signer(secret_key: str | bytes, business_id: str) -> URLSafeTimedSerializer:
    """Cancel tokens of one business, signed with ``SECRET_KEY`` (never a password)."""
    return URLSafeTimedSerializer(secret_key, salt=f"tapbook-admin-cancel:{business_id}", signer=_ClockSigner)


def _cancels() -> URLSafeTimedSerializer:
    return _signer(current_app.secret_key or "", _shop().id)


def _plain(status: int, text: str, **headers: str) -> Response:
    return Response(text + "\n", status, mimetype="text/plain", headers=headers)


def _page_is_on() -> bool:
    return any(_secret(shop) for shop in get_services().directory)


#: the views anyone may reach (the login form itself)
OPEN_VIEWS = ("admin.login",)
#: how long a login lasts
SESSION_HOURS = 12


def session_shop() -> Tenant | None:
    """The business whose owner logged in with the form, this session (None: nobody)."""
    owner = session.get("owner")
    shop = get_services().directory.get(str(owner)) if owner else None
    if shop is None or not _secret(shop) or session.get("key") != _fingerprint(shop):
        return None
    return shop


def _fingerprint(shop: Tenant) -> str:
    """Changes when the business's password does: a password change logs everyone out."""
    key = current_app.secret_key or ""
    key_bytes = key.encode() if isinstance(key, str) else key
    return hmac.new(key_bytes, _secret(shop).encode(), "sha256").hexdigest()[:16]


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    if not _page_is_on():
        return _plain(404, "The admin page is off: set ADMIN_PASSWORD to turn it on.")
    if request.method == "POST" and request.endpoint != "admin.cancel":  # cancel carries its own signed token
        csrf.protect()  # every form of the owner's pages: a cross-site POST is refused (400)
    if request.endpoint in OPEN_VIEWS:
        return None
    shop = session_shop()
    auth = request.authorization
    basic = auth is not None and auth.type == "basic"
    if shop is None and basic and auth:  # scripts and older bookmarks: HTTP basic, as before the form
        shop = owner_login(auth.username or "", auth.password or "")
        if shop is None:  # credentials that did not match: a guess
            logins.failed(shop_tried())
    if shop is None:
        if not basic and request.method == "GET" and request.accept_mimetypes.accept_html:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")), 303)
        who = "the admin password" if get_services().directory.only else "your business id and its admin password"
        return _plain(401, f"Log in with {who}.", **{"WWW-Authenticate": REALM})
    g.admin_shop = shop
    return None


class LoginForm(FlaskForm):
    """The owner's login: which business (when there are several) and its password."""

    business = StringField("Business id")
    password = PasswordField("Password", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    directory = get_services().directory
    several = directory.only is None
    problem = ""
    if form.validate_on_submit():
        shop = owner_login(form.business.data or "", form.password.data or "")
        if shop is not None:
            session.clear()
            session.permanent = True
            session["owner"], session["key"] = shop.id, _fingerprint(shop)
            log.info("admin: %s: owner logged in from %s", shop.id, logins.masked_address())
            target = request.args.get("next", "")
            safe = target.startswith("/admin") and not target.startswith("//")
            return redirect(target if safe else url_for("admin.diary"), 303)
        logins.failed(shop_tried())
        problem = "That password is not right." if not several else "That business id and password do not match."
    elif request.method == "POST":
        problem = "Enter the password."
    status = 401 if problem else 200
    return render_template("admin/login.html", form=form, several=several, problem=problem), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("admin.login"), 303)


@bp.after_request
def private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("")
def bookings() -> str:
    services, shop = get_services(), _shop()
    days = agenda(services, shop, today(services, shop), shop.business.horizon_days + 1)
    signer = _cancels()
    return render_template(
        "admin/bookings.html",
        business=shop.business.name,
        days=days,
        undelivered=undelivered(services, shop),
        waiting=waiting_templates(services, shop),
        reminders=reminder_figures(services, shop) if shop.channel.out_of_band and shop.business.reminders else None,
        token=lambda ref: signer.dumps(ref),
        notices=get_flashed_messages(),
    )


@bp.post("/cancel")
def cancel() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    ref = request.form.get("ref", "")
    try:
        signed = _cancels().loads(request.form.get("token", ""), max_age=TOKEN_MAX_AGE)
    except BadSignature:
        signed = None
    if not ref or signed != ref:
        return _plain(400, "This page is out of date or the form was not sent from it: reload it and try again.")
    result, booking, reached = cancel_for_business(services, shop, ref)
    if result != "ok" or booking is None:
        log.info("admin: %s: cancel of %s refused (%s)", shop.id, ref, result)
        flash(f"Booking {ref} was not cancelled: {why_not(result)}.")
    else:
        log.info("admin: %s: cancelled %s (customer told: %s)", shop.id, ref, reached)
        flash(f"Booking {ref} is cancelled. {told_text(reached)}")
    return redirect(url_for("admin.bookings"), 303)


@bp.errorhandler(RateLimitExceeded)
def too_many_failed_logins(exc: RateLimitExceeded) -> Response:
    limiter: Limiter = current_app.extensions[LIMITER]
    wait = logins.retry_after(limiter)
    return _plain(429, f"Too many failed logins: try again in {wait} seconds.", **{"Retry-After": str(wait)})


@bp.errorhandler(CSRFError)
def cross_site(exc: CSRFError) -> Response:
    log.warning("admin: a form without a valid CSRF token was refused: %s", exc.description)
    return _plain(400, "This form is out of date or was not sent from this site: reload the page and try again.")


@bp.errorhandler(redis.RedisError)
def redis_down(exc: redis.RedisError) -> Response:
    log.warning("admin: redis error: %s: %s", type(exc).__name__, exc)
    return _plain(503, "The booking store cannot be reached right now. Please try again in a minute.")


@bp.errorhandler(HTTPException)
def refuse(exc: HTTPException) -> Response:
    return _plain(exc.code or 400, exc.description or exc.name)


class _SessionCookie(SecureCookieSessionInterface):
    """Flask's signed session cookie (here it only carries flashed notices), sent to /admin alone, and
    ``Secure`` whenever the request came over HTTPS (behind a proxy: with ``TRUSTED_PROXY_HOPS``)."""

    def get_cookie_path(self, app: Flask) -> str:
        return request.script_root + "/"  # /admin, and /try for the logged-in owner

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def init_app(app: Flask) -> None:
    services = get_services(app)
    app.secret_key = services.settings.secret_key
    if not app.secret_key:  # only on the embedded store: check_consistency requires one elsewhere
        app.secret_key = secrets.token_urlsafe(32)
        log.info(
            "SECRET_KEY is not set: /admin's tokens and cookie are signed with a random key until this process stops"
        )
    app.config.update(SESSION_COOKIE_NAME="tapbook_admin", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.config.update(
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        WTF_CSRF_CHECK_DEFAULT=False,  # checked for the owner's pages only (the webhook is Twilio's)
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
        WTF_CSRF_SSL_STRICT=False,  # the Referer is not sent (Referrer-Policy: no-referrer); the token suffices
    )
    app.session_interface = _SessionCookie()
    csrf.init_app(app)
    from . import desk_views  # noqa: F401  (its routes join this blueprint)

    app.register_blueprint(bp)
    app.extensions[LIMITER] = logins.limit_failed_logins(
        app,
        bp,
        client=services.redis,
        key_prefix=services.settings.redis_key_prefix,
        business=shop_tried,
        applies=_page_is_on,
    )
    directory = services.directory
    off = [shop.id for shop in directory if not _secret(shop)]
    if len(off) == len(directory):
        log.info("admin page is off: set ADMIN_PASSWORD to turn on /admin")
    elif off:
        log.info("no /admin password for: %s (ADMIN_PASSWORD_<ID> or admin_password_hash)", ", ".join(off))
    if len(off) < len(directory) and services.embedded:
        log.warning("failed /admin logins are counted in the embedded store: per process, and forgotten at restart")

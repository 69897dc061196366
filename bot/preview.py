"""``/try``: the bot on a phone-shaped page, as WhatsApp shows it in button mode, before going live.

Each message typed or tapped on the page is posted to the real webhook as Twilio would post it,
signed with the deployment's auth token, from a preview phone (:mod:`bot.phones`: ``+999…``,
nothing it causes reaches Twilio or anyone's WhatsApp). The replies are read from the preview
phone's stream and shown as WhatsApp shows them: quick-reply buttons under the message, a list's
button opening its sheet of rows with their descriptions, plain text.

Who may use it: anyone while the bot runs on the embedded store (a developer's machine: ``flask
chat`` prints the URL); on a real deployment, only a business's owner, logged in on the owner's
desk (or with its password over HTTP basic), for that business. The page's requests carry a
token signed with ``SECRET_KEY`` naming the business and the preview phone, so another site
cannot drive it (CSRF). A preview
booking is a real booking of the business (its diary shows the ``+999…`` phone); the owner
cancels it like any other.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast
from xml.etree import ElementTree

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from twilio.request_validator import RequestValidator

from . import logins
from .admin import owner_login, private, session_shop, shop_tried
from .channels.content import TEMPLATES, button_keys, item_keys
from .cli import twilio_form
from .phones import new_preview_phone
from .services import Services, get_services
from .tenants import Tenant

bp = Blueprint("preview", __name__, url_prefix="/try")
log = logging.getLogger(__name__)

#: how long a page's token works (a page left open overnight starts again)
TOKEN_MAX_AGE = 12 * 3600
#: the longest text the page posts (WhatsApp's own limit is far above what a customer types)
MAX_TEXT = 1000
_TEMPLATES = {template.friendly_name: template for template in TEMPLATES}
#: the number a preview writes to when the business lists none (Twilio's WhatsApp sandbox)
SANDBOX = "whatsapp:+14155238886"


def _tokens() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="tapbook-try")


def _allowed(services: Services) -> list[Tenant]:
    """The businesses this visitor may preview: all on the embedded store, else the one whose
    owner logged in (HTTP basic, as on /admin); none otherwise."""
    if services.embedded:
        return list(services.directory)
    logged_in = session_shop()  # the owner's desk login
    if logged_in is not None:
        return [logged_in]
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return []
    shop = owner_login(auth.username or "", auth.password or "")
    if shop is None:
        logins.failed(shop_tried())  # counted like a failed /admin login
    return [shop] if shop is not None else []


def _refuse() -> Response:
    text = "Log in with your business id and its admin password (as on /admin) to try the bot.\n"
    return Response(text, 401, mimetype="text/plain", headers={"WWW-Authenticate": 'Basic realm="tapbook admin"'})


bp.after_request(private)  # as the owner's pages: not cached, not framed, no Referer


@bp.get("")
def page() -> Response | str:
    services = get_services()
    shops = _allowed(services)
    if not shops:
        return _refuse()
    phone = new_preview_phone()
    businesses = [
        {
            "id": shop.id,
            "name": shop.business.name,
            "languages": [{"code": code, "name": services.catalogs.get(code).language_name} for code in shop.languages],
            "token": _tokens().dumps({"b": shop.id, "p": phone}),
        }
        for shop in shops
    ]
    return render_template("try.html", businesses=businesses, phone=phone)


@bp.post("/send")
def send() -> Response | tuple[Response, int]:
    """Post one message of the preview phone to the webhook; the replies as the page shows them."""
    services = get_services()
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify(error="send JSON"), 400
    try:
        signed = _tokens().loads(str(data.get("token", "")), max_age=TOKEN_MAX_AGE)
    except BadSignature:
        return jsonify(error="this page is out of date: reload it"), 403
    shop = services.directory.get(str(signed.get("b", "")))
    if shop is None or shop not in _allowed(services):
        return jsonify(error="log in again"), 403
    phone = str(signed["p"])
    text = str(data.get("text", ""))[:MAX_TEXT]
    payload = str(data.get("payload", ""))[:200]
    kind = str(data.get("kind", ""))
    language = str(data.get("lang", ""))
    extra: dict[str, str] = {}
    if payload and kind == "list":
        extra = {"ListId": payload, "ListTitle": text, "MessageType": "interactive"}
    elif payload:
        extra = {"ButtonPayload": payload, "ButtonText": text, "MessageType": "button"}
    status, body = post_as_twilio(services, shop, phone, text, language if language in shop.languages else "", extra)
    messages = [{"kind": "text", "body": line} for line in twiml_texts(body)] if status == 200 else []
    if status != 200:
        messages.append({"kind": "text", "body": f"[the webhook answered {status}]"})
    messages += [shown(message) for message in take_replies(services, shop, phone)]
    return jsonify(messages=messages)


def post_as_twilio(
    services: Services, shop: Tenant, phone: str, text: str, language: str, extra: dict[str, str]
) -> tuple[int, bytes]:
    """Post ``text`` from ``phone`` to ``shop``'s number through the real webhook, as Twilio does
    (form fields, ``X-Twilio-Signature`` over the URL Twilio would call); the status and body."""
    numbers = shop.business.numbers
    to = f"whatsapp:{numbers[0]}" if numbers else SANDBOX
    account = services.settings.twilio_account_sid or "AC" + "0" * 32
    form = twilio_form(phone, text, name="Preview", To=to, AccountSid=account, **extra)
    hosts = services.settings.webhook_hosts
    base = services.settings.public_base_url or (f"https://{hosts[0]}" if hosts else request.host_url.rstrip("/"))
    path = "/webhook" + (f"?lang={language}" if language else "")
    validator = RequestValidator(services.settings.twilio_auth_token or "signature-checks-are-off")
    response = current_app.test_client().post(
        path,
        base_url=base,
        data=form,
        headers={"X-Twilio-Signature": validator.compute_signature(base + path, form)},
    )
    return response.status_code, response.data


def twiml_texts(body: bytes) -> list[str]:
    """The text of each ``<Message>`` of a TwiML answer (the polite "trouble" answers come so)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return []
    return ["".join(message.itertext()) for message in root.iter("Message")]


def take_replies(services: Services, shop: Tenant, phone: str) -> list[dict[str, Any]]:
    """The preview phone's unread replies, oldest first, removed as they are read (one round trip)."""
    key = shop.keys.preview(phone)
    pipe = services.redis.pipeline(transaction=True)
    pipe.xrange(key)
    pipe.delete(key)
    entries = cast(list[tuple[str, dict[str, str]]], pipe.execute()[0])
    replies = []
    for _, fields in entries:
        try:
            replies.append(json.loads(fields.get("m", "")))
        except ValueError:
            continue
    return replies


def shown(message: dict[str, Any]) -> dict[str, Any]:
    """An outbox message as WhatsApp shows it: ``text``, ``buttons`` (quick replies) or ``list``
    (a button opening a sheet of rows, each a title and a description)."""
    if "body" in message:
        return {"kind": "text", "body": str(message["body"])}
    template = _TEMPLATES.get(str(message.get("template", "")))
    variables = message.get("variables") or {}
    if template is None:
        return {"kind": "text", "body": str(variables.get("1", ""))}
    if template.content_type == "twilio/quick-reply":
        options = []
        for n in range(1, template.options + 1):
            title, ident = button_keys(n)
            options.append({"title": variables[title], "id": variables[ident]})
        return {"kind": "buttons", "body": variables["1"], "options": options}
    rows = []
    for n in range(1, template.options + 1):
        title, ident, description = item_keys(n)
        rows.append({"title": variables[title], "id": variables[ident], "description": variables[description]})
    return {"kind": "list", "body": variables["1"], "button": variables["2"], "options": rows}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

"""``flask --app wsgi chat``: talk to the bot from a terminal, through the real webhook."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import uuid
from typing import cast
from xml.etree import ElementTree

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from . import commands
from .channels.content import preview
from .commands.common import business_option, pick_business
from .services import get_services
from .tenants import Tenant

BUSINESS_NUMBER = "whatsapp:+14155238886"  # Twilio's WhatsApp sandbox number


def twilio_form(phone: str, body: str, *, name: str = "", **extra: str) -> dict[str, str]:
    """The fields Twilio posts for an inbound WhatsApp message."""
    return {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": f"whatsapp:{phone}",
        "To": BUSINESS_NUMBER,
        "Body": body,
        "ProfileName": name,
        "WaId": phone.lstrip("+"),
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        "MessageType": "text",
        **extra,
    }


def reply_texts(twiml: bytes) -> list[str]:
    """The text of each <Message> in a TwiML reply."""
    root = ElementTree.fromstring(twiml)
    return ["".join(message.itertext()) for message in root.iter("Message")]


@click.command("chat")
@click.option("--phone", default="+15550001234", show_default=True, help="Your pretend WhatsApp number.")
@click.option("--name", default="Alex", show_default=True, help="Your pretend WhatsApp profile name.")
@click.option("--lang", default=None, help="Add ?lang=XX to the webhook URL, as a business number may.")
@click.option("--verbose", is_flag=True, help="Also show the webhook's log line for each message.")
@click.option(
    "--web/--no-web",
    default=None,
    help="Also serve the browser preview (/try) on 127.0.0.1 while chatting (embedded store only; "
    "default: when typing at a terminal).",
)
@click.option("--port", default=5000, show_default=True, help="The browser preview's port (another if taken).")
@business_option
@with_appcontext
def chat(
    phone: str, name: str, lang: str | None, verbose: bool, web: bool | None, port: int, business_id: str | None
) -> None:
    """Chat with the bot: each line is sent as a signed Twilio webhook; numbers pick options."""
    shop = pick_business(business_id)
    webhook_log = logging.getLogger("bot.webhook")
    level = webhook_log.level
    if not verbose:
        webhook_log.setLevel(logging.WARNING)
    if (sys.stdin.isatty() if web is None else web) and get_services().embedded:
        url = serve_preview(current_app._get_current_object(), port)  # type: ignore[attr-defined]
        click.echo(f"See it as WhatsApp shows it, in a browser: {url}")
    try:
        _converse(shop, phone, name, lang)
    finally:
        webhook_log.setLevel(level)


def serve_preview(app: Flask, port: int) -> str:
    """Serve ``app`` on 127.0.0.1 in a background thread (the embedded store lives in this process,
    so the browser preview must be served from it too); the preview's URL."""
    with socket.socket() as probe:  # werkzeug exits the process on a port in use: ask first
        taken = probe.connect_ex(("127.0.0.1", port)) == 0
    server = make_server("127.0.0.1", 0 if taken else port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="try-page", daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/try"


def _converse(shop: Tenant, phone: str, name: str, lang: str | None) -> None:
    services = get_services()
    to = f"whatsapp:{shop.business.numbers[0]}" if shop.business.numbers else BUSINESS_NUMBER
    hosts = services.settings.webhook_hosts
    base = services.settings.public_base_url or (f"https://{hosts[0]}" if hosts else "http://localhost")
    path = "/webhook" + (f"?lang={lang}" if lang else "")
    validator = RequestValidator(services.settings.twilio_auth_token or "signature-checks-are-off")
    client = current_app.test_client()
    click.echo(f"Chatting with {shop.business.name} as {name} ({phone}). Type a message; Ctrl-D quits.")
    click.echo("Try: hi")
    if shop.channel.out_of_band:
        click.echo("Content API mode: replies are read from your outbox (what the worker would send).")
    last_entry = "0-0"
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            click.echo()
            break
        if not text:
            continue
        form = twilio_form(phone, text, name=name, To=to)
        response = client.post(
            path,
            base_url=base,
            data=form,
            headers={"X-Twilio-Signature": validator.compute_signature(base + path, form)},
        )
        if response.status_code != 200:
            click.echo(f"[{response.status_code}] {response.get_data(as_text=True).strip()}")
            continue
        messages = reply_texts(response.data)
        if shop.channel.out_of_band:
            entries = cast(
                list[tuple[str, dict[str, str]]], services.redis.xrange(shop.keys.outbox(phone), min=f"({last_entry}")
            )
            last_entry = entries[-1][0] if entries else last_entry
            messages += [preview(json.loads(fields["m"])) for _, fields in entries]
        for message in messages:
            click.echo("bot> " + message.replace("\n", "\n     ") + "\n")


def init_app(app: Flask) -> None:
    app.cli.add_command(chat)
    commands.init_app(app)

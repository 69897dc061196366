"""A customer in Content API mode: taps go to the webhook, replies come back through Twilio.

The webhook answers an empty ``<Response/>``; the test then runs the outbox worker once,
which sends the reply through the real ``twilio`` client into :class:`FakeTwilio`. What the
customer sees is the accepted message rendered as WhatsApp would: the template Twilio
holds, with the content variables filled in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from bot import get_services
from bot.channels import proactive
from bot.channels.cli import sync_templates
from bot.channels.twilio import TemplateSids
from bot.outbox.worker import Worker, build_worker

from .conftest import TOKEN, app_config
from .twilio_fake import ACCOUNT_SID, AUTH_TOKEN, SENDER, FakeTwilio
from .whatsapp import WhatsApp

assert AUTH_TOKEN == TOKEN  # one account: signs the webhooks and authenticates the API calls

PUBLIC = "https://bot.example.com"


def content_config(fake: FakeTwilio, **overrides: Any) -> dict[str, Any]:
    settings = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM": SENDER, "PUBLIC_BASE_URL": PUBLIC}
    return app_config(TWILIO_HTTP_CLIENT=fake, **{**settings, **overrides})


def synced_worker(app: Flask, **kwargs: Any) -> Worker:
    """The app's outbox worker, after ``templates sync`` created the templates on the fake account."""
    services = get_services(app)
    templates = TemplateSids(services.redis, services.shared_keys.templates)
    sync_templates(services.twilio, templates, proactive.all_templates(services.catalogs))
    kwargs.setdefault("pool", 1)  # one send at a time: a test's planned answers go in order
    with app.app_context():
        return build_worker(**kwargs)


def _fill(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{\{(\w+)\}\}", lambda m: variables[m.group(1)], value)
    if isinstance(value, list):
        return [_fill(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, variables) for k, v in value.items()}
    return value


@dataclass
class Shown:
    """One WhatsApp message as the customer sees it."""

    kind: str  # text, twilio/quick-reply, twilio/list-picker
    text: str
    options: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    button: str = ""
    variables: dict[str, str] = field(default_factory=dict)

    def number(self, title: str) -> str:
        return str(self.options.index(title) + 1)


def shown(fake: FakeTwilio, form: dict[str, str]) -> Shown:
    if "Body" in form:
        return Shown("text", form["Body"])
    variables = json.loads(form["ContentVariables"])
    ((kind, types),) = _fill(fake.contents[form["ContentSid"]]["types"], variables).items()
    if kind == "twilio/text":
        return Shown(kind, types["body"], variables=variables)
    if kind == "twilio/quick-reply":
        actions = types["actions"]
        return Shown(
            kind, types["body"], [a["title"] for a in actions], [a["id"] for a in actions], variables=variables
        )
    items = types["items"]
    return Shown(
        kind,
        types["body"],
        [i["item"] for i in items],
        [i["id"] for i in items],
        [i["description"] for i in items],
        types["button"],
        variables,
    )


class ContentCustomer:
    """One phone in Content API mode. ``pick`` taps a button or list item (or types, with ``typed``)."""

    def __init__(
        self, app: Flask, fake: FakeTwilio, worker: Worker, phone: str = "+34600111222", *, typed: bool = False
    ) -> None:
        self.wa = WhatsApp(app.test_client(), TOKEN, phone=phone)
        self.fake = fake
        self.worker = worker
        self.typed = typed
        self.seen: list[Shown] = []

    def _post(self, form: dict[str, str]) -> Shown:
        answer = self.wa.post(form)
        assert answer.status == 200 and answer.text == "" and "<Response />" in answer.body, answer.body
        before = len(self.fake.accepted)
        self.worker.run_once()
        new = [m for m in self.fake.accepted[before:] if m["To"] == f"whatsapp:{self.wa.phone}"]
        assert len(new) == 1, new
        self.seen.append(shown(self.fake, new[0]))
        return self.seen[-1]

    def send(self, text: str) -> Shown:
        return self._post(self.wa.form(text))

    def pick(self, message: Shown, title: str) -> Shown:
        if self.typed:
            return self.send(message.number(title))
        ident = message.ids[message.options.index(title)]
        if message.kind == "twilio/list-picker":
            return self._post(self.wa.form(title, ListId=ident, ListTitle=title, MessageType="interactive"))
        return self._post(self.wa.form(title, ButtonPayload=ident, ButtonText=title, MessageType="button"))

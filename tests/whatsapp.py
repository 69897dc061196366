"""A test customer: posts Twilio-shaped, correctly signed forms to the app's webhook."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

from bot.cli import reply_texts, twilio_form

BASE_URL = "https://bot.example.com"


@dataclass
class Answer:
    """What the customer sees: the status, the message text, and the numbered options."""

    status: int
    body: str
    text: str = ""
    options: list[str] = field(default_factory=list)

    def number(self, title: str) -> str:
        """What to type to pick the option titled ``title``."""
        return str(self.options.index(title) + 1)

    @classmethod
    def parse(cls, status: int, body: bytes) -> Answer:
        raw = body.decode()
        if status != 200:
            return cls(status, raw)
        texts = reply_texts(body)
        assert len(texts) <= 1, raw
        text = texts[0] if texts else ""  # an empty <Response/>: the reply goes out through the API
        options = re.findall(r"^\d+\. (.+)$", text, flags=re.MULTILINE)
        return cls(status, raw, text, options)


class WhatsApp:
    """One phone talking to the bot. ``send`` types, ``tap`` presses a button."""

    def __init__(self, client: FlaskClient, token: str, phone: str = "+34600111222", name: str = "Ana") -> None:
        self.client = client
        self.validator = RequestValidator(token)
        self.phone = phone
        self.name = name

    def form(self, body: str = "", **extra: str) -> dict[str, str]:
        return twilio_form(self.phone, body, name=self.name, **extra)

    def post(
        self,
        form: dict[str, str],
        *,
        path: str = "/webhook",
        signed_path: str | None = None,
        signature: str | None = None,
        base_url: str = BASE_URL,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if signature is None:
            signature = self.validator.compute_signature(base_url + (signed_path or path), form)
        response = self.client.post(
            path, base_url=base_url, data=form, headers={"X-Twilio-Signature": signature, **(headers or {})}
        )
        return Answer.parse(response.status_code, response.data)

    def send(self, text: str, *, path: str = "/webhook") -> Answer:
        return self.post(self.form(text), path=path)

    def choose(self, answer: Answer, title: str) -> Answer:
        """Type the number of the option titled ``title`` in ``answer``."""
        return self.send(answer.number(title))

    def tap(self, button_id: str, title: str = "", *, path: str = "/webhook") -> Answer:
        form = self.form(title, ButtonPayload=button_id, ButtonText=title, MessageType="button")
        return self.post(form, path=path)

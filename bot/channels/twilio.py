"""The Twilio REST client, built once, and sending one outbox message with it.

Every request is built by the real ``twilio`` library; tests inject an
``twilio.http.HttpClient`` (``TWILIO_HTTP_CLIENT`` in ``test_config``) that answers like
Twilio. Twilio's own client does not retry; the worker decides what to retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import redis
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ..config import Settings
from .endpoint import EndpointHttpClient

#: seconds a Twilio API call may take before it counts as failed (and is retried)
HTTP_TIMEOUT = 10.0
#: Twilio error code: outside WhatsApp's 24-hour customer service window
OUTSIDE_WINDOW = 63016


class RetryLater(Exception):
    """Twilio could not take the message now (429, 5xx, timeout, no template yet).

    ``uncertain``: the request may have reached Twilio and been accepted (a read timeout,
    a connection lost after sending), so sending again at once could duplicate it.
    """

    def __init__(self, reason: str, *, uncertain: bool = False) -> None:
        super().__init__(reason)
        self.uncertain = uncertain


class Undeliverable(Exception):
    """WhatsApp will not take this message (outside the 24-hour window)."""


class Refused(Exception):
    """Twilio refused the message for good (4xx other than 429)."""


def build_client(settings: Settings, http_client: HttpClient | None = None) -> Client | None:
    """A Twilio client when an account SID and auth token are set, else None."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        http_client=http_client
        or (
            EndpointHttpClient(settings.twilio_api_url, timeout=HTTP_TIMEOUT)
            if settings.twilio_api_url
            else TwilioHttpClient(timeout=HTTP_TIMEOUT)
        ),
    )


class TemplateSids:
    """Friendly name → content SID, as ``templates sync`` recorded them in Redis (cached)."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key
        self._cache: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        if name not in self._cache:
            sid = cast(str | None, self.client.hget(self.key, name))
            if sid is None:
                return None
            self._cache[name] = sid
        return self._cache[name]

    def all(self) -> dict[str, str]:
        return dict(sorted(cast(dict[str, str], self.client.hgetall(self.key)).items()))

    def record(self, sids: dict[str, str]) -> None:
        if sids:
            self.client.hset(self.key, items=[part for pair in sids.items() for part in pair])


def sender_fields(sender: str) -> dict[str, str]:
    """``whatsapp:+E164`` → ``from_``; a Messaging Service SID (``MG…``) → ``messaging_service_sid``."""
    return {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}


class Sender:
    """Sends one outbox message to one phone; raises what the worker needs to decide.

    Each message names its sender (``from``, written by the webhook: the business's number or
    Messaging Service); ``default`` is for entries queued without one."""

    def __init__(self, client: Client, templates: TemplateSids, *, default: str = "") -> None:
        self.client = client
        self.templates = templates
        self.default = default

    def send(self, phone: str, message: dict[str, Any], status_callback: str | None) -> str:
        """The MessageSid Twilio accepted the message as."""
        sender = message.get("from") or self.default
        if not sender:
            raise Refused("no sender: the business has no number, sender or TWILIO_FROM")
        fields: dict[str, Any] = {"to": f"whatsapp:{phone}", **sender_fields(str(sender))}
        if status_callback:
            fields["status_callback"] = status_callback
        if "template" in message:
            sid = self.templates.get(message["template"])
            if sid is None:
                raise RetryLater(f"template {message['template']} is not synced (flask templates sync)")
            fields["content_sid"] = sid
            fields["content_variables"] = json.dumps(message["variables"], ensure_ascii=False)
        else:
            fields["body"] = message["body"]
        return call(lambda: self.client.messages.create(**fields).sid)


def call(request: Callable[[], str]) -> str:
    """Run one Twilio request, mapping its failures to retry, undeliverable or refused."""
    try:
        return request()
    except TwilioRestException as exc:
        if exc.code == OUTSIDE_WINDOW:
            raise Undeliverable(f"outside WhatsApp's 24-hour window (Twilio {exc.code})") from exc
        if exc.status == 429 or exc.status >= 500:
            raise RetryLater(f"Twilio answered {exc.status} ({exc.code})") from exc
        raise Refused(f"Twilio refused it: {exc.status} {exc.code} {exc.msg}") from exc
    except requests.ConnectTimeout as exc:  # never reached Twilio
        raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:  # read timeouts, reset connections: outcome unknown
        raise RetryLater(f"{type(exc).__name__}: {exc}", uncertain=True) from exc

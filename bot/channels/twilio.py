"""The Twilio REST client, built once, and sending one outbox message with it.

Every request is built by the real ``twilio`` library; tests inject an
``twilio.http.HttpClient`` (``TWILIO_HTTP_CLIENT`` in ``test_config``) that answers like
Twilio. Twilio's own client does not retry; the worker decides what to retry.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from ..config import Settings
from .endpoint import EndpointHttpClient

#: seconds a Twilio API call may take before it counts as failed (and is retried)
HTTP_TIMEOUT = 10.0
#: Twilio error code: outside WhatsApp's 24-hour customer service window
OUTSIDE_WINDOW = 63016
#: error codes that say "not now": too many requests (20429), WhatsApp's rate limit (63018), the
#: sender's queue is full (30001)
PASSING_CODES = frozenset({20429, 63018, 30001})
#: the longest ``Retry-After`` believed (seconds); a longer one is taken as the usual backoff
MAX_RETRY_AFTER = 3600.0
#: how many of a customer's newest messages a lookup reads
LOOKUP_LIMIT = 20


class RetryLater(Exception):
    """Twilio certainly did not take the message, and may later (429, a rate limit, no connection,
    no template yet). ``after``: the seconds Twilio asked us to wait (``Retry-After``), if it did."""

    def __init__(self, reason: str, *, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Uncertain(Exception):
    """The request may have reached Twilio and been accepted: a 5xx, a read timeout, a connection
    lost mid-request, an answer we cannot read. Sending again blind could send it twice; the
    worker settles it first (a status callback, or looking the message up at Twilio).

    ``answered``: Twilio answered (a 5xx, an unreadable answer), so it is done with the request;
    when it did not (a timeout, a lost connection), it may still be creating the message."""

    def __init__(self, reason: str, *, answered: bool) -> None:
        super().__init__(reason)
        self.answered = answered


class Undeliverable(Exception):
    """WhatsApp will not take this message (outside the 24-hour window)."""


class Refused(Exception):
    """Twilio refused the message for good (4xx other than the passing ones)."""


def build_client(settings: Settings, http_client: HttpClient | None = None) -> Client | None:
    """A Twilio client when an account SID and auth token are set, else None."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    if http_client is None:
        if settings.twilio_api_url:
            http_client = EndpointHttpClient(settings.twilio_api_url, timeout=HTTP_TIMEOUT)
        else:
            http_client = TwilioHttpClient(timeout=HTTP_TIMEOUT)
        settle_environment(http_client, settings.twilio_api_url or "https://api.twilio.com/")
    return Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client)


def settle_environment(http_client: TwilioHttpClient, url: str) -> None:
    """Read what ``requests`` takes from the environment (proxies, ``REQUESTS_CA_BUNDLE``) once, now.

    A session that trusts the environment reads it again on every request (``os.environ`` walked
    twice and the CA bundle path checked: about 0.7 ms of a worker's 5 ms per message); the
    settings are the same for every request to Twilio, so they are fixed on the session instead."""
    session = http_client.session
    if session is None:
        return
    found = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    if found["cert"]:
        session.cert = found["cert"]
    session.trust_env = False


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


@dataclass(frozen=True)
class Found:
    """A message Twilio holds, as the Messages list shows it."""

    sid: str
    sender: str  # ``whatsapp:+E164`` it went out from, or the Messaging Service SID
    body: str
    created: datetime


class Sender:
    """Sends one outbox message to one phone; raises what the worker needs to decide.

    Each message names its sender (``from``, written by the webhook: the business's number or
    Messaging Service); ``default`` is for entries queued without one. Every thread gets a client
    of its own from ``client_factory`` (a ``requests`` session is not for sharing, and the answer's
    headers, ``Retry-After`` among them, are read from the client's last response)."""

    def __init__(self, client_factory: Callable[[], Client], templates: TemplateSids, *, default: str = "") -> None:
        self.client_factory = client_factory
        self.templates = templates
        self.default = default
        self._local = threading.local()

    @property
    def client(self) -> Client:
        """This thread's client."""
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.client_factory()
        return client

    def warm(self) -> None:
        """Import what the first send would (the library loads its API modules on first use: about
        0.1 s), so no customer's reply waits for it."""
        _ = self.client.messages

    def sender_of(self, message: dict[str, Any]) -> str:
        return str(message.get("from") or self.default)

    def send(self, phone: str, message: dict[str, Any], status_callback: str | None) -> str:
        """The MessageSid Twilio accepted the message as."""
        sender = self.sender_of(message)
        if not sender:
            raise Refused("no sender: the business has no number, sender or TWILIO_FROM")
        fields: dict[str, Any] = {"to": f"whatsapp:{phone}", **sender_fields(sender)}
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
        client = self.client
        return call(lambda: _sid(client.messages.create(**fields)), client)

    def recent(self, phone: str, *, limit: int = LOOKUP_LIMIT) -> list[Found]:
        """The newest messages Twilio holds for ``phone``, newest first (one page of the Messages
        list). Filtered by recipient only: a message still queued has no date sent yet, and one
        sent through a Messaging Service lists the number it went out from."""
        client = self.client
        try:
            listed = client.messages.list(to=f"whatsapp:{phone}", limit=limit, page_size=limit)
        except Exception as exc:  # a lookup that fails settles nothing: the worker asks again later
            raise RetryLater(f"looking the message up at Twilio failed: {type(exc).__name__}: {exc}") from exc
        return [
            Found(
                sid=str(m.sid),
                sender=str(m.messaging_service_sid or m.from_ or ""),
                body=str(m.body or ""),
                created=m.date_created,
            )
            for m in listed
            if m.sid and isinstance(m.date_created, datetime)
        ]


def _sid(instance: Any) -> str:
    """The MessageSid of a create's answer; an answer without one is one we cannot read."""
    sid = getattr(instance, "sid", None)
    if not isinstance(sid, str) or not sid.startswith(("SM", "MM")):
        raise ValueError(f"Twilio's answer carries no MessageSid: {sid!r}")
    return sid


def retry_after(client: Client | None) -> float | None:
    """Seconds from the ``Retry-After`` header of the client's last answer (delta-seconds only)."""
    response = getattr(getattr(client, "http_client", None), "last_response", None)
    headers = getattr(response, "headers", None) or {}
    value = next((v for k, v in dict(headers).items() if str(k).lower() == "retry-after"), None)
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= MAX_RETRY_AFTER else None


def call(request: Callable[[], str], client: Client | None = None) -> str:
    """Run one Twilio message send, sorting every way it can end into: sent (the sid), certainly
    not sent (:class:`RetryLater`, :class:`Refused`, :class:`Undeliverable`) or :class:`Uncertain`.
    Anything unexpected is uncertain: it may have been accepted."""
    try:
        return request()
    except (TwilioRestException, TwilioServiceException) as exc:
        status, code = int(exc.status or 0), exc.code
        if code == OUTSIDE_WINDOW:
            raise Undeliverable(f"outside WhatsApp's 24-hour window (Twilio {code})") from exc
        if status == 429 or code in PASSING_CODES:
            raise RetryLater(f"Twilio answered {status} ({code})", after=retry_after(client)) from exc
        if status >= 500 or status < 400:
            raise Uncertain(f"Twilio answered {status} ({code})", answered=True) from exc
        detail = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
        raise Refused(f"Twilio refused it: {status} {code} {detail}") from exc
    except requests.ConnectTimeout as exc:  # never reached Twilio
        raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
    except requests.ConnectionError as exc:
        if isinstance(exc.args[0] if exc.args else None, NewConnectionError) or _refused(exc):
            raise RetryLater(f"{type(exc).__name__}: {exc}") from exc  # no connection: nothing was sent
        raise Uncertain(f"{type(exc).__name__}: {exc}", answered=False) from exc  # lost mid-request
    except requests.Timeout as exc:  # sent, and no answer in time
        raise Uncertain(f"{type(exc).__name__}: {exc}", answered=False) from exc
    except Exception as exc:  # an answer we cannot read (a truncated body, one without a sid)
        raise Uncertain(f"{type(exc).__name__}: {exc}", answered=True) from exc


def _refused(exc: requests.ConnectionError) -> bool:
    """Whether the connection was never made (urllib3 wraps NewConnectionError in MaxRetryError)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)

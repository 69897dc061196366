"""Twilio's REST edge for tests: the real ``twilio`` client builds every request, this answers.

:class:`FakeTwilio` is a ``twilio.http.HttpClient`` that records each request, answers the
few calls the bot makes (send a message, list and create content templates) the way Twilio
does, and treats anything else (another URL, wrong credentials, an unknown form field) as a
surprise that fails the test.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from twilio.http import HttpClient
from twilio.http.response import Response

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "test-auth-token"
SENDER = "whatsapp:+14155238886"
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CONTENT_URL = "https://content.twilio.com/v1/Content"
MESSAGE_FIELDS = {"To", "From", "MessagingServiceSid", "ContentSid", "ContentVariables", "Body", "StatusCallback"}

#: what a message send may be answered with
OK, TOO_MANY, SERVER_ERROR, OUTSIDE_WINDOW, BAD_NUMBER = "ok", 429, 500, 63016, 21211
#: no connection (never reached Twilio); no answer (Twilio did not take it); answer lost (Twilio took it)
CONNECT_TIMEOUT, TIMEOUT, ANSWER_LOST = "connect-timeout", "timeout", "answer-lost"
#: Twilio created the message and then answered 500; answered 201 with a body cut short;
#: WhatsApp's rate limit, answered at once (400, code 63018)
PROCESSED_THEN_500, UNREADABLE, RATE_LIMITED = "processed-then-500", "unreadable", 63018
#: 429 asking for 30 s (``Retry-After``); an RFC 9457 problem (twilio raises TwilioServiceException)
TOO_MANY_WAIT_30, PROBLEM_503 = "429-retry-after-30", "problem-503"


class Surprise(AssertionError):
    """A request the bot should never make."""


@dataclass
class Recorded:
    method: str
    url: str
    params: dict[str, Any]
    data: Any
    headers: dict[str, str]
    answer: Any = None


@dataclass
class FakeTwilio(HttpClient):
    requests: list[Recorded] = field(default_factory=list)
    #: planned answers for the next message sends (then OK)
    plan: deque[Any] = field(default_factory=deque)
    #: messages Twilio accepted, in order: the form fields and the SID
    accepted: list[dict[str, str]] = field(default_factory=list)
    #: content templates on the account: sid → definition
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)
    surprises: list[str] = field(default_factory=list)
    page_size: int = 4
    #: planned answers for the next Messages list requests (then the list)
    list_plan: deque[Any] = field(default_factory=deque)
    #: called with each message send's form before it is answered (may block, or raise)
    before_send: Callable[[dict[str, Any]], None] | None = None
    #: the clock Twilio stamps ``date_created`` with (the test's, so lookups agree with it)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _sids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        super().__init__(logger=None, is_async=False, timeout=None)  # type: ignore[arg-type]

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        record = Recorded(method, url, dict(params or {}), data, dict(headers or {}))
        self.requests.append(record)
        if auth != (ACCOUNT_SID, AUTH_TOKEN):
            return self._surprise(f"{method} {url} with credentials {auth!r}")
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        if method == "POST" and base == MESSAGES_URL:
            record.answer = self._message(dict(data or {}))
        elif method == "GET" and base == MESSAGES_URL:
            record.answer = self._message_page({**parse_qs(parts.query), **record.params})
        elif method == "GET" and base == CONTENT_URL:
            record.answer = self._content_page({**parse_qs(parts.query), **record.params})
        elif method == "POST" and base == CONTENT_URL:
            record.answer = self._create_content(data, record.headers)
        else:
            return self._surprise(f"{method} {url}")
        if isinstance(record.answer, BaseException):
            raise record.answer
        self.last_response = record.answer
        return record.answer

    # --- answers ---------------------------------------------------------------------
    def _surprise(self, what: str) -> Response:
        self.surprises.append(what)
        raise Surprise(what)

    def _message(self, form: dict[str, Any]) -> Response | BaseException:
        unknown = set(form) - MESSAGE_FIELDS
        if unknown or not form.get("To", "").startswith("whatsapp:+"):
            return self._surprise(f"message form {sorted(form)}")
        if ("From" in form) == ("MessagingServiceSid" in form):
            return self._surprise("exactly one of From and MessagingServiceSid")
        if ("ContentSid" in form) == ("Body" in form) or ("ContentSid" in form) != ("ContentVariables" in form):
            return self._surprise("either ContentSid with ContentVariables, or Body")
        if "ContentSid" in form:
            if form["ContentSid"] not in self.contents:
                return error_response(404, 20404, "The requested resource was not found")
            variables = form["ContentVariables"]
            if not isinstance(variables, str) or not isinstance(json.loads(variables), dict):
                return error_response(400, 21656, "The Content Variables parameter is invalid")
        if self.before_send is not None:
            self.before_send(form)
        answer = self.plan.popleft() if self.plan else OK
        if answer == CONNECT_TIMEOUT:
            return requests.exceptions.ConnectTimeout("HTTPSConnectionPool(host='api.twilio.com'): connect timeout")
        if answer == TIMEOUT:
            return requests.exceptions.ReadTimeout("HTTPSConnectionPool(host='api.twilio.com'): Read timed out.")
        if answer == TOO_MANY:
            return error_response(429, 20429, "Too Many Requests")
        if answer == TOO_MANY_WAIT_30:
            return error_response(429, 20429, "Too Many Requests", headers={"Retry-After": "30"})
        if answer == PROBLEM_503:
            problem = {"type": "https://www.twilio.com/docs/errors/20503", "title": "Service Unavailable"}
            return Response(
                503, json.dumps({**problem, "status": 503, "code": 20503}), {"Content-Type": "application/problem+json"}
            )
        if answer == SERVER_ERROR:
            return error_response(500, 20500, "Internal Server Error")
        if answer == OUTSIDE_WINDOW:
            return error_response(
                400, 63016, "Failed to send freeform message because you are outside the allowed window."
            )
        if answer == RATE_LIMITED:
            return error_response(400, 63018, "Rate limit exceeded for the WhatsApp sender")
        if answer == BAD_NUMBER:
            return error_response(400, 21211, "The 'To' number is not a valid phone number.")
        sid = "SM" + f"{next(self._sids):032x}"
        self.accepted.append({**form, "sid": sid, "created": format_datetime(self.clock(), usegmt=True)})
        if answer == ANSWER_LOST:
            return requests.exceptions.ReadTimeout("HTTPSConnectionPool(host='api.twilio.com'): Read timed out.")
        if answer == PROCESSED_THEN_500:
            return error_response(500, 20500, "Internal Server Error")
        if answer == UNREADABLE:
            return Response(201, '{"sid": "SM', headers={"Content-Type": "application/json"})
        return _json(201, self._resource(self.accepted[-1]))

    def _resource(self, message: dict[str, str]) -> dict[str, Any]:
        """A Message resource as Twilio shows it."""
        return {
            "sid": message["sid"],
            "account_sid": ACCOUNT_SID,
            "status": "queued",
            "to": message["To"],
            "from": message.get("From"),
            "messaging_service_sid": message.get("MessagingServiceSid"),
            "body": message.get("Body", ""),
            "date_created": message["created"],
        }

    def _message_page(self, query: dict[str, Any]) -> Response:
        """The Messages list, newest first, filtered by ``To`` (one page: the bot reads one)."""

        def one(name: str) -> str:
            value = query.get(name, "")
            return str(value[0] if isinstance(value, list) else value)

        if set(query) - {"To", "PageSize"}:
            return self._surprise(f"message list with {sorted(query)}")
        if self.list_plan and self.list_plan.popleft() == SERVER_ERROR:
            return error_response(500, 20500, "Internal Server Error")
        size = int(one("PageSize") or 50)
        listed = [self._resource(m) for m in reversed(self.accepted) if m["To"] == one("To")][:size]
        return _json(200, {"messages": listed, "page": 0, "page_size": size, "next_page_uri": None, "uri": "/list"})

    def _content_page(self, query: dict[str, Any]) -> Response:
        token = query.get("PageToken", ["0"])
        start = int(token[0] if isinstance(token, list) else token)
        items = list(self.contents.items())
        page = items[start : start + self.page_size]
        following = start + self.page_size
        next_url = f"{CONTENT_URL}?PageSize={self.page_size}&PageToken={following}" if following < len(items) else None
        return _json(
            200,
            {
                "contents": [{"sid": sid, "account_sid": ACCOUNT_SID, **body} for sid, body in page],
                "meta": {"key": "contents", "page_size": self.page_size, "next_page_url": next_url},
            },
        )

    def _create_content(self, body: Any, headers: dict[str, str]) -> Response:
        if headers.get("Content-Type") != "application/json" or not isinstance(body, dict):
            return self._surprise(f"content create with {headers.get('Content-Type')}")
        types = body.get("types", {})
        if set(body) - {"friendly_name", "language", "variables", "types"} or len(types) != 1:
            return self._surprise(f"content definition {sorted(body)} {sorted(types)}")
        if not set(types) <= {"twilio/quick-reply", "twilio/list-picker", "twilio/text"}:
            return self._surprise(f"content type {sorted(types)}")
        sid = "HX" + f"{next(self._sids):032x}"
        self.contents[sid] = body
        return _json(201, {"sid": sid, "account_sid": ACCOUNT_SID, **body})

    # --- for assertions --------------------------------------------------------------
    def sends(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.url == MESSAGES_URL]

    def lookups(self) -> list[Recorded]:
        """Messages list requests (the worker looking an uncertain send up)."""
        return [r for r in self.requests if r.method == "GET" and r.url.startswith(MESSAGES_URL)]


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(status, json.dumps(payload), headers={"Content-Type": "application/json"})


def error_response(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    more = f"https://www.twilio.com/docs/errors/{code}"
    answer = _json(status, {"code": code, "message": message, "more_info": more, "status": status})
    answer.headers.update(headers or {})
    return answer

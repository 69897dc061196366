"""Twilio's REST edge for tests: the real ``twilio`` client builds every request, this answers.

:class:`FakeTwilio` is a ``twilio.http.HttpClient`` that records each request, answers the
few calls the bot makes (send a message, look a customer's messages up, list and create
content templates, submit one for WhatsApp's approval and read that approval; and for ``flask
doctor``: fetch the account, look a phone number up, fetch a Messaging Service and list its
numbers) the way Twilio does, and treats anything else (another URL, wrong credentials unless a
test says Twilio should refuse them, an unknown form field) as a surprise that fails the test.
The forms it takes and the JSON it answers come from :mod:`tests.twilio_rest`, shared with the
HTTP stand-in.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from twilio.http import HttpClient
from twilio.http.response import Response

from . import twilio_rest as rest
from .twilio_rest import ACCOUNT_SID, AUTH_TOKEN, CONTENT_URL, MESSAGES_URL, SENDER, Surprise

CONTENT_HOST = "https://content.twilio.com"

__all__ = ["ACCOUNT_SID", "AUTH_TOKEN", "CONTENT_URL", "MESSAGES_URL", "SENDER", "FakeTwilio", "Surprise"]

#: what a message send may be answered with
OK, TOO_MANY, SERVER_ERROR, OUTSIDE_WINDOW, BAD_NUMBER = "ok", 429, 500, 63016, 21211
#: no connection (never reached Twilio); no answer (Twilio did not take it); answer lost (Twilio took it)
CONNECT_TIMEOUT, TIMEOUT, ANSWER_LOST = "connect-timeout", "timeout", "answer-lost"
#: Twilio created the message and then answered 500; answered 201 with a body cut short;
#: WhatsApp's rate limit, answered at once (400, code 63018)
PROCESSED_THEN_500, UNREADABLE, RATE_LIMITED = "processed-then-500", "unreadable", 63018
#: 429 asking for 30 s (``Retry-After``); an RFC 9457 problem (twilio raises TwilioServiceException)
TOO_MANY_WAIT_30, PROBLEM_503 = "429-retry-after-30", "problem-503"

_PLANNED: dict[Any, rest.Answer] = {
    **rest.REFUSALS,
    TOO_MANY_WAIT_30: rest.TOO_MANY_REQUESTS.with_headers(**{"Retry-After": "30"}),
    PROBLEM_503: rest.problem(503, 20503, "Service Unavailable"),
}


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
    #: messages Twilio accepted, in order: the form fields, the SID and when it was created
    accepted: list[dict[str, Any]] = field(default_factory=list)
    #: content templates on the account: sid → definition
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: WhatsApp approval requests: content sid → ``{name, category}`` as submitted
    submissions: dict[str, dict[str, str]] = field(default_factory=dict)
    #: WhatsApp's status of a template: content sid → (status, rejection reason); a test sets it
    #: (``fake.approvals[sid] = ("rejected", "INVALID_FORMAT")``); "received" once submitted,
    #: "unsubmitted" before
    approvals: dict[str, tuple[str, str]] = field(default_factory=dict)
    surprises: list[str] = field(default_factory=list)
    page_size: int = 4
    #: planned answers for the next Messages list requests (then the list)
    list_plan: deque[Any] = field(default_factory=deque)
    #: called with each message send's form before it is answered (may block, or raise)
    before_send: Callable[[dict[str, Any]], None] | None = None
    #: the clock Twilio stamps ``date_created`` with (the test's, so lookups agree with it)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: answer wrong credentials with Twilio's 401 (20003) instead of failing the test as a surprise
    refuse_credentials: bool = False
    #: the account's status (``active``, ``suspended``, ``closed``)
    account_status: str = "active"
    #: the account's phone numbers: +E164 → the resource's settings (``sms_url``, ``sms_method``…)
    phone_numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the account's Messaging Services: MG… → settings (``inbound_request_url``, ``status_callback``,
    #: ``use_inbound_webhook_on_number``…) and ``phone_numbers`` (the +E164 numbers in it)
    messaging_services: dict[str, dict[str, Any]] = field(default_factory=dict)
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
            if self.refuse_credentials:
                record.answer = response(rest.UNAUTHENTICATED)
                return record.answer
            return self._surprise(f"{method} {url} with credentials {auth!r}")
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        query = {**parse_qs(parts.query), **record.params}
        if method == "GET" and base == rest.ACCOUNT_URL and not query:
            record.answer = response(rest.Answer(200, rest.account_resource(self.account_status)))
        elif method == "GET" and base == rest.NUMBERS_URL:
            record.answer = self._numbers_page(query)
        elif method == "GET" and (service := _service_path(base)):
            record.answer = self._service(*service, query)
        elif method == "POST" and base == MESSAGES_URL:
            record.answer = self._message(dict(data or {}))
        elif method == "GET" and base == MESSAGES_URL:
            record.answer = self._message_page({**parse_qs(parts.query), **record.params})
        elif method == "GET" and base == CONTENT_URL:
            record.answer = self._content_page({**parse_qs(parts.query), **record.params})
        elif method == "POST" and base == CONTENT_URL:
            record.answer = self._create_content(data, record.headers)
        elif (approval := _approval_path(base)) and method == "POST" and approval[1]:
            record.answer = self._submit_approval(approval[0], data, record.headers)
        elif approval and method == "GET" and not approval[1] and not record.params and not parts.query:
            record.answer = self._fetch_approval(approval[0])
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
        problem = rest.message_form_problem(form)
        if problem:
            return self._surprise(problem)
        refusal = rest.content_refusal(form, self.contents)
        if refusal:
            return response(refusal)
        if self.before_send is not None:
            self.before_send(form)
        answer = self.plan.popleft() if self.plan else OK
        if answer == CONNECT_TIMEOUT:
            return requests.exceptions.ConnectTimeout("HTTPSConnectionPool(host='api.twilio.com'): connect timeout")
        if answer == TIMEOUT:
            return requests.exceptions.ReadTimeout("HTTPSConnectionPool(host='api.twilio.com'): Read timed out.")
        if answer in _PLANNED:
            return response(_PLANNED[answer])
        message_sid = rest.sid("SM", next(self._sids))
        self.accepted.append({**form, "sid": message_sid, "created": self.clock()})
        if answer == ANSWER_LOST:
            return requests.exceptions.ReadTimeout("HTTPSConnectionPool(host='api.twilio.com'): Read timed out.")
        if answer == PROCESSED_THEN_500:
            return response(rest.REFUSALS[SERVER_ERROR])
        if answer == UNREADABLE:
            return Response(201, '{"sid": "SM', headers={"Content-Type": "application/json"})
        return response(rest.Answer(201, self._resource(self.accepted[-1])))

    @staticmethod
    def _resource(message: dict[str, Any]) -> dict[str, Any]:
        form = {k: v for k, v in message.items() if k not in {"sid", "created"}}
        return rest.message_resource(message["sid"], form, status="queued", created=message["created"])

    def _message_page(self, query: dict[str, Any]) -> Response:
        """The Messages list, newest first, filtered by ``To`` (one page: the bot reads one)."""

        def one(name: str) -> str:
            value = query.get(name, "")
            return str(value[0] if isinstance(value, list) else value)

        if set(query) - {"To", "PageSize"}:
            return self._surprise(f"message list with {sorted(query)}")
        if self.list_plan and self.list_plan.popleft() == SERVER_ERROR:
            return response(rest.REFUSALS[SERVER_ERROR])
        size = int(one("PageSize") or 50)
        listed = [self._resource(m) for m in reversed(self.accepted) if m["To"] == one("To")][:size]
        page = {"messages": listed, "page": 0, "page_size": size, "next_page_uri": None, "uri": "/list"}
        return response(rest.Answer(200, page))

    def _content_page(self, query: dict[str, Any]) -> Response:
        token = query.get("PageToken", ["0"])
        page = rest.content_page(self.contents, token[0] if isinstance(token, list) else token, self.page_size)
        return response(rest.Answer(200, page))

    def _create_content(self, body: Any, headers: dict[str, str]) -> Response:
        problem = rest.content_definition_problem(body, headers.get("Content-Type"))
        if problem:
            return self._surprise(problem)
        content_sid = rest.sid("HX", next(self._sids))
        self.contents[content_sid] = body
        return response(rest.Answer(201, rest.content_resource(content_sid, body)))

    def _submit_approval(self, content_sid: str, body: Any, headers: dict[str, str]) -> Response:
        problem = rest.approval_submission_problem(body, headers.get("Content-Type"))
        if problem:
            return self._surprise(problem)
        refusal = rest.approval_refusal(content_sid, body, self.contents, self.submissions)
        if refusal:
            return response(refusal)
        self.submissions[content_sid] = dict(body)
        self.approvals[content_sid] = (rest.RECEIVED, "")
        return response(rest.Answer(201, rest.approval_created(self.contents[content_sid], body)))

    def _fetch_approval(self, content_sid: str) -> Response:
        if content_sid not in self.contents:
            return response(rest.error(404, 20404, f"The requested resource /Content/{content_sid} was not found"))
        submission = self.submissions.get(content_sid)
        status = self.approvals.get(content_sid)
        return response(
            rest.Answer(200, rest.approval_resource(content_sid, self.contents[content_sid], submission, status))
        )

    def _numbers_page(self, query: dict[str, Any]) -> Response:
        """The account's phone numbers, filtered by ``PhoneNumber`` (the only filter the bot uses)."""
        if set(query) - {"PhoneNumber", "PageSize"}:
            return self._surprise(f"phone number list with {sorted(query)}")
        wanted = _one(query, "PhoneNumber")
        listed = [
            rest.number_resource(rest.sid("PN", index + 1), phone, settings)
            for index, (phone, settings) in enumerate(self.phone_numbers.items())
            if not wanted or wanted in phone  # Twilio matches a part of the number
        ]
        size = int(_one(query, "PageSize") or 50)
        return response(rest.Answer(200, rest.numbers_page(listed[:size], size)))

    def _service(self, service_sid: str, numbers: bool, query: dict[str, Any]) -> Response:
        """A Messaging Service (404 when the account has none by that SID), or its phone numbers."""
        if set(query) - ({"PageSize"} if numbers else set()):
            return self._surprise(f"messaging service request with {sorted(query)}")
        settings = self.messaging_services.get(service_sid)
        if settings is None:
            return response(rest.error(404, 20404, f"The requested resource /Services/{service_sid} was not found"))
        if numbers:
            size = int(_one(query, "PageSize") or 50)
            page = rest.service_numbers_page(service_sid, list(settings.get("phone_numbers", ())), size)
            return response(rest.Answer(200, page))
        return response(rest.Answer(200, rest.service_resource(service_sid, settings)))

    # --- for assertions --------------------------------------------------------------
    def sends(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.url == MESSAGES_URL]

    def lookups(self) -> list[Recorded]:
        """Messages list requests (the worker looking an uncertain send up)."""
        return [r for r in self.requests if r.method == "GET" and r.url.startswith(MESSAGES_URL)]


def _approval_path(url: str) -> tuple[str, bool] | None:
    """``(content sid, a submission)`` for a URL of the ApprovalRequests endpoints, else None."""
    if not url.startswith(CONTENT_HOST):
        return None
    found = rest.APPROVAL_PATH.fullmatch(url.removeprefix(CONTENT_HOST))
    return (found[1], bool(found[2])) if found else None


def _service_path(url: str) -> tuple[str, bool] | None:
    """``(service sid, its phone numbers)`` for a Messaging Service URL, else None."""
    if not url.startswith(rest.SERVICES_URL):
        return None
    found = rest.SERVICE_PATH.fullmatch(url.removeprefix("https://messaging.twilio.com"))
    return (found[1], bool(found[2])) if found else None


def _one(query: dict[str, Any], name: str) -> str:
    value = query.get(name, "")
    return str(value[0] if isinstance(value, list) else value)


def response(answer: rest.Answer) -> Response:
    return Response(answer.status, answer.text, headers={"Content-Type": answer.content_type, **answer.headers})


def error_response(status: int, code: int, message: str) -> Response:
    return response(rest.error(status, code, message))

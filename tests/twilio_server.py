"""Twilio's REST API as a real HTTP server on 127.0.0.1, for the app's own processes to talk to.

:class:`tests.twilio_fake.FakeTwilio` answers inside the test's process; this answers over
TCP, so gunicorn, ``flask --app wsgi worker`` and ``flask --app wsgi templates sync`` can
reach it when started with ``TWILIO_API_URL=server.url`` (the real ``twilio`` library then
builds every request as for Twilio, see ``bot/channels/endpoint.py``). Both check requests
and shape answers with :mod:`tests.twilio_rest`.

What it serves (anything else, or other credentials, is recorded in ``surprises`` and
answered 4xx):

* ``POST /2010-04-01/Accounts/{AC}/Messages.json``: a message send, answered ``201`` after
  ``delay`` seconds, unless a planned :class:`~tests.twilio_faults.Fault` says otherwise
  (:mod:`tests.twilio_faults`: ``too_many``, ``server_error``, ``hang``, ``drop``,
  ``problem_answer``, ``truncated``, ``refused``, ``slow``);
* ``GET`` of the same URL: the account's messages, newest first, filtered by ``To``,
  ``From``, ``DateSent``, ``DateSent>`` (``>=``) and ``DateSent<`` (``<=``), in pages of
  ``PageSize`` linked by ``next_page_uri`` (``PageToken`` names the last message of the
  page before); ``GET …/Messages/{SM}.json`` one message;
* ``GET``/``POST /v1/Content``: the account's content templates, as ``templates sync`` uses them;
* ``POST /v1/Content/{HX}/ApprovalRequests/whatsapp``: submit one for WhatsApp's approval
  (recorded in ``submissions``; a second submission is refused, as Twilio does), and
  ``GET /v1/Content/{HX}/ApprovalRequests``: WhatsApp's status of it (``approvals``, which a test
  sets; ``received`` once submitted, ``unsubmitted`` before).

After accepting a message, its lifecycle (:class:`~tests.twilio_faults.Step` list) moves its status on
(``sent`` sets ``date_sent``) and posts each step to its ``StatusCallback`` URL, form-encoded
and signed with ``X-Twilio-Signature`` as Twilio signs; what the app answered is recorded in
``callbacks``. Every send is recorded with the time it was received (:class:`Send`), so a
test or benchmark can measure tap → Twilio latency and count duplicates and order. Wait for
any of it with :meth:`TwilioServer.wait_until` (a condition, never a sleep)::

    with TwilioServer(delay=0.2) as twilio:
        twilio.plan(too_many(retry_after=2), server_error(503))
        ...  # start the app with TWILIO_API_URL=twilio.url
        sends = twilio.wait_for_sends(3, timeout=10)
"""

from __future__ import annotations

import base64
import heapq
import http.client
import itertools
import json
import re
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import Message as Headers
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.request_validator import RequestValidator

from . import twilio_rest as rest
from .twilio_faults import ANSWER, CUT, DROP, HANG, SENT_DELIVERED, SHORT, Fault, Step
from .twilio_rest import ACCOUNT_SID, API_VERSION, AUTH_TOKEN, CONTENT_PATH, MESSAGES_PATH, SENDER, Answer

#: posts a status callback: (url, form, X-Twilio-Signature, timeout=) → the HTTP status the app answered
Transport = Callable[..., int]
MESSAGE_PATH = re.compile(rf"/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages/(SM[0-9a-f]{{32}})\.json")
LIST_FILTERS = {"To", "From", "DateSent", "DateSent>", "DateSent<", "PageSize", "Page", "PageToken"}


# -- what it records -----------------------------------------------------------------------
@dataclass
class Message:
    """A message on the account."""

    sid: str
    form: dict[str, str]
    created: datetime
    status: str
    updated: datetime
    sent: datetime | None = None
    error_code: int | None = None

    def resource(self, sender: str) -> dict[str, Any]:
        return rest.message_resource(
            self.sid,
            self.form,
            status=self.status,
            created=self.created,
            updated=self.updated,
            sent=self.sent,
            error_code=self.error_code,
            sender=sender,
        )


@dataclass
class Send:
    """One ``POST …/Messages.json`` as received: when (``at``: time.monotonic, ``wall``: UTC), the
    form, the fault planned for it, the SID created, and how it ended."""

    at: float
    wall: datetime
    form: dict[str, str]
    fault: Fault
    sid: str | None = None
    #: the HTTP status answered; None while unanswered, or when it never was (hang, drop)
    status: int | None = None
    outcome: str = "pending"
    answered_at: float | None = None

    @property
    def to(self) -> str:
        return self.form.get("To", "")


@dataclass
class Callback:
    """One status callback posted to the app, and the app's answer (0: no answer)."""

    sid: str
    status: str
    url: str
    params: dict[str, str]
    signature: str
    at: float
    answer: int


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes


@dataclass
class Reply:
    answer: Answer | None
    end: str = ANSWER
    delay: float = 0.0
    send: Send | None = None


# -- the server ------------------------------------------------------------------------------
class TwilioServer:
    """Twilio on ``http://127.0.0.1:<free port>`` (see the module docstring). A context manager."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        lifecycle: tuple[Step, ...] = SENT_DELIVERED,
        page_size: int = 50,
        content_page_size: int = 50,
        hang_limit: float = 60.0,
        callback_threads: int = 4,
        callback_timeout: float = 15.0,
        date_filter: str = "day",
        clock: Callable[[], datetime] | None = None,
        sender: str = SENDER,
        transport: Transport | None = None,
    ) -> None:
        #: seconds before a send is answered (unless its fault says otherwise)
        self.delay = delay
        #: what happens to an accepted message (unless its fault says otherwise)
        self.lifecycle = lifecycle
        self.page_size = page_size
        self.content_page_size = content_page_size
        #: the longest a HANG waits for the client to give up
        self.hang_limit = hang_limit
        self.callback_timeout = callback_timeout
        #: "day": DateSent filters compare dates (GMT) as Twilio documents; "second": whole timestamps
        self.date_filter = date_filter
        self.clock = clock or (lambda: datetime.now(UTC))
        #: who a Messaging Service send comes from once sent
        self.sender = sender
        #: how a signed status callback is posted (an in-process test may hand it to its Flask test client)
        self.transport: Transport = transport or post_form
        self.sends: list[Send] = []
        self.messages: dict[str, Message] = {}
        self.callbacks: list[Callback] = []
        self.contents: dict[str, dict[str, Any]] = {}
        #: WhatsApp approval requests: content sid → ``{name, category}`` as submitted
        self.submissions: dict[str, dict[str, str]] = {}
        #: WhatsApp's status of a template: content sid → (status, rejection reason), set by a test
        self.approvals: dict[str, tuple[str, str]] = {}
        self.surprises: list[str] = []
        self._plan: deque[Fault] = deque()
        self._sids = itertools.count(1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._validator = RequestValidator(AUTH_TOKEN)
        self._credentials = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        self._timers = _Timers()
        self._posting = ThreadPoolExecutor(max_workers=callback_threads, thread_name_prefix="twilio-callback")
        self.stopping = threading.Event()
        self._httpd = _HTTPServer(self)
        self._serving = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="twilio-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- life --------------------------------------------------------------------------------
    def start(self) -> TwilioServer:
        self._timers.start()
        self._serving.start()
        return self

    def close(self) -> None:
        """Stop serving; end every open connection (a hanging send too) and pending step; wait for them."""
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()  # joins the request threads
        self._timers.stop()
        self._posting.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TwilioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for tests and benchmarks ------------------------------------------------------------
    def plan(self, *faults: Fault) -> None:
        """How the next message sends are answered, in order (then as usual)."""
        with self._lock:
            self._plan.extend(faults)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` (read under the server's lock) holds; AssertionError after ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(
                    f"not within {timeout} s: {len(self.sends)} sends, {len(self.callbacks)} callbacks, "
                    f"surprises {self.surprises}"
                )

    def wait_for_sends(self, count: int, timeout: float) -> list[Send]:
        self.wait_until(lambda: len(self.sends) >= count, timeout)
        return self.received()

    def wait_for_callbacks(self, count: int, timeout: float) -> list[Callback]:
        self.wait_until(lambda: len(self.callbacks) >= count, timeout)
        with self._lock:
            return list(self.callbacks)

    def received(self) -> list[Send]:
        """Every message send so far, in the order received."""
        with self._lock:
            return list(self.sends)

    def created(self) -> list[Message]:
        """The messages on the account, oldest first."""
        with self._lock:
            return list(self.messages.values())

    # -- routing -------------------------------------------------------------------------------
    def route(self, request: Request, received: float) -> Reply:
        if request.headers.get("Authorization") != self._credentials:
            return self._surprise(f"{request.method} {request.path} without the account's credentials", 401, 20003)
        if request.path == MESSAGES_PATH and request.method == "POST":
            return self._send(request, received)
        if request.path == MESSAGES_PATH and request.method == "GET":
            return self._list(request)
        found = MESSAGE_PATH.fullmatch(request.path)
        if found and request.method == "GET":
            return self._fetch(found[1])
        if request.path == CONTENT_PATH and request.method == "GET":
            token = request.query.get("PageToken", ["0"])[0]
            with self._lock:
                return Reply(Answer(200, rest.content_page(self.contents, token, self.content_page_size)))
        if request.path == CONTENT_PATH and request.method == "POST":
            return self._create_content(request)
        approval = rest.APPROVAL_PATH.fullmatch(request.path)
        if approval and approval[2] and request.method == "POST":
            return self._submit_approval(approval[1], request)
        if approval and not approval[2] and request.method == "GET" and not request.query:
            return self._fetch_approval(approval[1])
        return self._surprise(f"{request.method} {request.path}", 404, 20404)

    def _surprise(self, what: str, status: int = 400, code: int = 21000) -> Reply:
        with self._changed:
            self.surprises.append(what)
            self._changed.notify_all()
        return Reply(rest.error(status, code, f"tests.twilio_server: not a request the bot makes: {what}"))

    def _send(self, request: Request, received: float) -> Reply:
        form = _single(parse_qs(request.body.decode(), keep_blank_values=True))
        problem = rest.message_form_problem(form) if form is not None else "a form field given twice"
        if problem or form is None:
            return self._surprise(problem or "")
        with self._changed:
            fault = self._plan.popleft() if self._plan else Fault()
            send = Send(received, self.clock(), form, fault)
            self.sends.append(send)
            refusal = rest.content_refusal(form, self.contents)
            delay = self.delay if fault.delay is None else fault.delay
            answer = refusal or fault.answer
            if refusal is None and fault.created:
                message = self._create(form, received + delay, fault.lifecycle)
                send.sid = message.sid
                answer = answer or Answer(201, message.resource(self.sender))
            self._changed.notify_all()
        return Reply(answer, fault.end if refusal is None else ANSWER, delay, send)

    def _create(self, form: dict[str, str], answered: float, lifecycle: tuple[Step, ...] | None) -> Message:
        """A new message (under the lock); its steps counted from ``answered`` (monotonic)."""
        now = self.clock()
        status = "accepted" if "MessagingServiceSid" in form else "queued"
        message = Message(rest.sid("SM", next(self._sids)), form, now, status, now)
        self.messages[message.sid] = message
        for step in self.lifecycle if lifecycle is None else lifecycle:
            self._timers.at(answered + step.after, lambda step=step: self._advance(message, step))
        return message

    def _advance(self, message: Message, step: Step) -> None:
        with self._changed:
            now = self.clock()
            message.status, message.updated = step.status, now
            message.error_code = step.error_code
            if message.sent is None and step.status in {"sent", "delivered", "read"}:
                message.sent = now
            self._changed.notify_all()
        url = message.form.get("StatusCallback")
        if url and step.posted and not self.stopping.is_set():
            self._posting.submit(self._post_callback, message, step, url)

    def _post_callback(self, message: Message, step: Step, url: str) -> None:
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": step.status,
            "SmsStatus": step.status,
            "To": message.form["To"],
            "From": message.form.get("From", self.sender),
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": API_VERSION,
        }
        if message.form.get("MessagingServiceSid"):
            params["MessagingServiceSid"] = message.form["MessagingServiceSid"]
        if step.error_code is not None:
            params["ErrorCode"] = str(step.error_code)
        signature = self._validator.compute_signature(url, params)
        answer = self.transport(url, params, signature, timeout=self.callback_timeout)
        with self._changed:
            self.callbacks.append(Callback(message.sid, step.status, url, params, signature, time.monotonic(), answer))
            self._changed.notify_all()

    def _list(self, request: Request) -> Reply:
        query = _single(request.query)
        if query is None or set(query) - LIST_FILTERS:
            return self._surprise(f"message list filters {sorted(request.query)}")
        try:
            size = min(1000, max(1, int(query.get("PageSize", self.page_size))))
            page_number = int(query.get("Page", 0))
            tests = [_date_test(key, query[key], self.date_filter) for key in query if key.startswith("DateSent")]
        except ValueError:
            return Reply(rest.error(400, 20001, "Invalid date or page value"))
        with self._lock:
            newest_first = sorted(self.messages.values(), key=lambda m: int(m.sid[2:], 16), reverse=True)
            resources = [m.resource(self.sender) for m in newest_first if all(t(m.sent) for t in tests)]
        resources = [
            r for r in resources if r["to"] == query.get("To", r["to"]) and r["from"] == query.get("From", r["from"])
        ]
        sids = [r["sid"] for r in resources]
        token = query.get("PageToken", "")
        start = sids.index(token[2:]) + 1 if token[2:] in sids else 0
        page = resources[start : start + size]
        filters = {k: v for k, v in query.items() if k not in {"PageSize", "Page", "PageToken"}}

        def uri(number: int, after: str | None) -> str:
            more = {"PageToken": f"PA{after}"} if after else {}
            return f"{MESSAGES_PATH}?{urlencode({**filters, 'PageSize': size, 'Page': number, **more})}"

        following = start + size < len(resources)
        payload = {
            "messages": page,
            "page": page_number,
            "page_size": size,
            "start": start,
            "end": start + max(len(page) - 1, 0),
            "uri": uri(page_number, token[2:] or None),
            "first_page_uri": uri(0, None),
            "next_page_uri": uri(page_number + 1, page[-1]["sid"]) if following else None,
            "previous_page_uri": None,
        }
        return Reply(Answer(200, payload))

    def _fetch(self, message_sid: str) -> Reply:
        with self._lock:
            message = self.messages.get(message_sid)
            if message is not None:
                return Reply(Answer(200, message.resource(self.sender)))
        return Reply(rest.error(404, 20404, f"The requested resource {message_sid} was not found"))

    def _create_content(self, request: Request) -> Reply:
        body = _json(request)
        problem = rest.content_definition_problem(body, request.headers.get("Content-Type"))
        if problem:
            return self._surprise(problem)
        with self._lock:
            content_sid = rest.sid("HX", next(self._sids))
            self.contents[content_sid] = body
        return Reply(Answer(201, rest.content_resource(content_sid, body)))

    def _submit_approval(self, content_sid: str, request: Request) -> Reply:
        body = _json(request)
        problem = rest.approval_submission_problem(body, request.headers.get("Content-Type"))
        if problem:
            return self._surprise(problem)
        with self._lock:
            refusal = rest.approval_refusal(content_sid, body, self.contents, self.submissions)
            if refusal:
                return Reply(refusal)
            self.submissions[content_sid] = dict(body)
            self.approvals[content_sid] = (rest.RECEIVED, "")
            return Reply(Answer(201, rest.approval_created(self.contents[content_sid], body)))

    def _fetch_approval(self, content_sid: str) -> Reply:
        with self._lock:
            content = self.contents.get(content_sid)
            if content is None:
                return Reply(rest.error(404, 20404, f"The requested resource /Content/{content_sid} was not found"))
            submission, status = self.submissions.get(content_sid), self.approvals.get(content_sid)
            return Reply(Answer(200, rest.approval_resource(content_sid, content, submission, status)))

    def answered(self, send: Send | None, status: int | None, outcome: str) -> None:
        if send is None:
            return
        with self._changed:
            send.status, send.outcome, send.answered_at = status, outcome, time.monotonic()
            self._changed.notify_all()


def _json(request: Request) -> Any:
    """A request's JSON body, or None when it is not JSON."""
    try:
        return json.loads(request.body)
    except ValueError:
        return None


def _single(query: dict[str, list[str]]) -> dict[str, str] | None:
    """One value per name, as Twilio's forms and filters have; None when a name is given twice."""
    if any(len(values) != 1 for values in query.values()):
        return None
    return {key: values[0] for key, values in query.items()}


def _date_test(key: str, value: str, precision: str) -> Callable[[datetime | None], bool]:
    """``DateSent`` (that day or moment), ``DateSent>`` (on or after), ``DateSent<`` (on or before);
    a message not yet sent (``date_sent`` null) matches none of them."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)

    def point(when: datetime) -> date | datetime:
        return when.astimezone(UTC).date() if precision == "day" else when.astimezone(UTC).replace(microsecond=0)

    bound = point(moment)
    if key == "DateSent>":
        return lambda sent: sent is not None and point(sent) >= bound
    if key == "DateSent<":
        return lambda sent: sent is not None and point(sent) <= bound
    return lambda sent: sent is not None and point(sent) == bound


#: a callback's answer when it was not posted: its URL is not on this machine (nothing leaves 127.0.0.1)
NOT_POSTED = -1
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def post_form(url: str, params: dict[str, str], signature: str, *, timeout: float) -> int:
    """POST ``params`` form-encoded with ``X-Twilio-Signature``, as Twilio posts a status callback; the
    HTTP status (0: no answer; NOT_POSTED: not a loopback ``http://`` URL)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        return NOT_POSTED
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        connection.request(
            "POST",
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body=urlencode(params),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                "User-Agent": "TwilioProxy/1.1",
            },
        )
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


# -- plumbing --------------------------------------------------------------------------------
class _Timers:
    """One thread running callables at monotonic times (the lifecycles' steps)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="twilio-timers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def at(self, when: float, action: Callable[[], None]) -> None:
        with self._ready:
            heapq.heappush(self._heap, (when, next(self._order), action))
            self._ready.notify()

    def stop(self) -> None:
        with self._ready:
            self._stopped = True
            self._ready.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._ready.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                action = heapq.heappop(self._heap)[2]
            action()


class _HTTPServer(ThreadingHTTPServer):
    """A thread per connection (kept alive, as Twilio's are), each tracked so that closing ends them."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 128

    def __init__(self, twilio: TwilioServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.twilio = twilio
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away is no news
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for the client's ACK
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the records say what happened
        pass

    def _serve(self) -> None:
        twilio = self.server.twilio
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received = time.monotonic()
        parts = urlsplit(self.path)
        request = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), self.headers, body)
        reply = twilio.route(request, received)
        if reply.delay > 0:
            twilio.stopping.wait(reply.delay)
        if reply.end == HANG:
            self.close_connection = True
            twilio.answered(reply.send, None, self._hang(twilio.hang_limit))
        elif reply.end == DROP:
            self.close_connection = True
            twilio.answered(reply.send, None, "dropped")
        else:
            assert reply.answer is not None
            twilio.answered(reply.send, reply.answer.status, reply.end)  # before the client can read it
            self._write(reply.answer, reply.end)

    def _write(self, answer: Answer, end: str) -> None:
        data = answer.text.encode()
        sent = data[: len(data) // 2] if end in {CUT, SHORT} else data
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(data) if end == CUT else len(sent)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(sent)
        self.wfile.flush()
        if end == CUT:
            self.close_connection = True

    def _hang(self, limit: float) -> str:
        """Answer nothing until the client closes its end (or the server closes, or ``limit``)."""
        readable, _, _ = select.select([self.connection], [], [], limit)
        if not readable:
            return f"hung for {limit} s"
        return (
            "hung until the server closed" if self.server.twilio.stopping.is_set() else "hung until the client gave up"
        )

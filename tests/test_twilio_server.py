"""tests/twilio_server.py speaks Twilio's REST API to the real ``twilio`` library over HTTP.

Every request here is built by a real ``twilio.rest.Client`` whose HTTP client is the app's
TWILIO_API_URL client (:class:`bot.channels.endpoint.EndpointHttpClient`), so what passes
here is what the app, its worker and ``templates sync`` will meet. Waiting is on the
server's condition (``wait_until``), never a sleep.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import fakeredis
import pytest
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.channels.cli import sync_templates
from bot.channels.content import TEMPLATES
from bot.channels.endpoint import EndpointHttpClient
from bot.channels.twilio import TemplateSids

from .conftest import Clock
from .twilio_faults import (
    QUIET,
    STUCK,
    delayed,
    drop,
    failed,
    hang,
    problem_answer,
    refused,
    server_error,
    too_many,
    truncated,
)
from .twilio_rest import ACCOUNT_SID, AUTH_TOKEN, SENDER
from .twilio_server import TwilioServer

ANA, BOB = "whatsapp:+34600111222", "whatsapp:+447700900123"
SERVICE = "MG" + "5" * 32


def client_of(server: TwilioServer, timeout: float = 5.0) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=EndpointHttpClient(server.url, timeout=timeout))


@pytest.fixture
def server() -> Iterator[TwilioServer]:
    with TwilioServer() as twilio:
        yield twilio
    assert not twilio.surprises, twilio.surprises


@pytest.fixture
def client(server: TwilioServer) -> Iterator[Client]:
    twilio = client_of(server)
    yield twilio
    twilio.http_client.session.close()


def send(client: Client, to: str = ANA, body: str = "hi", **fields: Any) -> Any:
    return client.messages.create(to=to, from_=SENDER, body=body, **fields)


def listed(client: Client, **filters: Any) -> list[str]:
    return [m.body for m in client.messages.list(**filters)]


# -- sending -----------------------------------------------------------------------------------
def test_a_send_is_answered_201_as_twilio_answers(server: TwilioServer, client: Client) -> None:
    message = send(client, body="Booked!")
    assert message.sid.startswith("SM") and len(message.sid) == 34 and int(message.sid[2:], 16)
    assert (message.status, message.to, message.from_, message.body) == ("queued", ANA, SENDER, "Booked!")
    assert message.account_sid == ACCOUNT_SID and message.direction == "outbound-api"
    assert isinstance(message.date_created, datetime) and message.date_sent is None
    (received,) = server.received()
    assert (received.sid, received.status, received.outcome) == (message.sid, 201, "answer")
    assert received.form == {"To": ANA, "From": SENDER, "Body": "Booked!"}
    assert received.at <= (received.answered_at or 0) and received.wall.tzinfo is UTC


def test_a_messaging_service_send_is_accepted_without_a_sender_yet(client: Client) -> None:
    message = client.messages.create(to=ANA, messaging_service_sid=SERVICE, body="hi")
    assert (message.status, message.from_, message.messaging_service_sid) == ("accepted", None, SERVICE)


def test_sends_are_served_at_once_while_each_waits_its_delay(server: TwilioServer, client: Client) -> None:
    """A thread per connection: 12 sends answered after 0.5 s each are all received before the first answer."""
    server.delay = 0.5
    threads = [threading.Thread(target=send, args=(client, f"whatsapp:+3460000{n:04d}")) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    sends = server.received()
    assert len({s.sid for s in sends}) == 12 and all(s.status == 201 for s in sends)
    assert max(s.at for s in sends) < min(s.answered_at or 0 for s in sends)


# -- listing -----------------------------------------------------------------------------------
@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 14, 9, 0, tzinfo=UTC))


def sent_on(server: TwilioServer, client: Client, clock: Clock, day: int, *bodies: str, to: str = ANA) -> None:
    """Send ``bodies`` on January ``day`` and wait until Twilio has sent them (``date_sent`` set)."""
    clock.now = clock.now.replace(day=day)
    for body in bodies:
        send(client, to=to, body=body)
    server.wait_until(lambda: all(m.sent for m in server.messages.values()), timeout=10)


def test_the_list_filters_by_to_from_and_date_sent_newest_first(clock: Clock) -> None:
    with TwilioServer(clock=clock) as server:
        client = client_of(server)
        sent_on(server, client, clock, 14, "a1", "a2")
        sent_on(server, client, clock, 14, "b1", to=BOB)
        sent_on(server, client, clock, 15, "a3")
        sent_on(server, client, clock, 16, "a4")
        assert listed(client, to=ANA) == ["a4", "a3", "a2", "a1"]
        assert listed(client, to=BOB) == ["b1"]
        assert listed(client, from_=SENDER) == ["a4", "a3", "b1", "a2", "a1"]
        assert listed(client, to=ANA, from_="whatsapp:+15550000000") == []
        assert listed(client, to=ANA, date_sent_after=datetime(2026, 1, 15, tzinfo=UTC)) == ["a4", "a3"]
        assert listed(client, to=ANA, date_sent_before=datetime(2026, 1, 15, tzinfo=UTC)) == ["a3", "a2", "a1"]
        assert listed(client, to=ANA, date_sent=datetime(2026, 1, 15, tzinfo=UTC)) == ["a3"]
        assert listed(client, to=ANA, limit=2) == ["a4", "a3"]
        assert not server.surprises


def test_date_filters_compare_days_as_documented_or_seconds_when_asked(clock: Clock) -> None:
    """Twilio documents DateSent filters as dates (YYYY-MM-DD, GMT); the library sends timestamps."""
    for precision, expected in (("day", ["late", "early"]), ("second", ["late"])):
        clock.now = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
        with TwilioServer(clock=clock, date_filter=precision) as server:
            client = client_of(server)
            sent_on(server, client, clock, 14, "early")
            clock.advance(hours=2)
            sent_on(server, client, clock, 14, "late")
            after = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)
            assert listed(client, to=ANA, date_sent_after=after) == expected, precision


def test_a_message_not_sent_yet_is_listed_but_matches_no_date_filter(client: Client, server: TwilioServer) -> None:
    server.lifecycle = STUCK  # Twilio keeps it queued: date_sent stays null
    send(client, body="queued")
    assert listed(client, to=ANA) == ["queued"]
    assert listed(client, to=ANA, date_sent_after=datetime.now(UTC) - timedelta(days=1)) == []
    assert client.messages.list(to=ANA)[0].date_sent is None


def test_pages_link_on_twilios_host_and_are_followed_through_the_endpoint(server: TwilioServer) -> None:
    server.page_size = 2
    client = client_of(server)
    for n in range(5):
        send(client, body=f"m{n}")
    send(client, to=BOB, body="other")
    first = client.messages.page(to=ANA, page_size=2)
    assert [m.body for m in first] == ["m4", "m3"]
    assert first.next_page_url.startswith(f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?")
    assert "PageToken=PA" in first.next_page_url and "To=whatsapp" in first.next_page_url
    second = first.next_page()
    assert [m.body for m in second] == ["m2", "m1"]
    third = second.next_page()
    assert [m.body for m in third] == ["m0"] and third.next_page_url is None
    assert listed(client, to=ANA, page_size=2) == ["m4", "m3", "m2", "m1", "m0"]


def test_one_message_is_fetched_by_sid(client: Client) -> None:
    message = send(client, body="one")
    assert client.messages(message.sid).fetch().body == "one"
    with pytest.raises(TwilioRestException) as caught:
        client.messages("SM" + "f" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


# -- faults -------------------------------------------------------------------------------------
def test_429_carries_retry_after_and_creates_nothing(server: TwilioServer, client: Client) -> None:
    server.plan(too_many(retry_after=7))
    with pytest.raises(TwilioRestException) as caught:
        send(client)
    assert (caught.value.status, caught.value.code) == (429, 20429)
    # twilio 9.13 keeps the last response on the client (one for all threads), not on the exception
    assert client.http_client._test_only_last_response.headers["Retry-After"] == "7"
    assert listed(client, to=ANA) == [] and server.received()[0].sid is None


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_after_processing_leaves_the_message_created_and_listed(
    server: TwilioServer, client: Client, status: int
) -> None:
    server.plan(server_error(status))
    with pytest.raises(TwilioRestException) as caught:
        send(client, body="did it go?")
    assert caught.value.status == status
    (received,) = server.received()
    assert received.status == status and received.sid is not None
    assert [(m.sid, m.body) for m in client.messages.list(to=ANA)] == [(received.sid, "did it go?")]


def test_a_problem_json_error_raises_twilio_service_exception_not_rest_exception(
    server: TwilioServer, client: Client
) -> None:
    """RFC 9457 bodies (type, title, status, code) become TwilioServiceException, which is no
    TwilioRestException: code that catches only the latter lets it through."""
    server.plan(problem_answer(400, 21610, "Message blocked", detail="The recipient opted out"))
    with pytest.raises(TwilioServiceException) as caught:
        send(client)
    assert not isinstance(caught.value, TwilioRestException)
    assert (caught.value.status, caught.value.code, caught.value.title) == (400, 21610, "Message blocked")
    assert caught.value.detail == "The recipient opted out"
    assert client.http_client._test_only_last_response.headers["Content-Type"] == "application/problem+json"
    assert listed(client, to=ANA) == []


@pytest.mark.parametrize("created", [False, True])
def test_a_hang_ends_in_the_clients_read_timeout(server: TwilioServer, created: bool) -> None:
    server.plan(hang(created=created))
    client = client_of(server, timeout=0.3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(client, body="lost answer")
    server.wait_until(lambda: server.sends[0].answered_at is not None, timeout=10)
    assert server.received()[0].outcome == "hung until the client gave up"
    assert listed(client, to=ANA) == (["lost answer"] if created else [])


@pytest.mark.parametrize("created", [False, True])
def test_a_dropped_connection_is_a_connection_error(server: TwilioServer, client: Client, created: bool) -> None:
    server.plan(drop(created=created))
    with pytest.raises(requests.exceptions.ConnectionError):
        send(client, body="dropped")
    assert server.received()[0].outcome == "dropped"
    assert listed(client, to=ANA) == (["dropped"] if created else [])


def test_a_truncated_201_breaks_the_read_or_the_json(server: TwilioServer, client: Client) -> None:
    server.plan(truncated(cut=True), truncated(cut=False))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        send(client, body="cut")
    with pytest.raises(json.JSONDecodeError):  # a ValueError, not a requests or Twilio exception
        send(client, body="short")
    assert listed(client, to=ANA) == ["short", "cut"]


@pytest.mark.parametrize("code", [63018, 63016])
def test_refusals_carry_twilios_error_code(server: TwilioServer, client: Client, code: int) -> None:
    server.plan(refused(code))
    with pytest.raises(TwilioRestException) as caught:
        send(client)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert listed(client, to=ANA) == []


def test_requests_the_bot_never_makes_are_surprises() -> None:
    with TwilioServer() as server:
        stranger = Client(ACCOUNT_SID, "wrong-token", http_client=EndpointHttpClient(server.url, timeout=5))
        with pytest.raises(TwilioRestException) as caught:
            send(stranger)
        assert caught.value.status == 401
        with pytest.raises(TwilioRestException):
            client_of(server).messages.create(to=ANA, from_=SENDER, body="hi", max_price=1.0)
        assert len(server.surprises) == 2 and server.received() == []


# -- status callbacks ------------------------------------------------------------------------------
class Receiver:
    """A small app of our own: takes status callbacks, checks each signature, answers 204 (or ``status``)."""

    def __init__(self) -> None:
        self.status = 204
        self.seen: list[tuple[str, dict[str, str], bool]] = []
        validator = RequestValidator(AUTH_TOKEN)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                params = {k: v[0] for k, v in parse_qs(body).items()}
                url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
                valid = validator.validate(url, params, self.headers.get("X-Twilio-Signature", ""))
                receiver.seen.append((url, params, valid))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/webhook/status?b=test&to=%2B34600111222&entry=1-0"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Receiver()
    app.thread.start()
    yield app
    app.close()


def test_callbacks_arrive_signed_sent_then_delivered(server: TwilioServer, client: Client, receiver: Receiver) -> None:
    message = send(client, status_callback=receiver.url)
    callbacks = server.wait_for_callbacks(2, timeout=10)
    assert sorted((c.status, c.answer) for c in callbacks) == [("delivered", 204), ("sent", 204)]
    assert len(receiver.seen) == 2 and all(valid and url == receiver.url for url, _, valid in receiver.seen)
    params = {p["MessageStatus"]: p for _, p, _ in receiver.seen}
    assert params["sent"] | {"MessageStatus": "delivered", "SmsStatus": "delivered"} == params["delivered"]
    assert params["sent"] == {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "MessageStatus": "sent",
        "SmsStatus": "sent",
        "To": ANA,
        "From": SENDER,
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
    }
    fetched = client.messages(message.sid).fetch()
    assert fetched.status == "delivered" and fetched.date_sent is not None


def test_a_failure_callback_carries_the_error_code(server: TwilioServer, client: Client, receiver: Receiver) -> None:
    server.lifecycle = failed(63018)
    message = send(client, status_callback=receiver.url)
    (callback,) = server.wait_for_callbacks(1, timeout=10)
    assert (callback.status, callback.params["ErrorCode"], callback.answer) == ("failed", "63018", 204)
    assert receiver.seen[0][2] and receiver.seen[0][1]["ErrorCode"] == "63018"
    fetched = client.messages(message.sid).fetch()
    assert (fetched.status, fetched.error_code, fetched.date_sent) == ("failed", 63018, None)


def test_what_the_app_answers_is_recorded(server: TwilioServer, client: Client, receiver: Receiver) -> None:
    receiver.status = 503
    send(client, status_callback=receiver.url)
    assert {c.answer for c in server.wait_for_callbacks(2, timeout=10)} == {503}


def test_callbacks_delayed_or_never_posted(server: TwilioServer, client: Client, receiver: Receiver) -> None:
    server.lifecycle = QUIET  # the status moves on, no callback is posted
    quiet = send(client, status_callback=receiver.url)
    server.wait_until(lambda: server.messages[quiet.sid].status == "delivered", timeout=10)
    server.lifecycle = delayed(0.4)
    late = send(client, status_callback=receiver.url)
    callbacks = server.wait_for_callbacks(2, timeout=10)
    assert {c.sid for c in callbacks} == {late.sid} and len(receiver.seen) == 2
    answered = server.received()[1].answered_at or 0
    assert min(c.at for c in callbacks) - answered >= 0.4


# -- the Content API ---------------------------------------------------------------------------
def test_templates_sync_creates_then_finds_them_over_pages() -> None:
    with TwilioServer(content_page_size=4) as server:
        client = client_of(server)
        sids = TemplateSids(fakeredis.FakeRedis(decode_responses=True), "tapbook:templates")
        first = sync_templates(client, sids)
        assert [action for _, _, action in first] == ["created"] * len(TEMPLATES)
        assert set(server.contents) == {sid for _, sid, _ in first}
        again = sync_templates(client, sids)  # three pages of four
        assert [(name, sid) for name, sid, _ in again] == [(name, sid) for name, sid, _ in first]
        assert {action for _, _, action in again} == {"unchanged"}
        assert not server.surprises

"""TWILIO_API_URL: every Twilio REST request to another base URL, checked at start-up and loudly logged."""

from __future__ import annotations

import json
import logging

import pytest
from twilio.http.http_client import TwilioHttpClient

from bot import create_app, get_services
from bot.channels.endpoint import EndpointHttpClient
from bot.errors import ConfigError

from .conftest import TOKEN, app_config
from .content_phone import PUBLIC, synced_worker
from .twilio_rest import ACCOUNT_SID, SENDER
from .twilio_server import TwilioServer
from .whatsapp import WhatsApp


def content_app_config(**overrides: object) -> dict[str, object]:
    """A Content API app with no injected HTTP client: Twilio is reached over HTTP."""
    return app_config(TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_FROM=SENDER, PUBLIC_BASE_URL=PUBLIC, **overrides)


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1:8010",
        "ftp://127.0.0.1:8010",
        "http://",
        "http://:8010",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:0",
        "http://127.0.0.1:8010/?x=1",
        "http://127.0.0.1:8010/#top",
        "http://user:secret@127.0.0.1:8010",
    ],
)
def test_a_value_that_is_not_an_http_base_url_stops_start_up(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(content_app_config(TWILIO_API_URL=value))
    assert caught.value.setting == "TWILIO_API_URL"
    assert str(caught.value).startswith("tapbook: invalid configuration: TWILIO_API_URL: must ")
    assert "\n" not in str(caught.value)


def test_unset_the_client_talks_to_twilio_itself(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot"):
        services = get_services(create_app(content_app_config()))
    assert services.settings.twilio_api_url is None
    assert type(services.twilio.http_client) is TwilioHttpClient
    assert "TWILIO_API_URL" not in caplog.text


def test_set_it_is_used_and_start_up_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot"):
        services = get_services(create_app(content_app_config(TWILIO_API_URL="https://twilio.test:8443/")))
    client = services.twilio.http_client
    assert isinstance(client, EndpointHttpClient) and client.base_url == "https://twilio.test:8443"
    assert "Twilio REST requests go to https://twilio.test:8443, not to Twilio" in caplog.text
    assert [r.levelno for r in caplog.records if "TWILIO_API_URL" in r.getMessage()] == [logging.WARNING]


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        (
            "http://127.0.0.1:8010",
            f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?To=whatsapp%3A%2B1&PageSize=2",
            f"http://127.0.0.1:8010/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?To=whatsapp%3A%2B1&PageSize=2",
        ),
        (
            "https://stub.test/twilio",
            "https://content.twilio.com/v1/Content?PageSize=50&PageToken=PA1",
            "https://stub.test/twilio/v1/Content?PageSize=50&PageToken=PA1",
        ),
    ],
)
def test_path_and_query_are_kept(base: str, url: str, expected: str) -> None:
    assert EndpointHttpClient(base).redirect(url) == expected


def test_the_app_and_its_worker_reach_the_server_through_the_real_client(twilio_server: TwilioServer) -> None:
    """templates sync and the worker's send go over HTTP to the local server, as they would to Twilio;
    the server's signed status callbacks reach the app (here through its test client)."""
    app = create_app(content_app_config(TWILIO_API_URL=twilio_server.url))

    def to_the_app(url: str, params: dict[str, str], signature: str, *, timeout: float) -> int:
        response = app.test_client().post(
            url.removeprefix(PUBLIC), base_url=PUBLIC, data=params, headers={"X-Twilio-Signature": signature}
        )
        return response.status_code

    twilio_server.transport = to_the_app
    worker = synced_worker(app)  # templates sync: lists and creates the templates on the server
    assert len(twilio_server.contents) >= 10
    answer = WhatsApp(app.test_client(), TOKEN).send("hi")
    assert answer.status == 200 and "<Response />" in answer.body
    assert worker.run_once() == 1
    (send,) = twilio_server.received()
    assert send.status == 201 and send.sid is not None
    assert send.form["To"] == "whatsapp:+34600111222" and send.form["From"] == SENDER
    assert send.form["ContentSid"] in twilio_server.contents
    assert json.loads(send.form["ContentVariables"])["1"]  # the menu's text
    assert send.form["StatusCallback"].startswith(f"{PUBLIC}/webhook/status?")
    record = next(iter(get_services(app).outboxes["test"].delivery("+34600111222").values()))
    assert record["state"] == "sent" and record["sid"] == send.sid
    callbacks = twilio_server.wait_for_callbacks(2, timeout=10)
    assert {(c.sid, c.status, c.answer) for c in callbacks} == {(send.sid, "sent", 204), (send.sid, "delivered", 204)}
    get_services(app).redis.close()

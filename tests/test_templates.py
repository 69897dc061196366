"""``flask templates sync|list`` through the real twilio client, and the Content API settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from bot import create_app, get_services
from bot.channels.content import TEMPLATES
from bot.errors import ConfigError

from .catalogs import salon
from .conftest import app_config
from .content_phone import content_config
from .redis_server import RedisServer
from .twilio_fake import CONTENT_URL, FakeTwilio, error_response


@pytest.fixture
def fake() -> FakeTwilio:
    fake = FakeTwilio()
    fake.contents["HX" + "9" * 32] = {"friendly_name": "someone_elses_template", "types": {"twilio/text": {}}}
    return fake


@pytest.fixture
def app(backend: dict[str, Any], fake: FakeTwilio) -> Iterator[Flask]:
    app = create_app(content_config(fake, **backend))
    yield app
    get_services(app).redis.close()


def test_sync_creates_the_templates_once_and_a_second_sync_changes_nothing(app: Flask, fake: FakeTwilio) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["templates", "sync"])
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == len(TEMPLATES) == 10
    creates = [r for r in fake.requests if r.method == "POST"]
    assert [r.data["friendly_name"] for r in creates] == [t.friendly_name for t in TEMPLATES]
    quick = creates[1].data
    assert quick["types"] == {
        "twilio/quick-reply": {
            "body": "{{1}}",
            "actions": [{"title": "{{2}}", "id": "{{3}}"}, {"title": "{{4}}", "id": "{{5}}"}],
        }
    }
    assert set(quick["variables"]) == {"1", "2", "3", "4", "5"}  # a sample for every variable
    listed = creates[9].data["types"]["twilio/list-picker"]
    assert listed["button"] == "{{2}}" and len(listed["items"]) == 10
    assert listed["items"][9] == {"item": "{{30}}", "id": "{{31}}", "description": "{{32}}"}

    fake.requests.clear()
    second = runner.invoke(args=["templates", "sync"])
    assert second.exit_code == 0 and second.output.count("unchanged") == 10
    assert {(r.method, r.url.split("?")[0]) for r in fake.requests} == {("GET", CONTENT_URL)}  # pages only
    assert len(fake.contents) == 11

    shown = runner.invoke(args=["templates", "list"])
    sids = {line.split()[0]: line.split()[1] for line in shown.output.splitlines()}
    assert sids == {body["friendly_name"]: sid for sid, body in fake.contents.items() if body["friendly_name"] in sids}
    assert not fake.surprises


def test_sync_records_templates_another_deployment_already_created(app: Flask, fake: FakeTwilio) -> None:
    for template in TEMPLATES[:4]:
        fake.contents[f"HX{len(fake.contents):032x}"] = template.definition()
    output = app.test_cli_runner().invoke(args=["templates", "sync"]).output
    assert output.count("found") == 4 and output.count("created") == 6


def test_list_before_sync_says_not_synced(app: Flask) -> None:
    output = app.test_cli_runner().invoke(args=["templates", "list"]).output
    assert output.count("not synced") == 10


def test_a_twilio_error_during_sync_is_one_line(app: Flask, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake, "_create_content", lambda body, headers: error_response(401, 20003, "Authenticate"))
    result = app.test_cli_runner().invoke(args=["templates", "sync"])
    assert result.exit_code == 1
    assert result.output == "Error: Twilio answered 401 (20003): Unable to create record: Authenticate\n"


def test_without_credentials_templates_and_worker_explain_what_is_missing(backend: dict[str, Any]) -> None:
    runner = create_app(app_config(**backend)).test_cli_runner()
    assert "TWILIO_ACCOUNT_SID" in runner.invoke(args=["templates", "sync"]).output
    assert "TWILIO_ACCOUNT_SID" in runner.invoke(args=["worker"]).output


@pytest.mark.parametrize(
    ("key", "value"),
    [("TWILIO_FROM", "+14155238886"), ("TWILIO_ACCOUNT_SID", "XY123"), ("TWILIO_MESSAGING_SERVICE_SID", "AC1")],
)
def test_content_api_settings_are_checked(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        create_app(app_config(**{key: value}))


def buttons(config: dict[str, Any]) -> bool:
    """Whether the (only) business's replies go out as Content API buttons."""
    return get_services(create_app(config)).business().channel.out_of_band


def test_the_content_api_is_on_only_with_an_account_a_token_and_a_sender() -> None:
    assert buttons(content_config(FakeTwilio()))
    partial = app_config(TWILIO_ACCOUNT_SID="AC" + "a" * 32)
    assert not buttons(partial)
    service = app_config(TWILIO_ACCOUNT_SID="AC" + "a" * 32, TWILIO_MESSAGING_SERVICE_SID="MG" + "c" * 32)
    assert buttons(service)
    numbered = app_config(TWILIO_ACCOUNT_SID="AC" + "a" * 32, CATALOG=salon(numbers=("+34910000001",)))
    assert buttons(numbered)  # the number customers write to sends the replies


def test_templates_say_when_redis_is_down(own_redis_server: RedisServer, fake: FakeTwilio) -> None:
    app = create_app(content_config(fake, REDIS_URL=own_redis_server.url))
    own_redis_server.stop()
    for args in (["templates", "list"], ["templates", "sync"]):
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 1, args
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.output.splitlines()[-1].startswith("Error: Redis cannot be reached or failed: ConnectionError")


def test_twilio_out_of_reach_during_sync_is_one_line(
    app: Flask, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool(host='content.twilio.com'): Name not known")

    monkeypatch.setattr(fake, "request", unreachable)  # the network edge: no answer at all
    result = app.test_cli_runner().invoke(args=["templates", "sync"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output == (
        "Error: Twilio cannot be reached: ConnectionError: "
        "HTTPSConnectionPool(host='content.twilio.com'): Name not known\n"
    )

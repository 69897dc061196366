"""Next to a real Redis the webhook fails closed (issue 13, items 1 and 2).

1. Unchecked signatures (``TWILIO_VALIDATE_SIGNATURE=false``, or ``auto`` in Flask debug or
   testing mode) stop start-up with one line instead of answering unsigned requests.
2. The URL a signature is checked over is the deployment's own (``PUBLIC_BASE_URL``, or the
   request's URL when its host is one of ``WEBHOOK_HOSTS``), never one the client picks with
   ``Host`` or ``X-Forwarded-Host``; a failed check logs the URL it used.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.errors import ConfigError

from .conftest import TOKEN, app_config
from .redis_server import RedisServer
from .servers import import_wsgi
from .whatsapp import WhatsApp

PUBLIC = "https://bot.example.com"
OTHER = "https://other.example.com"  # another webhook of the same Twilio account


def entries(stream: io.StringIO, logger: str) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, stream.getvalue().splitlines()) if e["logger"] == logger]


def real_app(server: RedisServer, **settings: Any) -> Flask:
    redis.Redis.from_url(server.url).flushdb()
    return create_app(app_config(REDIS_URL=server.url, **settings))


# -- 1. signature checks cannot be off next to a real Redis ---------------------------------------
OFF = {
    "explicitly": {"TWILIO_VALIDATE_SIGNATURE": "false"},
    "auto in testing mode": {"TWILIO_VALIDATE_SIGNATURE": "auto"},  # app_config sets TESTING=True
    "auto in debug mode": {"TWILIO_VALIDATE_SIGNATURE": "auto", "TESTING": False, "DEBUG": True},
}
REAL_REDIS = {
    "server": {},  # REDIS_URL of the test server, filled in below
    "cluster": {"REDIS_CLUSTER_NODES": "127.0.0.1:7000"},
    "sentinel": {"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_SERVICE": "mymaster"},
}


@pytest.mark.parametrize("mode", REAL_REDIS)
@pytest.mark.parametrize("off", OFF)
def test_unchecked_signatures_next_to_a_real_redis_stop_start_up(
    redis_server: RedisServer, off: str, mode: str
) -> None:
    store = REAL_REDIS[mode] or {"REDIS_URL": redis_server.url}
    config = app_config(PUBLIC_BASE_URL=PUBLIC, **store, **OFF[off])
    try:
        app = create_app(config)
    except ConfigError as refused:
        assert refused.setting == "TWILIO_VALIDATE_SIGNATURE"
        assert "refused next to a real Redis" in str(refused) and "\n" not in str(refused)
        return
    # what used to happen: it started, and an unsigned request acted
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.post(wa.form("hi"), signature="").status == 200
    pytest.fail("started with signature checks off next to a real Redis")


def test_flask_debug_in_the_environment_stops_a_real_deployment(redis_server: RedisServer, tmp_path: Path) -> None:
    """As gunicorn imports wsgi.py with ``FLASK_DEBUG=1`` left in the environment: one line, exit 1."""
    result = import_wsgi(
        tmp_path,
        drop=("TWILIO_VALIDATE_SIGNATURE",),
        FLASK_DEBUG="1",
        REDIS_URL=redis_server.url,
        PUBLIC_BASE_URL=PUBLIC,
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("tapbook: invalid configuration: TWILIO_VALIDATE_SIGNATURE: auto turns checks off in Flask")


def test_debug_mode_with_checks_on_may_use_a_real_redis(redis_server: RedisServer) -> None:
    app = real_app(redis_server, TESTING=False, DEBUG=True, TWILIO_VALIDATE_SIGNATURE="true", PUBLIC_BASE_URL=PUBLIC)
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.post(wa.form("hi"), signature="").status == 403
    assert wa.send("hi").status == 200
    get_services(app).redis.close()


# -- 2. the URL checked is the deployment's, not the client's --------------------------------------
def test_a_real_redis_without_public_base_url_or_hosts_stops_start_up(redis_server: RedisServer) -> None:
    try:
        app = real_app(redis_server, WEBHOOK_HOSTS=None)
    except ConfigError as refused:
        assert refused.setting == "PUBLIC_BASE_URL"
        assert "WEBHOOK_HOSTS" in str(refused) and "\n" not in str(refused)
        return
    # what used to happen: a request Twilio signed for another app's /webhook, replayed here
    wa = WhatsApp(app.test_client(), TOKEN)
    assert wa.post(wa.form("hi"), base_url=OTHER).status == 200
    pytest.fail("started without knowing which URL Twilio signs")


@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        ({"PUBLIC_BASE_URL": PUBLIC, "WEBHOOK_HOSTS": None}, {}),
        ({"WEBHOOK_HOSTS": "bot.example.com"}, {}),
        ({"WEBHOOK_HOSTS": "bot.example.com", "TRUSTED_PROXY_HOPS": 1}, {"X-Forwarded-Host": "other.example.com"}),
    ],
    ids=["public base url", "webhook hosts", "webhook hosts behind a proxy"],
)
def test_a_request_twilio_signed_for_another_hosts_webhook_is_refused(
    redis_server: RedisServer, json_lines: io.StringIO, settings: dict[str, Any], headers: dict[str, str]
) -> None:
    app = real_app(redis_server, **settings)
    db = get_services(app).redis
    wa = WhatsApp(app.test_client(), TOKEN)
    form = wa.form("hi")
    signed_elsewhere = wa.validator.compute_signature(OTHER + "/webhook", form)  # genuine, for the other app
    base = PUBLIC if headers else OTHER  # behind the proxy the attacker names the host in X-Forwarded-Host
    answer = wa.post(form, signature=signed_elsewhere, base_url=base, headers=headers)
    assert answer.status == 403
    assert db.dbsize() == 0  # a forged request changes nothing
    (line,) = entries(json_lines, "bot.webhook")
    assert (line["level"], line["outcome"]) == ("WARNING", "forged")
    if "PUBLIC_BASE_URL" in settings:
        assert (line["msg"], line["url"]) == ("tap forged: wrong X-Twilio-Signature", PUBLIC + "/webhook")
    else:
        assert line["msg"] == "tap forged: host other.example.com is not one of WEBHOOK_HOSTS"
    assert get_services(app).stats.get("taps.forged") == 1
    assert wa.send("hi").status == 200  # Twilio's own request to this deployment still works
    db.close()


def test_the_forged_line_names_the_url_checked_for_a_newcomer_behind_a_proxy(
    redis_server: RedisServer, json_lines: io.StringIO
) -> None:
    """ngrok: Twilio signed https://….ngrok.app/webhook?lang=es, the app checked its own https URL."""
    app = real_app(redis_server, PUBLIC_BASE_URL="https://bot.example.com", WEBHOOK_HOSTS=None)
    wa = WhatsApp(app.test_client(), TOKEN)
    form = wa.form("hola")
    signature = wa.validator.compute_signature("https://abc.ngrok.app/webhook?lang=es", form)
    assert wa.post(form, path="/webhook?lang=es", signature=signature, base_url="http://127.0.0.1:8000").status == 403
    (line,) = entries(json_lines, "bot.webhook")
    assert line["url"] == "https://bot.example.com/webhook?lang=es"
    get_services(app).redis.close()


def test_every_listed_host_is_checked_against_its_own_url(redis_server: RedisServer) -> None:
    app = real_app(redis_server, WEBHOOK_HOSTS="bot.example.com, Other.Example.com:8443")
    wa = WhatsApp(app.test_client(), TOKEN)
    for base in (PUBLIC, "https://other.example.com:8443", "https://bot.example.com:443"):
        form = wa.form("hi")
        assert wa.post(form, base_url=base).status == 200, base
    form = wa.form("hi")
    assert wa.post(form, base_url="https://other.example.com").status == 403  # listed with another port
    assert wa.post(form, base_url="https://bot.example.com.evil.example").status == 403
    get_services(app).redis.close()


def test_both_settings_accept_the_public_url_and_the_listed_hosts(redis_server: RedisServer) -> None:
    app = real_app(redis_server, PUBLIC_BASE_URL=PUBLIC, WEBHOOK_HOSTS="other.example.com")
    wa = WhatsApp(app.test_client(), TOKEN)
    form = wa.form("hi")
    over_public = wa.validator.compute_signature(PUBLIC + "/webhook", form)
    assert wa.post(form, signature=over_public, base_url="http://10.0.0.7:8000").status == 200
    assert wa.post(wa.form("hi"), base_url=OTHER).status == 200
    form = wa.form("hi")
    own_url = wa.validator.compute_signature("http://10.0.0.7:8000/webhook", form)
    assert wa.post(form, signature=own_url, base_url="http://10.0.0.7:8000").status == 403
    get_services(app).redis.close()


def test_a_refused_status_callback_logs_the_url_checked_with_the_phone_masked(
    redis_server: RedisServer, json_lines: io.StringIO
) -> None:
    app = real_app(redis_server, PUBLIC_BASE_URL=PUBLIC, WEBHOOK_HOSTS=None)
    response = app.test_client().post(
        "/webhook/status?to=%2B34600111222&entry=1-0",
        base_url="http://10.0.0.7:8000",
        data={"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"},
        headers={"X-Twilio-Signature": "forged"},
    )
    assert response.status_code == 403
    (line,) = entries(json_lines, "bot.signature")
    assert line["level"] == "WARNING"
    checked = "https://bot.example.com/webhook/status?to=+34*****222&entry=1-0"  # %2B decoded, then masked
    assert line["msg"] == f"signature refused: wrong X-Twilio-Signature; checked {checked}"
    assert "600111" not in json_lines.getvalue()
    get_services(app).redis.close()


@pytest.mark.parametrize(
    "settings",
    [{"PUBLIC_BASE_URL": PUBLIC, "WEBHOOK_HOSTS": None}, {"WEBHOOK_HOSTS": "bot.example.com"}],
    ids=["public base url", "webhook hosts"],
)
def test_flask_chat_signs_for_the_deployments_own_url(redis_server: RedisServer, settings: dict[str, Any]) -> None:
    app = real_app(redis_server, **settings)
    result = app.test_cli_runner().invoke(args=["chat", "--name", "Ana"], input="hi\n")
    assert result.exit_code == 0, result.output
    assert "bot> Hi Ana! 👋" in result.output and "[403]" not in result.output
    get_services(app).redis.close()


@pytest.mark.parametrize(
    "value", ["https://bot.example.com", "bot.example.com/webhook", "bot.example.com:0", "bot..example.com", ","]
)
def test_webhook_hosts_are_host_names(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(app_config(WEBHOOK_HOSTS=value))
    assert caught.value.setting == "WEBHOOK_HOSTS"
    assert "must be host or host:port names" in str(caught.value)

"""Start-up: defaults, then .env and the environment, then test overrides; bad values stop it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot import create_app, get_services
from bot.config import SAMPLE_AUTH_TOKEN, Settings
from bot.errors import ConfigError

from .conftest import app_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot"):
        app = create_app({"TESTING": True})
    services = get_services(app)
    settings = services.settings
    assert settings.session_ttl_seconds == 1800
    assert settings.default_language == "en"
    assert settings.redis_key_prefix == "tapbook"
    assert settings.redis_socket_timeout <= 1 and settings.redis_connect_timeout <= 1
    assert settings.public_base_url is None
    assert services.embedded
    assert "EMBEDDED IN-MEMORY store" in caplog.text
    assert "NOT shared between processes and is LOST on restart" in caplog.text


def test_environment_then_test_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_TTL_SECONDS", "900")
    monkeypatch.setenv("DEFAULT_LANGUAGE", "es")
    settings = get_services(create_app({"TESTING": True, "DEFAULT_LANGUAGE": "pt"})).settings
    assert (settings.session_ttl_seconds, settings.default_language) == (900, "pt")


def test_a_dotenv_file_is_read_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEFAULT_LANGUAGE=es\nREDIS_KEY_PREFIX=salon\nUNRELATED=1\n")
    monkeypatch.setenv("REDIS_KEY_PREFIX", "clinic")
    settings = get_services(create_app({"TESTING": True})).settings
    assert (settings.default_language, settings.redis_key_prefix) == ("es", "clinic")


def test_the_redis_client_is_built_once_with_short_timeouts(redis_server) -> None:  # type: ignore[no-untyped-def]
    app = create_app(app_config(REDIS_URL=redis_server.url))
    client = get_services(app).redis
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (1.0, 1.0)
    assert not get_services(app).embedded
    assert get_services(app).redis is client
    client.close()


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("SESSION_TTL_SECONDS", "abc", "must be a number between 60 and 604800 (got 'abc')"),
        ("SESSION_TTL_SECONDS", "10", "must be between 60 and 604800 (got 10)"),
        ("REDIS_SOCKET_TIMEOUT", "-1", "must be between 0.01 and 30"),
        ("REDIS_URL", "http://localhost:6379", "must start with redis://, rediss:// or unix://"),
        ("REDIS_KEY_PREFIX", "my prefix{", "must be 1-32 letters, digits"),
        ("DEFAULT_LANGUAGE", "fr", "'fr' is not one of en, es, pt"),
        ("PUBLIC_BASE_URL", "bot.example.com", "must be an http(s) URL"),
        ("PUBLIC_BASE_URL", "https://bot.example.com/?x=1", "must not carry a query string"),
        ("TWILIO_VALIDATE_SIGNATURE", "maybe", "must be true, false or auto"),
        ("TRUSTED_PROXY_HOPS", "9", "must be between 0 and 5"),
        ("LOG_LEVEL", "LOUD", "must be DEBUG, INFO, WARNING or ERROR"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        create_app({"TESTING": True})
    assert caught.value.setting == key
    message = str(caught.value)
    assert message.startswith(f"tapbook: invalid configuration: {key}: ")
    assert complaint in message
    assert "\n" not in message


def test_signature_checks_on_without_a_token_stop_start_up() -> None:
    with pytest.raises(ConfigError) as caught:
        create_app()
    assert caught.value.setting == "TWILIO_AUTH_TOKEN"
    with pytest.raises(ConfigError):
        create_app({"TESTING": True, "TWILIO_VALIDATE_SIGNATURE": "true"})


def test_the_sample_token_is_refused_next_to_a_real_redis() -> None:
    with pytest.raises(ConfigError) as caught:
        create_app({"TWILIO_AUTH_TOKEN": SAMPLE_AUTH_TOKEN, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert caught.value.setting == "TWILIO_AUTH_TOKEN"


def test_production_start_up_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SESSION_TTL_SECONDS": "soon", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "tapbook: invalid configuration: SESSION_TTL_SECONDS: must be a number between 60 and 604800 (got 'soon')"
    ]


def test_the_settings_page_lists_every_setting() -> None:
    page = (ROOT / "docs" / "settings.md").read_text()
    missing = [key for key in [*Settings.keys()] if f"`{key}`" not in page]
    assert not missing


def test_the_sample_salon_is_the_default_catalog() -> None:
    catalog = get_services(create_app({"TESTING": True})).business().catalog
    assert catalog.business.name == "Bella Hair Studio"
    assert catalog.service("cut") is not None


def test_a_wrong_catalog_value_stops_start_up_naming_the_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sample = (ROOT / "bot" / "booking" / "sample_salon.toml").read_text()
    broken = tmp_path / "salon.toml"
    broken.write_text(sample.replace("minutes = 30\ncapacity = 1", "minutes = 0\ncapacity = 1", 1))
    monkeypatch.setenv("BOT_CATALOG", str(broken))
    with pytest.raises(ConfigError) as caught:
        create_app({"TESTING": True})
    assert caught.value.setting == "BOT_CATALOG"
    assert "services[0].minutes" in str(caught.value)
    assert "\n" not in str(caught.value)

"""The newcomer's terminal chat: real signed requests through the app, replies printed."""

from __future__ import annotations

from bot import create_app

from .conftest import app_config


def test_chat_talks_to_the_bot_through_the_signed_webhook() -> None:
    app = create_app(app_config())
    result = app.test_cli_runner().invoke(args=["chat", "--name", "Ana"], input="hi\n1\n2\nhola\n")
    assert result.exit_code == 0, result.output
    assert "bot> Hi Ana! 👋" in result.output
    assert "1. Language" in result.output
    assert "2. Español" in result.output
    assert "¡Hecho! A partir de ahora te escribiré en español." in result.output
    assert "[403]" not in result.output


def test_chat_can_pose_as_a_spanish_business_number() -> None:
    app = create_app(app_config())
    result = app.test_cli_runner().invoke(args=["chat", "--lang", "es"], input="hi\n")
    assert "bot> ¡Hola, Alex! 👋" in result.output

"""tapbook: a WhatsApp quick-booking bot behind a Twilio webhook."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import admin, bodies, cli, feeds, health, logs, metrics, preview, webhook
from .channels.cli import templates
from .config import Settings, check_consistency, layered_config
from .i18n import Catalogs
from .outbox import status
from .outbox.worker import worker_command
from .services import build_services, get_services, init_app

__all__ = ["create_app", "get_services"]

#: Twilio posts a few kB at most; anything far larger is refused with 413 before parsing (chunked too).
MAX_CONTENT_LENGTH = 64 * 1024


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then ``.env`` and the environment, then ``test_config``.

    ``test_config`` may also carry ``CLOCK`` (a callable returning an aware datetime) and
    ``CATALOG`` (a :class:`~bot.booking.catalog.Catalog` instead of the ``BOT_CATALOG`` file)
    and ``TWILIO_HTTP_CLIENT`` (a ``twilio.http.HttpClient`` for the Twilio REST client), and
    ``OUTBOX_CLOCK`` (the outbox's clock: ``CLOCK`` unless given; None for the Redis server's, as
    in production).
    Invalid settings raise :class:`~bot.errors.ConfigError` (a one-line ``SystemExit``).
    """
    app = Flask(__name__)
    app.config.from_mapping(MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH, MAX_FORM_MEMORY_SIZE=MAX_CONTENT_LENGTH)
    app.config.update(layered_config(os.environ, Path.cwd() / ".env", test_config))
    settings = Settings.from_mapping(app.config)
    production = settings.redis_mode != "embedded" and not (app.debug or app.testing)
    logs.configure(settings.log_level, logs.choose_format(settings.log_format, production=production))
    metrics.check_mode()

    catalogs = Catalogs.load()
    signature_checks = check_consistency(settings, languages=catalogs.languages, lenient_mode=app.debug or app.testing)
    init_app(
        app,
        build_services(
            settings,
            catalogs,
            signature_checks=signature_checks,
            clock=app.config.get("CLOCK"),
            catalog=app.config.get("CATALOG"),
            twilio_http=app.config.get("TWILIO_HTTP_CLIENT"),
            outbox_clock=app.config.get("OUTBOX_CLOCK", "same"),
        ),
    )
    if settings.trusted_proxy_hops:
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]

    bodies.init_app(app)
    app.register_blueprint(webhook.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(status.bp)
    metrics.init_app(app)
    admin.init_app(app)
    preview.init_app(app)
    feeds.init_app(app)
    cli.init_app(app)
    app.cli.add_command(templates)
    app.cli.add_command(worker_command)
    return app

"""The clients and long-lived objects of one app, built once in the factory.

They live in ``app.extensions["tapbook"]`` and are reached through :func:`get_services`,
never through module globals (the Flask-Limiter pattern).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from flask import Flask, current_app
from twilio.http import HttpClient
from twilio.rest import Client

from .booking.catalog import SAMPLE_CATALOG, Catalog, load_catalog
from .booking.desk import BookingDesk
from .booking.store import BookingStore
from .channels import TwimlChannel
from .channels.content import ContentChannel
from .channels.twilio import build_client
from .config import Settings
from .connections import connect
from .durability import warn_if_not_durable
from .engine import Conversation
from .flows import build_registry
from .i18n import Catalogs
from .outbox import Outbox
from .signature import SignatureCheck
from .stats import SharedCounts, Stats
from .store import SessionStore

EXTENSION = "tapbook"
log = logging.getLogger(__name__)

EMBEDDED_WARNING = """
!!! REDIS_URL is not set: tapbook is running on an EMBEDDED IN-MEMORY store. !!!
!!! State is NOT shared between processes and is LOST on restart.          !!!
!!! Fine for trying the bot; set REDIS_URL for anything real.              !!!"""


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    embedded: bool
    catalogs: Catalogs
    catalog: Catalog
    stats: Stats
    store: SessionStore
    desk: BookingDesk
    conversation: Conversation
    signature: SignatureCheck
    clock: Callable[[], datetime]
    #: the durable outbox of Content API messages (see bot.outbox)
    outbox: Outbox
    #: Twilio REST client, when TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are set
    twilio: Client | None


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_redis(settings: Settings) -> tuple[redis.Redis, bool]:
    """The configured Redis (one server, a Cluster or Sentinel: :func:`bot.connections.connect`),
    or an embedded fakeredis server when none is configured."""
    if settings.redis_mode == "embedded":
        import fakeredis

        return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True), True
    return connect(settings), False  # type: ignore[return-value]  # a Cluster answers the same commands


def build_services(
    settings: Settings,
    catalogs: Catalogs,
    *,
    signature_checks: bool,
    clock: Callable[[], datetime] | None,
    catalog: Catalog | None = None,
    twilio_http: HttpClient | None = None,
) -> Services:
    """Everything a request needs, built once. ``catalog`` (tests) replaces ``BOT_CATALOG``."""
    catalog = catalog or load_catalog(settings.bot_catalog or SAMPLE_CATALOG, languages=catalogs.languages)
    client, embedded = build_redis(settings)
    if embedded:
        log.warning(EMBEDDED_WARNING)
    else:
        warn_if_not_durable(client)
    if not signature_checks:
        log.warning("X-Twilio-Signature checks are OFF: anyone can post to /webhook")
    stats = Stats(shared=SharedCounts(client, f"{settings.redis_key_prefix}:outbox-totals"))
    store = SessionStore(
        client,
        prefix=settings.redis_key_prefix,
        session_ttl=settings.session_ttl_seconds,
        profile_ttl=settings.profile_ttl_seconds,
        dedupe_ttl=settings.dedupe_ttl_seconds,
    )
    clock = clock or utc_now
    desk = BookingDesk(
        catalog, BookingStore(client, prefix=settings.redis_key_prefix, business=catalog.business.id), stats
    )
    conversation = Conversation(
        store,
        build_registry(),
        catalogs,
        stats,
        desk=desk,
        default_language=settings.default_language,
        clock=clock,
        channel=ContentChannel() if settings.content_api else TwimlChannel(),
    )
    signature = SignatureCheck(
        settings.twilio_auth_token,
        enabled=signature_checks,
        public_base_url=settings.public_base_url,
        hosts=settings.webhook_hosts,
    )
    return Services(
        settings,
        client,
        embedded,
        catalogs,
        catalog,
        stats,
        store,
        desk,
        conversation,
        signature,
        clock,
        outbox=Outbox(client, prefix=settings.redis_key_prefix, clock=clock),
        twilio=build_client(settings, twilio_http),
    )


def init_app(app: Flask, services: Services) -> None:
    app.extensions[EXTENSION] = services


def get_services(app: Flask | None = None) -> Services:
    """The current app's services (like flaskr's ``get_db``)."""
    return (app or current_app).extensions[EXTENSION]

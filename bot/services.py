"""The clients and long-lived objects of one app, built once in the factory.

They live in ``app.extensions["tapbook"]`` and are reached through :func:`get_services`,
never through module globals (the Flask-Limiter pattern).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
from flask import Flask, current_app
from twilio.http import HttpClient
from twilio.rest import Client

from .booking.catalog import SAMPLE_CATALOG, Catalog, check_businesses, load_catalogs
from .channels.approvals import Approvals
from .channels.twilio import build_client
from .config import Settings
from .connections import connect
from .durability import warn_if_not_durable
from .engine import Conversation
from .errors import ConfigError
from .flows import build_registry
from .i18n import Catalogs
from .keys import SharedKeys
from .lua import Scripts
from .outbox import Outbox
from .signature import SignatureCheck
from .stats import SharedCounts, Stats
from .store import TapStore
from .tenants import Directory, Tenant, build_tenant
from .upgrade import detect

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
    #: the businesses served, by id and by number
    directory: Directory
    stats: Stats
    store: TapStore
    conversation: Conversation
    signature: SignatureCheck
    clock: Callable[[], datetime]
    #: the durable outbox of Content API messages of each business, by id (see bot.outbox)
    outboxes: dict[str, Outbox]
    scripts: Scripts
    shared_keys: SharedKeys
    #: Twilio REST client, when TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are set
    twilio: Client | None
    #: a new Twilio REST client (the worker's threads each get their own), or None as above
    new_twilio: Callable[[], Client | None]
    #: WhatsApp's approval of the templates the business starts conversations with
    approvals: Approvals
    #: numbers no business claims, and when a message to each was last logged as a WARNING
    unrouted_warned: dict[str, float] = field(default_factory=dict)

    def business(self, business_id: str | None = None) -> Tenant:
        """The business ``business_id``, or the only one; ConfigError-free lookups for commands."""
        shop = self.directory.get(business_id) if business_id else self.directory.only
        if shop is None:
            raise LookupError(business_id or "")
        return shop


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_redis(settings: Settings) -> tuple[redis.Redis, bool]:
    """The configured Redis (one server, a Cluster or Sentinel: :func:`bot.connections.connect`),
    or an embedded fakeredis server when none is configured."""
    if settings.redis_mode == "embedded":
        import fakeredis

        return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True), True
    return connect(settings), False  # type: ignore[return-value]  # a Cluster answers the same commands


def load_businesses(
    settings: Settings, catalogs: Catalogs, given: Catalog | Sequence[Catalog] | None
) -> list[tuple[Path, Catalog]]:
    """``given`` (tests) or ``BOT_CATALOG``'s catalogs (the sample salon when unset), checked."""
    if given is None:
        return list(load_catalogs(settings.bot_catalog or SAMPLE_CATALOG, languages=catalogs.languages))
    loaded: list[tuple[Path, Catalog]] = [
        (Path(f"<catalog {c.business.id}>"), c) for c in ([given] if isinstance(given, Catalog) else given)
    ]
    check_businesses(loaded)
    return loaded


def build_services(
    settings: Settings,
    catalogs: Catalogs,
    *,
    signature_checks: bool,
    clock: Callable[[], datetime] | None,
    catalog: Catalog | Sequence[Catalog] | None = None,
    twilio_http: HttpClient | None = None,
    outbox_clock: Callable[[], datetime] | None | str = "same",
) -> Services:
    """Everything a request needs, built once. ``catalog`` (tests: one or several) replaces ``BOT_CATALOG``.

    ``outbox_clock``: the outbox's clock; ``"same"`` (the default) is ``clock``, and None (what
    production gets, ``clock`` being None too) is the Redis server's."""
    businesses = load_businesses(settings, catalogs, catalog)
    if len(businesses) > 1 and settings.admin_password:
        raise ConfigError("ADMIN_PASSWORD", "is for one business; with several, set ADMIN_PASSWORD_<ID> for each")
    client, embedded = build_redis(settings)
    if embedded:
        log.warning(EMBEDDED_WARNING)
    else:
        warn_if_not_durable(client)
    if not signature_checks:
        log.warning("X-Twilio-Signature checks are OFF: anyone can post to /webhook")
    shared_keys = SharedKeys(settings.redis_key_prefix)
    stats = Stats(shared=SharedCounts(client, shared_keys.outbox_totals))
    scripts = Scripts(client)
    tenants = [
        build_tenant(
            c, client=client, scripts=scripts, settings=settings, catalogs=catalogs, single=len(businesses) == 1, file=f
        )
        for f, c in businesses
    ]
    detect(client, tenants, settings.redis_key_prefix)
    for shop in tenants:
        stats.add_business(shop.id)
    directory = Directory(tenants)
    outboxes_clock = clock if outbox_clock == "same" else outbox_clock
    assert not isinstance(outboxes_clock, str), outbox_clock
    clock = clock or utc_now
    store = TapStore(
        client,
        scripts,
        session_ttl=settings.session_ttl_seconds,
        profile_ttl=settings.profile_ttl_seconds,
        dedupe_ttl=settings.dedupe_ttl_seconds,
        redis_time=outboxes_clock is None,
        bell=shared_keys.outbox_bell,
    )
    conversation = Conversation(store, build_registry(), catalogs, stats, clock=clock)
    signature = SignatureCheck(
        settings.twilio_auth_token,
        enabled=signature_checks,
        public_base_url=settings.public_base_url,
        hosts=settings.webhook_hosts,
    )
    return Services(
        settings=settings,
        redis=client,
        embedded=embedded,
        catalogs=catalogs,
        directory=directory,
        stats=stats,
        store=store,
        conversation=conversation,
        signature=signature,
        clock=clock,
        outboxes={
            shop.id: Outbox(client, shop.keys, clock=outboxes_clock, bell=shared_keys.outbox_bell) for shop in tenants
        },
        scripts=scripts,
        shared_keys=shared_keys,
        twilio=build_client(settings, twilio_http),
        new_twilio=lambda: build_client(settings, twilio_http),
        approvals=Approvals(client, shared_keys.template_approvals),
    )


def init_app(app: Flask, services: Services) -> None:
    app.extensions[EXTENSION] = services


def get_services(app: Flask | None = None) -> Services:
    """The current app's services (like flaskr's ``get_db``)."""
    return (app or current_app).extensions[EXTENSION]

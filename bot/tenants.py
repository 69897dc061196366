"""The businesses one deployment serves, and which one a message is for.

``BOT_CATALOG`` names one TOML file (one business) or a folder of them (one business each, see
:func:`bot.booking.catalog.load_catalogs`). A message selects its business by the number it was
written to (the inbound ``To`` without ``whatsapp:``); a single catalog without ``numbers``
answers every number, as release 1 did. Everything else a business needs at run time is built
once, here: its keys, its bookings, its slot rules, its languages, its channel and sender.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .booking.availability import Availability
from .booking.catalog import Business, Catalog
from .booking.store import BookingStore
from .channels import Channel, TwimlChannel
from .channels.content import ContentChannel
from .config import Settings
from .errors import ConfigError
from .i18n import Catalogs
from .keys import BusinessKeys, LegacyKeys, SharedKeys
from .lua import Scripts

log = logging.getLogger(__name__)


@dataclass
class Tenant:
    """One business at run time."""

    catalog: Catalog
    keys: BusinessKeys
    bookings: BookingStore
    availability: Availability
    #: the languages it speaks, its default first
    languages: tuple[str, ...]
    channel: Channel
    #: who sends its Content API replies when the business names nobody: the number written to
    #: (None), or the deployment's TWILIO_MESSAGING_SERVICE_SID / TWILIO_FROM
    fallback_sender: str | None = None
    #: the owner's /admin password: plain (ADMIN_PASSWORD…) or a werkzeug hash from the catalog
    admin_password: str | None = None
    admin_password_hash: str | None = None
    file: Path | None = None
    #: per process: whether release 1's keys may still hold some of its data (see bot.upgrade)
    upgrading: bool = field(default=False)

    @property
    def id(self) -> str:
        return self.catalog.business.id

    @property
    def business(self) -> Business:
        return self.catalog.business

    @property
    def default_language(self) -> str:
        return self.languages[0]

    @property
    def legacy(self) -> LegacyKeys | None:
        return self.bookings.legacy

    def pick_language(self, code: str | None, catalogs: Catalogs) -> str | None:
        """The language this business speaks for a requested code (``es-ES`` → ``es``), or None."""
        picked = catalogs.pick(code)
        return picked if picked in self.languages else None

    def reply_sender(self, to: str) -> str | None:
        """Who sends the reply to a message written to ``to`` (``whatsapp:+E164``)."""
        if self.business.sender:
            return self.business.sender
        if self.business.numbers and to:
            return to if to.startswith("whatsapp:") else f"whatsapp:{to}"
        return self.fallback_sender

    @property
    def sender(self) -> str | None:
        """Who sends the business's own messages (a notice, not a reply): its sender, its first number,
        or the deployment's."""
        if self.business.sender:
            return self.business.sender
        if self.business.numbers:
            return f"whatsapp:{self.business.numbers[0]}"
        return self.fallback_sender

    def end_upgrade(self) -> None:
        """This business's data is all in this release's layout: stop reading release 1's keys."""
        if self.upgrading:
            log.info("business %s: upgrade from release 1 complete", self.id)
        self.upgrading = False
        self.bookings.legacy = None


class Directory:
    """The businesses by id and by number; :meth:`route` picks the one a message is for."""

    def __init__(self, tenants: list[Tenant]) -> None:
        if not tenants:
            raise ValueError("a deployment serves at least one business")
        self._by_id = {tenant.id: tenant for tenant in tenants}
        self._by_number = {number: tenant for tenant in tenants for number in tenant.business.numbers}
        self._catch_all = tenants[0] if len(tenants) == 1 and not tenants[0].business.numbers else None

    def __iter__(self) -> Iterator[Tenant]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)

    @property
    def only(self) -> Tenant | None:
        """The business, when there is exactly one."""
        return next(iter(self._by_id.values())) if len(self._by_id) == 1 else None

    def get(self, business_id: str) -> Tenant | None:
        return self._by_id.get(business_id)

    def route(self, to: str) -> Tenant | None:
        """The business a message written to ``to`` (``whatsapp:+E164`` or ``+E164``) is for."""
        if self._catch_all is not None:
            return self._catch_all
        return self._by_number.get(to.removeprefix("whatsapp:"))


def admin_password_setting(business_id: str) -> str:
    """``salon-bella`` → ``ADMIN_PASSWORD_SALON_BELLA``."""
    return "ADMIN_PASSWORD_" + business_id.upper().replace("-", "_")


def build_tenant(
    catalog: Catalog,
    *,
    client: redis.Redis,
    scripts: Scripts,
    settings: Settings,
    catalogs: Catalogs,
    single: bool,
    file: Path | None = None,
) -> Tenant:
    business = catalog.business
    keys = BusinessKeys(settings.redis_key_prefix, business.id)
    languages = business.languages or (
        settings.default_language,
        *sorted(catalogs.languages - {settings.default_language}),
    )
    if business.hold_minutes * 60 >= settings.session_ttl_seconds:
        raise ConfigError(
            "SESSION_TTL_SECONDS",
            f"must be longer than {business.id}'s hold_minutes ({business.hold_minutes} min): a conversation "
            "must outlive the time it holds",
        )
    fallback = settings.twilio_messaging_service_sid or settings.twilio_from
    rest_api = bool(settings.twilio_account_sid and settings.twilio_auth_token)
    buttons = rest_api and bool(business.sender or business.numbers or fallback)
    password = settings.admin_passwords.get(admin_password_setting(business.id))
    if password is None and single:
        password = settings.admin_password
    return Tenant(
        catalog=catalog,
        keys=keys,
        bookings=BookingStore(
            client,
            keys,
            scripts,
            LegacyKeys(settings.redis_key_prefix, business.id),
            bell=SharedKeys(settings.redis_key_prefix).outbox_bell,
        ),
        availability=Availability(business),
        languages=tuple(languages),
        channel=ContentChannel() if buttons else TwimlChannel(),
        fallback_sender=fallback,
        admin_password=password,
        admin_password_hash=business.admin_password_hash,
        file=file,
    )

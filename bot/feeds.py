"""The owner's calendar feed: a business's bookings as an iCalendar file at a secret URL.

``GET /calendar/<token>.ics`` answers a read-only calendar (RFC 5545, built with ``icalendar``)
that a calendar app subscribes to: one event per booking from 30 days ago to the business's
horizon, in its time zone (with its ``VTIMEZONE``), the customer's name and full phone included
(the URL is the owner's secret). An event's ``UID`` is ``<REF>@<business>.tapbook``; a cancelled
booking stays as ``STATUS:CANCELLED``, and so does the old booking of a move (the new one has its
own REF, so its own event). ``SEQUENCE`` is derived from the booking's own fields: 0 until it is
changed, then the seconds from its creation to its change (at least 1), so it only grows.

The token is random (``secrets.token_urlsafe(24)``). The business keeps its current token in its
own key (``calendar-feed``, so the owner can be shown the URL again); a shared hash
(``<prefix>:calendar-feeds``) maps the token's SHA-256 to the business, so a request finds it in
one read, without a SCAN, and a Redis dump of the shared hash alone does not give the URL. The
business's key is the authority: a request is answered only if the business still names that
token, so a rotation (a new token) turns the old URL away at once, whatever is left behind.

Commands: ``flask --app wsgi calendar url|rotate [--business ID]`` (:mod:`bot.commands.calendar`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import redis
from flask import Blueprint, Flask, Response
from icalendar import Calendar, Event, Timezone
from icalendar.enums import STATUS, TRANSP

from .services import Services, get_services
from .tenants import Tenant

bp = Blueprint("feeds", __name__)
log = logging.getLogger(__name__)

#: how far back the feed goes (its horizon ahead is the business's ``horizon_days``)
PAST_DAYS = 30
#: how often calendar apps are asked to fetch it again (REFRESH-INTERVAL, X-PUBLISHED-TTL)
REFRESH = timedelta(minutes=5)
PRODID = "-//tapbook//calendar feed//EN"
#: the field of a business's ``calendar-feed`` hash that holds the token of its own feed
BUSINESS_FEED = "business"


def feed_path(token: str) -> str:
    return f"/calendar/{token}.ics"


def digest(token: str) -> str:
    """What the shared lookup stores instead of the token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class FeedOwner:
    """Whose feed a token opens: a business, or (once staff exist) one staff member's diary of it."""

    business: str
    staff: str | None = None

    @property
    def field(self) -> str:
        """Its field in the business's ``calendar-feed`` hash."""
        return BUSINESS_FEED if self.staff is None else f"staff:{self.staff}"

    def record(self) -> str:
        """Its value in the shared ``calendar-feeds`` hash."""
        return json.dumps({"business": self.business, **({"staff": self.staff} if self.staff else {})})

    @classmethod
    def parse(cls, value: str) -> FeedOwner | None:
        try:
            data = json.loads(value)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("business"), str):
            return None
        staff = data.get("staff")
        return cls(data["business"], staff if isinstance(staff, str) and staff else None)


# -- the token ---------------------------------------------------------------------------------
def feed_token(services: Services, shop: Tenant) -> str:
    """The business's current feed token, made (and stored) if it has none. Two or four round trips."""
    client, key = services.redis, shop.keys.calendar_feed
    current = client.hget(key, BUSINESS_FEED)
    if current:
        return str(current)
    token = secrets.token_urlsafe(24)
    lookup = services.shared_keys.calendar_feeds
    client.hset(lookup, digest(token), FeedOwner(shop.id).record())  # first: the business names it next
    if client.hsetnx(key, BUSINESS_FEED, token):
        log.info("calendar feed of %s: token created", shop.id)
        return token
    client.hdel(lookup, digest(token))  # another process made one first: theirs it is
    return feed_token(services, shop)


def rotate_feed_token(services: Services, shop: Tenant) -> str:
    """A new feed token for the business; its old URL answers 404 from now on. Four round trips."""
    client, key, lookup = services.redis, shop.keys.calendar_feed, services.shared_keys.calendar_feeds
    token = secrets.token_urlsafe(24)
    client.hset(lookup, digest(token), FeedOwner(shop.id).record())
    old = client.hget(key, BUSINESS_FEED)
    client.hset(key, BUSINESS_FEED, token)  # from here on only the new token is answered
    if old:
        client.hdel(lookup, digest(str(old)))
    log.info("calendar feed of %s: token rotated", shop.id)
    return token


def feed_url(services: Services, shop: Tenant) -> str:
    """The feed's URL: ``PUBLIC_BASE_URL`` and the path, or the path alone when that is unset."""
    return url_of(services, feed_token(services, shop))


def url_of(services: Services, token: str) -> str:
    """The URL of the feed of ``token`` (as :func:`feed_url`)."""
    return (services.settings.public_base_url or "") + feed_path(token)


def resolve(services: Services, token: str) -> tuple[Tenant, FeedOwner] | None:
    """The business (and whose feed) ``token`` opens, or None: unknown, rotated away, or of a
    business this deployment no longer serves. Two round trips (one for an unknown token)."""
    wanted = digest(token)
    record = services.redis.hget(services.shared_keys.calendar_feeds, wanted)
    owner = FeedOwner.parse(str(record)) if record else None
    shop = services.directory.get(owner.business) if owner else None
    if owner is None or shop is None:
        return None
    current = services.redis.hget(shop.keys.calendar_feed, owner.field)
    if not current or not hmac.compare_digest(digest(str(current)), wanted):
        services.redis.hdel(services.shared_keys.calendar_feeds, wanted)  # left behind by a rotation
        return None
    return shop, owner


# -- the calendar ------------------------------------------------------------------------------
def sequence(data: dict[str, str]) -> int:
    """The event's SEQUENCE: 0 for a booking never changed, else the seconds from its creation to
    its change (at least 1). A booking changes once at most (cancelled or moved), so it only grows."""
    changed = data.get("changed_at", "")
    if not changed.isdigit():
        return 0
    created = data.get("created_at", "")
    return max(1, int(changed) - int(created)) if created.isdigit() else 1


def window(services: Services, shop: Tenant) -> tuple[datetime, datetime]:
    """From local midnight 30 days ago to the end of the business's horizon."""
    today = shop.availability.local_day(services.clock())
    return _midnight(shop, today - timedelta(days=PAST_DAYS)), _midnight(
        shop, today + timedelta(days=shop.business.horizon_days + 1)
    )


def _midnight(shop: Tenant, day: date) -> datetime:
    return datetime.combine(day, time(0), shop.business.timezone)


def booking_event(shop: Tenant, data: dict[str, str], stamp: datetime) -> Event:
    """One booking (its stored hash) as a VEVENT in the business's time zone."""
    tz = shop.business.timezone
    ref = data["ref"]
    service = shop.catalog.service(data.get("service", ""))
    what = service.name(shop.default_language) if service else data.get("service", "")
    name = data.get("name", "")
    status = data.get("status", "")
    lines = [f"Booking {ref}", f"Customer: {name or '—'}", f"Phone: {data.get('phone') or '—'}"]
    if status == "cancelled":
        lines.append("Cancelled")
    elif status == "rescheduled":
        lines.append(f"Moved to {data.get('rescheduled_to') or 'another time'}")
    if data.get("rescheduled_from"):
        lines.append(f"Moved from {data['rescheduled_from']}")
    live = status == "confirmed"
    changed = data.get("changed_at") or data.get("created_at") or ""
    event = Event.new(
        uid=f"{ref}@{shop.id}.tapbook",
        stamp=stamp,
        start=datetime.fromtimestamp(int(data["start"]), tz),
        end=datetime.fromtimestamp(int(data["end"]), tz),
        summary=f"{what} — {name}" if name else what,
        description="\n".join(lines),
        sequence=sequence(data),
        status=STATUS.CONFIRMED if live else STATUS.CANCELLED,
        transparency=TRANSP.OPAQUE if live else TRANSP.TRANSPARENT,
        last_modified=datetime.fromtimestamp(int(changed), UTC) if changed.isdigit() else None,
    )
    return event


def calendar(services: Services, shop: Tenant) -> Calendar:
    """The business's feed: every booking (any status) from 30 days ago to its horizon. Two round trips."""
    start, end = window(services, shop)
    refs = shop.bookings.refs_between(int(start.timestamp()), int(end.timestamp()))
    records = [data for data in shop.bookings.bookings(refs) if data.get("ref") and data.get("start")]
    tz = shop.business.timezone
    cal = Calendar.new(
        name=shop.business.name,
        description=f"Bookings of {shop.business.name} (tapbook)",
        prodid=PRODID,
        uid=f"{shop.id}.tapbook",
        method="PUBLISH",
        calscale="GREGORIAN",
    )
    cal.add("X-WR-TIMEZONE", str(tz))
    cal.add("REFRESH-INTERVAL", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("X-PUBLISHED-TTL", REFRESH, parameters={"VALUE": "DURATION"})
    # the zone's rules over the feed's span and a year either side (a subscription is read later)
    first, last = start.date() - timedelta(days=366), end.date() + timedelta(days=366)
    cal.add_component(Timezone.from_tzinfo(tz, tzid=str(tz), first_date=first, last_date=last))
    stamp = services.clock().astimezone(UTC).replace(microsecond=0)
    for data in records:
        cal.add_component(booking_event(shop, data, stamp))
    return cal


# -- the URL -----------------------------------------------------------------------------------
def _not_found() -> Response:
    return Response("Not found\n", 404, mimetype="text/plain", headers={"Cache-Control": "no-store"})


@bp.errorhandler(redis.RedisError)
def redis_down(exc: redis.RedisError) -> Response:
    log.warning("calendar feed: redis error: %s: %s", type(exc).__name__, exc)
    headers = {"Cache-Control": "no-store", "Retry-After": "60"}
    return Response("The booking store cannot be reached right now.\n", 503, mimetype="text/plain", headers=headers)


@bp.get("/calendar/<token>.ics")
def feed(token: str) -> Response:
    services = get_services()
    found = resolve(services, token)
    if found is None:
        return _not_found()
    shop, owner = found
    if owner.staff is not None:
        return _not_found()  # staff feeds come with staff: none is made today
    return Response(
        calendar(services, shop).to_ical(),
        200,
        content_type="text/calendar; charset=utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'inline; filename="{shop.id}.ics"',
            "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex",
        },
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

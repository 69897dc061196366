"""What a business keeps about one customer: everything, for a subject-access request (GDPR
art. 15), and erasure (art. 17).

Most of it is named by the customer's phone: the conversation, the language choice, the messages
answered, the outbox and its delivery records, the window stamp, the active-bookings index, the
opt-out. Three kinds are not, and are found by walking them (commands only, never a request):
bookings (the business's index lists them all; ``HGETALL``s pipelined 500 at a time), the
business's list of messages given up (a few hundred members at most), and the reply records
(``msg:<MessageSid>``, kept ``DEDUPE_TTL_SECONDS``, one minute by default; ``SCAN`` of the business's
own ``msg:*`` keys, each deleted when it names the customer's phone or one of their names).

Erasure keeps the bookings, so the diary and its counts stay right and a booked time stays taken
until the owner cancels it: their phone becomes ``erased`` and their name empty. Everything else is
deleted. Every key is under the business's hash tag: on Redis Cluster it all lives on one node.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from .tenants import Tenant

#: the phone a booking keeps once its customer was forgotten
ERASED = "erased"
_BATCH = 500


@dataclass
class Forgotten:
    """What :func:`forget` did for one business."""

    business: str
    #: keys named by the phone, and its entries in the business's doorbell and opt-outs
    keys_deleted: int = 0
    bookings_anonymised: int = 0
    undelivered_removed: int = 0
    replies_deleted: int = 0
    names: set[str] = field(default_factory=set)

    @property
    def anything(self) -> bool:
        return bool(self.keys_deleted or self.bookings_anonymised or self.undelivered_removed or self.replies_deleted)


def _phone_keys(shop: Tenant, phone: str) -> dict[str, str]:
    keys = shop.keys
    named = {
        "session": keys.session(phone),
        "profile": keys.profile(phone),
        "answered": keys.answered(phone),
        "outbox": keys.outbox(phone),
        "window": keys.window(phone),
        "delivery": keys.delivery(phone),
        "lease": keys.lease(phone),
        "active_bookings": keys.customer(phone),
    }
    if shop.legacy is not None:  # release 1's keys of a business still upgrading
        named["release1_session"] = shop.legacy.session(phone)
        named["release1_profile"] = shop.legacy.profile(phone)
    return named


def bookings_of(client: redis.Redis, shop: Tenant, phone: str) -> list[dict[str, str]]:
    """Every booking of ``phone`` with the business (any status), by start."""
    refs = cast(list[str], client.zrange(shop.keys.bookings, 0, -1))
    found: list[dict[str, str]] = []
    for i in range(0, len(refs), _BATCH):
        pipe = client.pipeline(transaction=False)
        for ref in refs[i : i + _BATCH]:
            pipe.hgetall(shop.keys.booking(ref))
        found += [data for data in pipe.execute() if data.get("phone") == phone]
    return found


def _undelivered_of(client: redis.Redis, shop: Tenant, phone: str) -> list[str]:
    members = cast(list[str], client.zrange(shop.keys.undelivered, 0, -1))
    mine = []
    for member in members:
        try:
            if json.loads(member).get("phone") == phone:
                mine.append(member)
        except (ValueError, AttributeError):
            continue
    return mine


def _replies_naming(client: redis.Redis, shop: Tenant, needles: Iterable[str]) -> list[str]:
    """The business's reply records that mention any of ``needles``."""
    wanted = [needle for needle in needles if needle]
    found = []
    for key in client.scan_iter(match=shop.keys.message("*"), count=_BATCH):
        value = client.get(key)
        if value and any(needle in value for needle in wanted):
            found.append(key)
    return found


def export(client: redis.Redis, shop: Tenant, phone: str) -> dict[str, Any]:
    """Everything ``shop`` keeps about ``phone``, key by key (empty parts left out)."""
    named = _phone_keys(shop, phone)
    pipe = client.pipeline(transaction=False)
    for key in named.values():
        pipe.type(key)
    kinds = dict(zip(named, pipe.execute(), strict=True))
    pipe = client.pipeline(transaction=False)
    read: list[str] = []
    for part, kind in kinds.items():
        if kind == "zset":
            pipe.zrange(named[part], 0, -1, withscores=True)
        elif kind == "hash":
            pipe.hgetall(named[part])
        elif kind == "string":
            pipe.get(named[part])
        elif kind == "stream":
            pipe.xrange(named[part])
        else:
            continue
        read.append(part)
    pipe.hget(shop.keys.optout, phone)
    pipe.zscore(shop.keys.due, phone)
    *values, opted_out, due = pipe.execute()
    kept: dict[str, Any] = {"business": shop.id, "phone": phone}
    for part, value in zip(read, values, strict=True):
        if part == "answered":  # 48-bit ids of MessageSids and when: the count says it all
            kept["messages_answered"] = len(value)
        elif part == "outbox":
            kept["outbox"] = [{"id": entry_id, **fields} for entry_id, fields in value]
        elif value:
            kept[part] = dict(value) if isinstance(value, list) else value
    if opted_out:
        kept["opted_out_at"] = int(opted_out)
    if due is not None:
        kept["next_message_due_ms"] = int(due)
    bookings = bookings_of(client, shop, phone)
    if bookings:
        kept["bookings"] = bookings
    undelivered = _undelivered_of(client, shop, phone)
    if undelivered:
        kept["messages_given_up"] = [json.loads(member) for member in undelivered]
    names = {b["name"] for b in bookings if b.get("name")}
    replies = _replies_naming(client, shop, [phone, *names])
    if replies:
        kept["recent_replies"] = {key: client.get(key) for key in replies}
    return kept


def forget(client: redis.Redis, shop: Tenant, phone: str) -> Forgotten:
    """Erase ``phone`` from ``shop`` (see the module docstring); running it again finds nothing."""
    done = Forgotten(shop.id)
    bookings = bookings_of(client, shop, phone)
    done.names = {b["name"] for b in bookings if b.get("name")}
    replies = _replies_naming(client, shop, [phone, *done.names])
    undelivered = _undelivered_of(client, shop, phone)
    pipe = client.pipeline(transaction=False)
    for key in _phone_keys(shop, phone).values():
        pipe.delete(key)
    pipe.zrem(shop.keys.due, phone)
    pipe.hdel(shop.keys.optout, phone)
    done.keys_deleted = sum(pipe.execute())
    pipe = client.pipeline(transaction=False)
    for key in replies:
        pipe.delete(key)
    reminders = [f"{b['ref']}:{offset}" for b in bookings for offset in b.get("reminders", "").split(",") if offset]
    for booking in bookings:
        pipe.hset(shop.keys.booking(booking["ref"]), mapping={"phone": ERASED, "name": ""})
    if reminders:  # nobody to remind
        pipe.zrem(shop.keys.reminders, *reminders)
    if undelivered:
        pipe.zrem(shop.keys.undelivered, *undelivered)
    results = pipe.execute()
    done.replies_deleted = sum(results[: len(replies)])
    done.undelivered_removed = int(results[-1]) if undelivered else 0
    done.bookings_anonymised = len(bookings)
    return done

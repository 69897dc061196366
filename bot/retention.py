"""Bookings kept no longer than needed (GDPR art. 5(1)(e)).

``retention_days`` (catalog, default 365) after a booking, its customer's phone and name go, as
when the customer is forgotten (:mod:`bot.customers`): the booking itself stays, anonymous, so the
owner's counts and the diary's history stay right; it leaves the customer's index. A booking is
taken once it *started* ``retention_days`` + 1 days ago, so it has certainly ended
``retention_days`` ago (a service lasts less than a day).

The sweep walks the business's booking index in start order from a cursor (``…:retention``: the
start up to which every booking was looked at), at most ``budget`` bookings a run, in pipelined
round trips: never a ``KEYS`` or ``SCAN``, and bounded work however large the diary. The outbox
worker runs it every few minutes; ``flask customers retention`` runs it by hand or from cron (a
deployment without the worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import redis

from .booking.records import epoch
from .customers import ERASED
from .tenants import Tenant

BUDGET = 500


@dataclass
class Swept:
    business: str
    looked_at: int = 0
    anonymised: int = 0
    #: every booking old enough has been looked at (nothing more to do until time passes)
    caught_up: bool = True


def cutoff_s(shop: Tenant, now: datetime) -> int:
    """Bookings starting at or before this (epoch s) are past their retention."""
    return epoch(now - timedelta(days=shop.business.retention_days + 1))


def sweep(client: redis.Redis, shop: Tenant, now: datetime, budget: int = BUDGET) -> Swept:
    """Anonymise up to ``budget`` bookings past retention, from the cursor on."""
    keys, done = shop.keys, Swept(shop.id)
    cutoff = cutoff_s(shop, now)
    cursor = cast(str | None, client.get(keys.retention))
    low = int(cursor) if cursor else "-inf"
    found = cast(
        list[tuple[str, float]],
        client.zrangebyscore(keys.bookings, low, cutoff, start=0, num=budget, withscores=True),
    )
    # starts are whole seconds: all of the last second seen (the batch was not cut, or it is that
    # second whole) lets the cursor move past it; else that second is looked at again next time
    whole = len(found) < budget
    if not whole and int(found[-1][1]) == int(found[0][1]):  # a whole batch in one second: take it all
        second = found[0][1]
        found = cast(list[tuple[str, float]], client.zrangebyscore(keys.bookings, second, second, withscores=True))
        whole = True
    if not found:
        return done
    pipe = client.pipeline(transaction=False)
    for ref, _ in found:
        pipe.hmget(keys.booking(ref), "phone", "name")
    owners = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for (ref, _), (phone, name) in zip(found, owners, strict=True):
        if phone and phone != ERASED:
            pipe.hset(keys.booking(ref), mapping={"phone": ERASED, "name": ""})
            pipe.zrem(keys.customer(phone), ref)
            done.anonymised += 1
        elif name:
            pipe.hset(keys.booking(ref), "name", "")
            done.anonymised += 1
    last = int(found[-1][1])
    pipe.set(keys.retention, last + 1 if whole else last)
    pipe.execute()
    done.looked_at = len(found)
    done.caught_up = len(found) < budget
    return done

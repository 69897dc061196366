"""Time off the owner adds at run time (a closed afternoon, a day off): blocks of the diary.

A block is an entry of the occupancy hashes, like a booking's, on every resource of the business,
weighing more than any capacity: listings stop offering those times and the booking script
refuses them, with no change to either (they already count every entry). Entries are filed under
their start's local day, so a block over several days is one entry per day. The business's
``blocks`` hash keeps each block (times, reason, where its entries are) so it can be listed and
removed; adding or removing is one MULTI (every key under the business's hash tag: one slot).
A block over existing bookings does not cancel them: it reports them, for the owner to decide.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from .agenda import between
from .booking.records import Booking, epoch
from .keys import day_code, parse_day_code
from .services import Services
from .tenants import Tenant

#: what a block weighs in an occupancy entry: more than any capacity
WEIGHT = 1_000_000
PREFIX = "block:"


@dataclass(frozen=True)
class Block:
    id: str
    start: datetime
    end: datetime
    reason: str


def _pieces(shop: Tenant, start: datetime, end: datetime) -> list[tuple[str, int, int]]:
    """``[start, end)`` cut at local midnights: (day code, start, end) per local day it covers."""
    tz = shop.business.timezone
    pieces = []
    at = start
    while at < end:
        day = at.astimezone(tz).date()
        midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
        until = min(end, midnight)
        pieces.append((day_code(day), epoch(at), epoch(until)))
        at = until
    return pieces


def add_block(
    services: Services, shop: Tenant, start: datetime, end: datetime, reason: str
) -> tuple[Block, list[Booking]]:
    """Block ``[start, end)`` on every resource; the block and the bookings it covers (not cancelled)."""
    if end <= start:
        raise ValueError("a block must end after it starts")
    block = Block(secrets.token_hex(6), start, end, " ".join(reason.split())[:80])
    resources = sorted({service.resource for service in shop.catalog.services})
    places = []
    pipe = services.redis.pipeline(transaction=True)
    for code, a, b in _pieces(shop, start, end):
        day = parse_day_code(code)
        assert day is not None
        for resource in resources:
            pipe.hset(shop.keys.occupancy(resource, day), PREFIX + block.id, f"{a},{b},0,{WEIGHT}")
            places.append([resource, code])
    record = {"start": epoch(start), "end": epoch(end), "reason": block.reason, "places": places}
    pipe.hset(shop.keys.blocks, block.id, json.dumps(record, ensure_ascii=False))
    pipe.execute()
    covered = [
        b
        for b in between(shop, start - timedelta(days=1), end)
        if b.status == "confirmed" and b.start < end and start < b.end
    ]
    return block, covered


def remove_block(services: Services, shop: Tenant, block_id: str) -> bool:
    """Remove a block (its times are offered again); False when there is no such block."""
    raw = cast(str | None, services.redis.hget(shop.keys.blocks, block_id))
    if raw is None:
        return False
    record = json.loads(raw)
    pipe = services.redis.pipeline(transaction=True)
    for resource, code in record.get("places", []):
        day = parse_day_code(str(code))
        if day is not None:
            pipe.hdel(shop.keys.occupancy(str(resource), day), PREFIX + block_id)
    pipe.hdel(shop.keys.blocks, block_id)
    pipe.execute()
    return True


def blocks(services: Services, shop: Tenant) -> list[Block]:
    """Every block of the business, by start (one HGETALL: blocks are few)."""
    found = []
    for block_id, raw in cast(dict[str, str], services.redis.hgetall(shop.keys.blocks)).items():
        try:
            record = json.loads(raw)
            found.append(
                Block(
                    block_id,
                    datetime.fromtimestamp(int(record["start"]), UTC),
                    datetime.fromtimestamp(int(record["end"]), UTC),
                    str(record.get("reason", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(found, key=lambda block: block.start)

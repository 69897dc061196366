"""The key layout is read in one place (bot/keys.py) and documented from it: the table of
docs/architecture.md is rendered from ``LAYOUT``, and every key the running bot writes fits one of its rows."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import redis

from bot.keys import LAYOUT, BusinessKeys, describe, key_table

from .redis_server import RedisServer
from .test_cluster_slots import Recorder, run_the_product

ARCHITECTURE = Path(__file__).parents[1] / "docs" / "architecture.md"
#: what release 1 leaves that this release neither reads nor moves: they expire (60 s, 7 days)
RELEASE_1_TRANSIENT = re.compile(r"tapbook:(msg|delivery|status):")


def test_the_architecture_page_shows_the_key_table_of_the_code() -> None:
    page = ARCHITECTURE.read_text()
    shown = page.split("<!-- key-table -->\n", 1)[1].split("\n<!-- /key-table -->", 1)[0]
    assert shown == key_table(), "docs/architecture.md's key table is out of date: paste bot.keys.key_table()"


def test_every_key_of_a_business_carries_its_hash_tag() -> None:
    keys = BusinessKeys("tapbook", "salon-bella")
    built = [keys.session("+34600111222"), keys.message("SM" + "0" * 32), keys.occupancy("cut", date(2026, 1, 14))]
    built += [keys.booking("K7Q2MX"), keys.customer("+34600111222"), keys.bookings, keys.due, keys.layout]
    assert all(key.startswith("tapbook:{salon-bella}:") for key in built)
    assert all(describe(key, "tapbook") for key in built)


def test_every_key_the_bot_writes_is_documented(redis_server: RedisServer) -> None:
    """A booking, a move, a cancel, a failed owner login, button mode with its worker and callbacks, a
    cancel by the owner, and an upgrade from release 1: every key left behind fits a row of the table."""
    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    db.flushdb()
    run_the_product(redis_server, Recorder())
    keys = [key for key in db.scan_iter("*", count=1000) if not RELEASE_1_TRANSIENT.match(key)]
    assert len(keys) > 20
    undocumented = [key for key in keys if describe(key, "tapbook") is None]
    assert not undocumented, f"keys missing from bot.keys.LAYOUT: {undocumented}"
    unused = {row.pattern for row in LAYOUT} - {describe(key, "tapbook").pattern for key in keys}  # type: ignore[union-attr]
    assert unused == {"<prefix>:{<business>}:lease:<+E164>"}  # a worker's lease is released when it is done
    db.close()

"""``flask sessions stats``: a business's active conversations, walked with SCAN in batches."""

from __future__ import annotations

from collections import Counter

import click
from flask.cli import with_appcontext

from ..maintenance import session_stats
from ..services import get_services
from .common import Counting, business_option, pick_business, redis_errors_as_one_line, shared_store

group = click.Group("sessions", help="Statistics of a business's stored conversations.")


def _breakdown(counts: Counter[str]) -> str:
    """``menu 4, services 1``: most first, ties by name."""
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


@group.command("stats")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def stats(business_id: str | None) -> None:
    """Active sessions by step and language."""
    progress = Counting("Sessions scanned")
    shop = pick_business(business_id)
    found = session_stats(get_services().redis, shop, progress)
    progress.done()
    click.echo(f"Active sessions: {found.total}")
    click.echo(f"By step:         {_breakdown(found.steps)}")
    click.echo(f"By language:     {_breakdown(found.languages)}")

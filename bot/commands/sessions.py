"""``flask sessions stats|migrate``: the stored conversations, walked with SCAN in batches."""

from __future__ import annotations

from collections import Counter

import click
from flask.cli import with_appcontext

from ..maintenance import migrate_sessions, session_stats
from ..services import get_services
from ..sessions import CURRENT_VERSION
from .common import Counting, redis_errors_as_one_line, shared_store

group = click.Group("sessions", help="Statistics and eager migration of the stored conversations.")


def _breakdown(counts: Counter[str]) -> str:
    """``menu 4, services 1``: most first, ties by name."""
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


@group.command("stats")
@with_appcontext
@redis_errors_as_one_line
@shared_store
def stats() -> None:
    """Active sessions by step and language, and how many still need the current layout."""
    progress = Counting("Sessions scanned")
    services = get_services()
    found = session_stats(services.store, services.settings.default_language, progress)
    progress.done()
    click.echo(f"Active sessions: {found.total}")
    click.echo(f"By step:         {_breakdown(found.steps)}")
    click.echo(f"By language:     {_breakdown(found.languages)}")
    click.echo(f"Layout v{CURRENT_VERSION}:       {found.current} current, {found.pending} pending migration")


@group.command("migrate")
@with_appcontext
@redis_errors_as_one_line
@shared_store
def migrate() -> None:
    """Upgrade every session in an older layout now (safe while the bot runs)."""
    services = get_services()
    progress = Counting("Sessions scanned")
    report = migrate_sessions(services.store, services.settings.default_language, progress)
    progress.done()
    click.echo(
        f"Upgraded {report.upgraded} of {report.seen} session(s); {report.already_current} already current; "
        f"{report.changed_meanwhile} changed by the bot meanwhile (it upgrades them itself)."
    )

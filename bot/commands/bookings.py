"""``flask bookings list|export|cancel|migrate``: a business's bookings from the terminal."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO

import click
from flask.cli import with_appcontext

from ..agenda import Day, agenda, cancel_for_business, today, why_not
from ..booking.formats import booking_label
from ..booking.records import Booking
from ..notify import told_text
from ..services import get_services
from ..tenants import Tenant
from ..upgrade import migrate as migrate_business
from .common import Counting, business_option, pick_business, redis_errors_as_one_line, shared_store

group = click.Group("bookings", help="List, export, cancel and migrate a business's bookings.")

COLUMNS = ("Time", "Service", "Customer", "Phone", "Status", "Ref")
EXPORT_FIELDS = (
    "ref", "status", "service", "service_name", "start", "end", "name", "phone", "language",
    "created_at", "changed_at", "rescheduled_from", "rescheduled_to", "customer_confirmed_at",
)  # fmt: skip
BATCH = 500


def table(day: Day) -> list[str]:
    rows = [COLUMNS] + [(e.time, e.service, e.name, e.phone, e.shown_status, e.ref) for e in day.entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


@group.command("list")
@click.option("--date", "first", type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD). Default: today.")
@click.option("--days", type=click.IntRange(1, 366), default=7, show_default=True, help="How many days.")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def list_bookings(first: datetime | None, days: int, business_id: str | None) -> None:
    """Bookings by day, in the business's time zone, as a table."""
    services, shop = get_services(), pick_business(business_id)
    start = first.date() if first else today(services, shop)
    found = agenda(services, shop, start, days)
    if not found:
        click.echo(f"No bookings in the {days} day(s) from {start.isoformat()}.")
    for day in found:
        click.echo(f"\n{day.label} ({day.day.isoformat()}): {len(day.entries)} booking(s)")
        for line in table(day):
            click.echo("  " + line)


def _iso(shop: Tenant, epoch: str) -> str:
    if not epoch:
        return ""
    return datetime.fromtimestamp(int(epoch), UTC).astimezone(shop.business.timezone).isoformat()


TIMES = ("start", "end", "created_at", "changed_at", "customer_confirmed_at")


def _record(shop: Tenant, data: dict[str, str]) -> dict[str, str]:
    """One stored booking as an export row: times in the business's zone, the service's name."""
    service = shop.catalog.service(data.get("service", ""))
    record = {name: data.get(name, "") for name in EXPORT_FIELDS}
    record["service_name"] = service.name(shop.default_language) if service else ""
    record.update({name: _iso(shop, data.get(name, "")) for name in TIMES})
    return record


def not_a_formula(text: str) -> str:
    """A cell a spreadsheet shows as text: the customer chose their profile name (OWASP CSV injection)."""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def _records(shop: Tenant, refs: list[str]) -> Iterator[dict[str, str]]:
    """The bookings ``refs``, read in batches with progress on stderr."""
    with click.progressbar(length=len(refs), label="Reading bookings", file=sys.stderr) as bar:
        for offset in range(0, len(refs), BATCH):
            batch = shop.bookings.bookings(refs[offset : offset + BATCH])
            yield from (_record(shop, data) for data in batch if data)
            bar.update(len(batch))


@group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.File("w", encoding="utf-8", lazy=True), default="-", help="Default: stdout.")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def export(fmt: str, output: IO[str], business_id: str | None) -> None:
    """Every booking (any status) with full customer details, by start time."""
    shop = pick_business(business_id)
    records = _records(shop, shop.bookings.refs_between(0, 2**40))  # every booking, by start
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(output, EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for count, record in enumerate(records, 1):  # noqa: B007 - the count is reported below
            writer.writerow(record | {"name": not_a_formula(record["name"])})
    else:
        output.write("[")
        for count, record in enumerate(records, 1):  # noqa: B007
            output.write(("\n" if count == 1 else ",\n") + json.dumps(record, ensure_ascii=False))
        output.write("\n]\n")
    click.echo(f"Exported {count} booking(s).", err=True)


@group.command("cancel")
@click.argument("ref")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def cancel(ref: str, yes: bool, business_id: str | None) -> None:
    """Cancel booking REF for the business; the customer is told on WhatsApp when that is possible."""
    services, shop = get_services(), pick_business(business_id)
    ref = ref.strip().upper()
    data = shop.bookings.booking(ref)
    if not data:
        raise click.ClickException(f"Booking {ref} was not cancelled: {why_not('unknown')}.")
    t = services.catalogs.get(shop.default_language)
    label = booking_label(shop.catalog, Booking.from_hash(data), t)
    if not yes:
        click.confirm(f"Cancel {label}, {data.get('name') or 'no name'}?", abort=True)
    result, booking, reached = cancel_for_business(services, shop, ref)
    if result != "ok" or booking is None:
        raise click.ClickException(f"Booking {ref} was not cancelled: {why_not(result)}.")
    click.echo(f"Cancelled: {label}")
    click.echo(told_text(reached))


@group.command("migrate")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def migrate(business_id: str | None) -> None:
    """Move the business's release-1 data to this release's keys (idempotent; safe while the bot runs)."""
    services, shop = get_services(), pick_business(business_id)
    progress = Counting("Keys scanned")
    report = migrate_business(
        services.redis,
        shop,
        services.scripts,
        prefix=services.settings.redis_key_prefix,
        session_ttl_ms=services.settings.session_ttl_seconds * 1000,
        progress=progress,
    )
    progress.done()
    for line in report.lines():
        click.echo(line)
    if report.complete:
        click.echo(f"Done: business {shop.id} is in this release's layout.")
    else:
        click.echo(f"{report.left} key(s) changed while being moved: run the command again.")
        sys.exit(1)

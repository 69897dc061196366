"""``flask catalog check [FILE]``: validate a catalog and show the next free times per service."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import click
from flask.cli import with_appcontext

from ..booking.catalog import SAMPLE_CATALOG, Catalog, Service, catalog_files, load_catalog
from ..booking.formats import slot_label
from ..booking.slots import free_starts, open_dates
from ..booking.store import BookingStore
from ..errors import ConfigError
from ..keys import BusinessKeys
from ..services import Services, get_services
from .common import redis_errors_as_one_line

group = click.Group("catalog", help="Check the business's catalog.")


def next_free(store: BookingStore, catalog: Catalog, service: Service, now: datetime, count: int) -> list[datetime]:
    """The first ``count`` free starts of ``service`` from ``now``, read in one round trip."""
    days = open_dates(catalog.business, now)
    if not days:
        return []
    wanted = sorted({day + timedelta(days=k) for day in days for k in (-1, 0, 1)})
    taken = store.occupancy(service.resource, wanted).intervals()
    starts: list[datetime] = []
    for day in days:
        starts += free_starts(catalog.business, service, day, now, taken)
        if len(starts) >= count:
            break
    return starts[:count]


def _store(services: Services, catalog: Catalog) -> BookingStore:
    shop = services.directory.get(catalog.business.id)
    if shop is not None:
        return shop.bookings
    return BookingStore(
        services.redis, BusinessKeys(services.settings.redis_key_prefix, catalog.business.id), services.scripts
    )


@group.command("check")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--count", type=click.IntRange(1, 50), default=3, show_default=True, help="Free times per service.")
@with_appcontext
@redis_errors_as_one_line
def check(path: Path | None, count: int) -> None:
    """Validate PATH (a catalog or a folder of them; default: BOT_CATALOG) and print the next free
    times of each service."""
    services = get_services()
    path = path or Path(services.settings.bot_catalog or SAMPLE_CATALOG)
    if not path.exists():
        raise click.ClickException(f"{path}: no such file")
    try:
        files = catalog_files(path)
        catalogs = [(file, load_catalog(file, languages=services.catalogs.languages)) for file in files]
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from None
    now = services.clock()
    for file, catalog in catalogs:
        business = catalog.business
        numbers = ", ".join(business.numbers) or "every number"
        click.echo(
            f"{file}: valid. {business.name} ({business.id}, {numbers}), {len(catalog.services)} service(s), "
            f"{business.timezone.key}."
        )
        t = services.catalogs.get((business.languages or (services.settings.default_language,))[0])
        store = _store(services, catalog)
        for service in catalog.services:
            starts = next_free(store, catalog, service, now, count)
            times = ", ".join(slot_label(at, business.timezone, t) for at in starts) or "none in the horizon"
            click.echo(f"  {service.name(t.code)} ({service.id}, {service.minutes} min): {times}")

"""``flask catalog check [FILE]``: validate a catalog and show the next free times per service."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import click
from flask.cli import with_appcontext

from ..booking.catalog import SAMPLE_CATALOG, Catalog, Service, load_catalog
from ..booking.formats import slot_label
from ..booking.slots import free_starts, open_dates
from ..booking.store import BookingStore
from ..errors import ConfigError
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
    if catalog.business.id == services.catalog.business.id:
        return services.desk.store
    return BookingStore(services.redis, prefix=services.settings.redis_key_prefix, business=catalog.business.id)


@group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1, 50), default=3, show_default=True, help="Free times per service.")
@with_appcontext
@redis_errors_as_one_line
def check(file: Path | None, count: int) -> None:
    """Validate FILE (default: BOT_CATALOG) and print the next free times of each service."""
    services = get_services()
    path = file or Path(services.settings.bot_catalog or SAMPLE_CATALOG)
    if not path.is_file():
        raise click.ClickException(f"{path}: no such file")
    try:
        catalog = load_catalog(path, languages=services.catalogs.languages)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from None
    business = catalog.business
    click.echo(f"{path}: valid. {business.name}, {len(catalog.services)} service(s), {business.timezone.key}.")
    t = services.catalogs.get(services.settings.default_language)
    store = _store(services, catalog)
    now = services.clock()
    for service in catalog.services:
        starts = next_free(store, catalog, service, now, count)
        times = ", ".join(slot_label(at, business.timezone, t) for at in starts) or "none in the horizon"
        click.echo(f"  {service.name(t.code)} ({service.id}, {service.minutes} min): {times}")

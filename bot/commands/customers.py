"""``flask customers export|forget +E164``: a customer's data, for their rights (GDPR arts. 15, 17)."""

from __future__ import annotations

import json
import logging
import re

import click
from flask.cli import with_appcontext

from .. import retention
from ..customers import export, forget
from ..logs import mask_phone
from ..services import get_services
from ..tenants import Tenant
from .common import business_option, pick_business, redis_errors_as_one_line, shared_store

log = logging.getLogger(__name__)
group = click.Group("customers", help="What is kept about customers: export, forget, retention.")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def _phone(value: str) -> str:
    phone = value.strip().removeprefix("whatsapp:")
    if not E164.fullmatch(phone):
        raise click.BadParameter(f"{value!r} is not a phone number in E.164 form such as +34600111222")
    return phone


def _businesses(business_id: str | None) -> list[Tenant]:
    """The business named, or every business of the deployment (a customer may write to several)."""
    return [pick_business(business_id)] if business_id else list(get_services().directory)


@group.command("export")
@click.argument("phone")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def export_command(phone: str, business_id: str | None) -> None:
    """Print everything kept about PHONE as JSON, per business (a subject-access request)."""
    phone = _phone(phone)
    client = get_services().redis
    kept = [export(client, shop, phone) for shop in _businesses(business_id)]
    click.echo(json.dumps(kept, ensure_ascii=False, indent=2, sort_keys=True))


@group.command("forget")
@click.argument("phone")
@business_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
@redis_errors_as_one_line
@shared_store
def forget_command(phone: str, business_id: str | None, yes: bool) -> None:
    """Erase PHONE: its conversation, messages and records deleted, its bookings kept without phone or name."""
    phone = _phone(phone)
    shops = _businesses(business_id)
    if not yes:
        where = ", ".join(shop.id for shop in shops)
        click.confirm(f"Forget {phone} at {where}? This cannot be undone", abort=True)
    client = get_services().redis
    for shop in shops:
        done = forget(client, shop, phone)
        if not done.anything:
            click.echo(f"{shop.id}: nothing kept about {mask_phone(phone)}")
            continue
        click.echo(
            f"{shop.id}: forgot {mask_phone(phone)}: {done.keys_deleted} keys and entries deleted,"
            f" {done.bookings_anonymised} bookings kept without phone or name,"
            f" {done.replies_deleted} reply records and {done.undelivered_removed} given-up messages deleted"
        )
        log.info(
            "forgot %s at %s: %d keys, %d bookings anonymised, %d replies, %d given-up messages",
            mask_phone(phone),
            shop.id,
            done.keys_deleted,
            done.bookings_anonymised,
            done.replies_deleted,
            done.undelivered_removed,
        )


@group.command("retention")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def retention_command(business_id: str | None) -> None:
    """Anonymise the bookings past each business's retention_days now (the worker does it every few minutes)."""
    services = get_services()
    for shop in _businesses(business_id):
        looked = anonymised = 0
        while True:
            swept = retention.sweep(services.redis, shop, services.clock())
            looked, anonymised = looked + swept.looked_at, anonymised + swept.anonymised
            if swept.caught_up:
                break
        days = shop.business.retention_days
        click.echo(f"{shop.id}: {anonymised} bookings older than {days} days anonymised ({looked} looked at)")

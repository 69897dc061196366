"""``flask calendar url|rotate``: the secret address of a business's calendar feed (:mod:`bot.feeds`)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..feeds import feed_url, rotate_feed_token, url_of
from ..services import get_services
from .common import business_option, pick_business, redis_errors_as_one_line, shared_store

group = click.Group("calendar", help="The owner's calendar feed: a secret .ics address to subscribe to.")


def _say_base(url: str) -> None:
    if url.startswith("/"):
        click.echo("PUBLIC_BASE_URL is not set: put the bot's https address in front of this path.", err=True)


@group.command("url")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def url(business_id: str | None) -> None:
    """Print the feed's URL (made on first use). Anyone with it can read the bookings: keep it secret."""
    shown = feed_url(get_services(), pick_business(business_id))
    click.echo(shown)
    _say_base(shown)


@group.command("rotate")
@business_option
@with_appcontext
@redis_errors_as_one_line
@shared_store
def rotate(business_id: str | None) -> None:
    """Replace the feed's URL with a new one: the old one stops working at once."""
    services = get_services()
    shown = url_of(services, rotate_feed_token(services, pick_business(business_id)))
    click.echo(shown)
    click.echo("The old URL no longer works: subscribe again with this one.", err=True)
    _say_base(shown)

"""``flask --app wsgi templates sync|list``: the generic content templates the bot sends.

``sync`` lists the account's content templates, creates those of
:data:`~bot.channels.content.TEMPLATES` that no template carries the friendly name of yet,
and records every SID in Redis (``<prefix>:templates``), where the worker reads them. Found
by friendly name, so a second sync creates nothing and changes nothing.
"""

from __future__ import annotations

from typing import Any

import click
import requests
from flask.cli import with_appcontext
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from ..commands.common import redis_errors_as_one_line, shared_store
from ..services import get_services
from .content import TEMPLATES
from .twilio import TemplateSids


class _Definition:
    """A content template body for ``contents.create``, sent exactly as Twilio documents it.

    The typed ``ContentCreateRequest`` serialises every content type it knows, most as
    ``null`` (and older releases misspelled the type keys, twilio-python #881); this sends
    only the one type the template has.
    """

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        return self.body


def sync_templates(client: Client, sids: TemplateSids) -> list[tuple[str, str, str]]:
    """``(friendly name, SID, what happened)`` per template: created, found or unchanged."""
    existing: dict[str, str] = {}
    for content in client.content.v1.contents.stream():
        existing.setdefault(content.friendly_name, content.sid)
    recorded = sids.all()
    results, changed = [], {}
    for template in TEMPLATES:
        name = template.friendly_name
        sid = existing.get(name)
        if sid is None:
            sid = client.content.v1.contents.create(_Definition(template.definition())).sid
            action = "created"
        else:
            action = "unchanged" if recorded.get(name) == sid else "found"
        if recorded.get(name) != sid:
            changed[name] = sid
        results.append((name, sid, action))
    sids.record(changed)
    return results


def _sids() -> tuple[Client, TemplateSids]:
    services = get_services()
    if services.twilio is None:
        raise click.UsageError("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to manage content templates")
    return services.twilio, TemplateSids(services.redis, services.shared_keys.templates)


@click.group("templates")
def templates() -> None:
    """The Content API templates behind WhatsApp buttons and lists."""


@templates.command("sync")
@with_appcontext
@redis_errors_as_one_line
@shared_store
def sync() -> None:
    """Create missing templates (found by friendly name) and record their SIDs in Redis."""
    client, sids = _sids()
    try:
        results = sync_templates(client, sids)
    except TwilioRestException as exc:
        raise click.ClickException(f"Twilio answered {exc.status} ({exc.code}): {exc.msg}") from None
    except requests.RequestException as exc:
        raise click.ClickException(f"Twilio cannot be reached: {type(exc).__name__}: {exc}") from None
    for name, sid, action in results:
        click.echo(f"{name:<22} {sid:<36} {action}")


@templates.command("list")
@with_appcontext
@redis_errors_as_one_line
@shared_store
def list_templates() -> None:
    """The templates the bot uses and the SIDs recorded for them."""
    services = get_services()
    recorded = TemplateSids(services.redis, services.shared_keys.templates).all()
    for template in TEMPLATES:
        sid = recorded.get(template.friendly_name, "not synced")
        click.echo(f"{template.friendly_name:<22} {sid:<36} {template.content_type}")

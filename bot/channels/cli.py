"""``flask --app wsgi templates sync|list``: the content templates the bot sends.

Two kinds: the generic in-session templates of :data:`~bot.channels.content.TEMPLATES`
(buttons and lists filled with any text), and the proactive ones of
:mod:`bot.channels.proactive` (reminders, the business's cancels and moves, owner alerts: one
per kind and language), which WhatsApp must approve before they may go outside the 24-hour
window.

``sync`` lists the account's content templates, creates those no template carries the friendly
name of yet, and records every SID in Redis (``<prefix>:templates``), where the worker reads
them. It then reads WhatsApp's approval of each proactive template, submits those never
submitted (category UTILITY, named by their friendly name) and records each status in
``<prefix>:template-approvals`` (:class:`~bot.channels.approvals.Approvals`). Found by friendly
name and submitted only while unsubmitted, so a second sync creates nothing and submits nothing.

``list`` shows every template, its SID, and for the proactive ones WhatsApp's approval as Twilio
reads it now (recorded too), or as last recorded when Twilio cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click
import requests
from flask.cli import with_appcontext
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from ..commands.common import redis_errors_as_one_line, shared_store
from ..services import get_services
from .approvals import UNSUBMITTED, Approval, Approvals
from .content import TEMPLATES
from .proactive import CATEGORY, ProactiveTemplate, all_templates
from .twilio import TemplateSids

#: what a sync or list says of a template submitted just now
SUBMITTED = "submitted for WhatsApp approval"


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


def sync_templates(
    client: Client, sids: TemplateSids, proactive: Sequence[ProactiveTemplate] = ()
) -> list[tuple[str, str, str]]:
    """``(friendly name, SID, what happened)`` per template (the generic ones, then ``proactive``):
    created, found or unchanged. The SIDs are recorded even when a create fails part way."""
    existing: dict[str, str] = {}
    for content in client.content.v1.contents.stream():
        existing.setdefault(content.friendly_name, content.sid)
    recorded = sids.all()
    results, changed = [], {}
    try:
        wanted: list[tuple[str, Callable[[], dict[str, Any]]]] = [(t.friendly_name, t.definition) for t in TEMPLATES]
        wanted += [(t.friendly_name, t.definition) for t in proactive]
        for name, definition in wanted:
            sid = existing.get(name)
            if sid is None:
                sid = client.content.v1.contents.create(_Definition(definition())).sid
                action = "created"
            else:
                action = "unchanged" if recorded.get(name) == sid else "found"
            if recorded.get(name) != sid:
                changed[name] = sid
            results.append((name, sid, action))
    finally:
        sids.record(changed)
    return results


def submit(client: Client, sid: str, name: str) -> str:
    """Submit content ``sid`` for WhatsApp's approval as ``name`` (category UTILITY): WhatsApp's
    status as Twilio answers it (``received``)."""
    # exactly these two fields: the typed ContentApprovalRequest also carries send_ttl_seconds and
    # bid_amount, serialised as null when unset (twilio 9.x happens to drop nulls from JSON bodies)
    request = _Definition({"name": name, "category": CATEGORY})
    answer = client.content.v1.contents(sid).approval_create.create(request)
    return str(answer.status or "received")


def seek_approval(client: Client, approvals: Approvals, synced: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """For each synced proactive template ``(name, SID, what happened)``: read WhatsApp's approval
    (one just created has none), submit it when never submitted, record the status; what happened,
    by name. Twilio refusing one template is said on its line (``approval not read or submitted: …``),
    not raised; Twilio out of reach is raised."""
    notes = {}
    for name, sid, action in synced:
        try:
            approval = Approval(UNSUBMITTED, "", 0) if action == "created" else approvals.fetch(client, sid)
            submitted = approval.status == UNSUBMITTED
            if submitted:
                approval = Approval(submit(client, sid, name), "", 0)
        except TwilioException as exc:
            notes[name] = f"{FAILED}: {answered(exc)}"
            continue
        approvals.record(name, approval.status, approval.reason)
        notes[name] = SUBMITTED if submitted else describe(approval)
    return notes


#: how a sync's line starts when Twilio refused to read or take a template's approval
FAILED = "approval not read or submitted"


def answered(exc: TwilioException) -> str:
    """``Twilio answered 400 (20001): …`` (a classic error, or an RFC 9457 problem's title and detail)."""
    problem = (getattr(exc, "title", ""), getattr(exc, "detail", ""))
    detail = getattr(exc, "msg", None) or " ".join(filter(None, problem))
    return f"Twilio answered {getattr(exc, 'status', '?')} ({getattr(exc, 'code', '?')}): {detail or exc}"


def describe(approval: Approval) -> str:
    """``approved``, ``pending``, ``rejected: INVALID_FORMAT``…"""
    if approval.status == "rejected" and approval.reason:
        return f"rejected: {approval.reason}"
    return approval.status


def as_of(approval: Approval) -> str:
    return datetime.fromtimestamp(approval.at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _sids() -> tuple[Client, TemplateSids]:
    services = get_services()
    if services.twilio is None:
        raise click.UsageError("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to manage content templates")
    return services.twilio, TemplateSids(services.redis, services.shared_keys.templates)


def _approvals() -> Approvals:
    services = get_services()
    return Approvals(services.redis, services.shared_keys.template_approvals)


def _proactive() -> tuple[ProactiveTemplate, ...]:
    return all_templates(get_services().catalogs)


@click.group("templates")
def templates() -> None:
    """The Content API templates behind WhatsApp buttons and lists, reminders and alerts."""


@templates.command("sync")
@with_appcontext
@redis_errors_as_one_line
@shared_store
def sync() -> None:
    """Create missing templates (found by friendly name), record their SIDs in Redis, and submit the
    proactive ones for WhatsApp's approval (once)."""
    client, sids = _sids()
    proactive = _proactive()
    names = {t.friendly_name for t in proactive}
    try:
        results = sync_templates(client, sids, proactive)
        notes = seek_approval(client, _approvals(), [r for r in results if r[0] in names])
    except TwilioException as exc:
        raise click.ClickException(answered(exc)) from None
    except requests.RequestException as exc:
        raise click.ClickException(f"Twilio cannot be reached: {type(exc).__name__}: {exc}") from None
    width = max(len(name) for name, _, _ in results)
    for name, sid, action in results:
        note = f", {notes[name]}" if name in notes else ""
        click.echo(f"{name:<{width}} {sid:<34} {action}{note}")
    failed = sum(note.startswith(FAILED) for note in notes.values())
    if failed:
        raise click.ClickException(f"{failed} template(s) not submitted for WhatsApp's approval; run sync again")


@templates.command("list")
@with_appcontext
@redis_errors_as_one_line
@shared_store
def list_templates() -> None:
    """The templates the bot uses, the SIDs recorded for them, and WhatsApp's approval of the
    proactive ones (read from Twilio now; as last recorded when Twilio cannot be reached)."""
    services = get_services()
    recorded = TemplateSids(services.redis, services.shared_keys.templates).all()
    approvals = _approvals()
    known = approvals.all()
    client = services.twilio
    proactive = _proactive()
    width = max(len(name) for name in [*(t.friendly_name for t in TEMPLATES), *(t.friendly_name for t in proactive)])
    for template in TEMPLATES:
        shown = recorded.get(template.friendly_name, "not synced")
        click.echo(f"{template.friendly_name:<{width}} {shown:<34} {template.content_type}")
    #: why approvals are not read from Twilio (any more)
    offline = "" if client is not None else "no Twilio credentials"
    for proactive_template in proactive:
        name = proactive_template.friendly_name
        sid = recorded.get(name)
        state, why = "", offline
        if sid is not None and client is not None:
            try:
                approval = approvals.fetch(client, sid)
            except TwilioException as exc:
                why = answered(exc)
            except requests.RequestException as exc:
                why = offline = f"Twilio cannot be reached: {type(exc).__name__}"
                client = None  # each of the rest would wait as long: show what is recorded
            else:
                approvals.record(name, approval.status, approval.reason)
                state = describe(approval)
        if sid is not None and not state:
            state = _recorded(known.get(name), why)
        click.echo(f"{name:<{width}} {sid or 'not synced':<34} {proactive_template.content_type:<18} {state}".rstrip())


def _recorded(approval: Approval | None, why: str) -> str:
    """WhatsApp's approval as last recorded, and why it was not read now."""
    if approval is None:
        return f"approval unknown ({why})"
    return f"{describe(approval)} (as of {as_of(approval)}; {why})"

"""``POST /webhook/status``: Twilio's delivery status callbacks, recorded monotonically.

Signature-checked like ``/webhook``. Callbacks are best-effort and may arrive out of
order, so a status only replaces a lower-ranked one (queued < sending < sent <
failed/undelivered < delivered < read): a late ``sent`` never overwrites ``read``, and a
message reported delivered or read stays so even if a failure report straggles in.
"""

from __future__ import annotations

import logging
import re

import redis
from flask import Blueprint, Response, request

from ..channels.twilio import PASSING_CODES
from ..logs import mask_phone
from ..services import Services, get_services
from . import STATUS_RANK, Outbox

#: a message queued again after Twilio reported a passing failure (a rate limit) waits this long
REQUEUE_DELAY_MS = 5_000

bp = Blueprint("status", __name__)
log = logging.getLogger(__name__)

MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")
PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
NONCE = re.compile(r"[0-9a-f]{8}")


def _plain(status: int, reason: str) -> Response:
    return Response(reason + "\n", status, mimetype="text/plain")


@bp.post("/webhook/status")
def delivery_status() -> Response:
    services = get_services()
    if not services.signature.is_valid(request):
        services.stats.incr("status.forged")
        log.warning("status callback refused: missing or wrong X-Twilio-Signature")
        return _plain(403, "invalid X-Twilio-Signature")
    sid = request.form.get("MessageSid", "")
    status = request.form.get("MessageStatus", "")
    if not MESSAGE_SID.fullmatch(sid) or status not in STATUS_RANK:
        services.stats.incr("status.malformed")
        return _plain(400, "MessageSid or MessageStatus missing or unknown")
    phone, entry, nonce = request.args.get("to", ""), request.args.get("entry", ""), request.args.get("n", "")
    # the entry it names counts only for the customer Twilio says it went to, and only with the
    # nonce of the attempt (a callback URL of one message cannot speak for another's)
    to = request.form.get("To", "")
    named = bool(
        PHONE.fullmatch(phone)
        and ENTRY_ID.fullmatch(entry)
        and NONCE.fullmatch(nonce)
        and (not to or to.removeprefix("whatsapp:") == phone)
    )
    shop = services.directory.get(request.args.get("b", "")) or services.directory.only
    if shop is None or shop.id not in services.outboxes:
        services.stats.incr("status.malformed")
        return _plain(400, "unknown business")
    try:
        changed = services.outboxes[shop.id].record_status(
            sid,
            status,
            request.form.get("ErrorCode", "")[:10],
            phone=phone if named else None,
            entry_id=entry if named else None,
            nonce=nonce if named else "",
        )
    except redis.RedisError as exc:
        log.warning("status callback for %s: redis error: %s", sid, exc)
        return _plain(503, "try again later")
    services.stats.incr(f"status.{status}" if changed else "status.stale")
    if named and status in FATES:
        _fate(services.outboxes[shop.id], services, phone, entry, sid, status, request.form.get("ErrorCode", "")[:10])
    return Response(status=204)


#: statuses that settle what becomes of a message Twilio accepted
FATES = ("delivered", "read", "failed", "undelivered")


def _fate(outbox: Outbox, services: Services, phone: str, entry: str, sid: str, status: str, code: str) -> None:
    """A failure Twilio reports after accepting a message is sent again when it passes (a rate
    limit) and the message is still the customer's newest; otherwise it is given up, visibly."""
    passing = code.isdigit() and int(code) in PASSING_CODES
    try:
        fate = outbox.fate(phone, entry, sid, status, code, passing=passing, delay_ms=REQUEUE_DELAY_MS)
    except redis.RedisError as exc:
        log.warning("status callback for %s: redis error: %s", sid, exc)
        return
    if fate == "requeued":
        services.stats.incr("outbox.requeued")
        log.warning("outbox %s for %s: Twilio reported %s (%s): queued again", entry, mask_phone(phone), status, code)
    elif fate in ("superseded", "gave-up"):
        services.stats.incr("outbox.failed_after_accept")
        why = "a newer message superseded it" if fate == "superseded" else "not sent again"
        log.warning("outbox %s for %s: Twilio reported %s (%s): %s", entry, mask_phone(phone), status, code, why)

"""Due reminders, turned into outbox messages exactly once.

The step that books, moves or cancels writes a booking's reminders into the business's due set
(``reminders``: ``<REF>:<offset>`` → epoch ms, see ``bot/lua/booking.lua``), so no reminder exists
for a booking that does not. The outbox worker claims due reminders with the phones it claims
(one script, :meth:`bot.outbox.Outbox.claim`: a claimed reminder is moved to the end of the claim,
so no other worker takes it meanwhile, and it is due again if this worker dies). For each, it reads
the booking, words the template in the customer's language, and :data:`_FIRE` then, in one step,
takes the reminder out of the due set and, if the booking is still the one reminded of (confirmed,
same start, same customer) and the customer has not written STOP, queues it in the customer's
outbox and rings the doorbell. Whoever takes it out first queues it; a second worker finds it gone.
The send itself is the outbox's (in order, retried, never sent twice blind); the worker checks the
booking once more in the step that writes each attempt down, so a cancel a moment before the send
revokes it (:data:`bot.outbox._BEGIN`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import cast

import redis

from ..booking.formats import day_label, time_label
from ..channels import proactive
from ..flows.reminders import reminder_buttons
from ..i18n import Catalogs
from ..logs import mask_phone
from ..tenants import Tenant
from . import Outbox

log = logging.getLogger(__name__)

# KEYS[1] due reminders, [2] booking, [3] the customer's stream, [4] doorbell, [5] opt-outs,
# [6] reminder counts; ARGV[1] member, [2] phone, [3] the booking's start as read (its version),
# [4] message (JSON), [5] now ('' for the server's clock), [6] bell, [7] business, [8] offset.
# Returns 'gone' (another worker queued it, or it was dropped), 'dropped' (no message: the business
# no longer sends that reminder), 'revoked', 'opted_out', 'late' (the booking has started: no worker
# ran since it was due) or 'queued'.
_FIRE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'gone' end
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[4] == '' then return 'dropped' end
local b = redis.call('HMGET', KEYS[2], 'status', 'start', 'phone', 'reminded:' .. ARGV[8])
if b[4] then return 'gone' end
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if b[1] ~= 'confirmed' or b[2] ~= ARGV[3] or b[3] ~= ARGV[2] or string.sub(b[3], 1, 1) ~= '+' then
  redis.call('HINCRBY', KEYS[6], 'revoked', 1)
  return 'revoked'
end
if redis.call('HEXISTS', KEYS[5], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[6], 'opted_out', 1)
  return 'opted_out'
end
if tonumber(b[2]) * 1000 <= now then  -- due long ago (no worker ran meanwhile): too late to remind
  redis.call('HINCRBY', KEYS[6], 'late', 1)
  return 'late'
end
local id = redis.call('XADD', KEYS[3], '*', 'm', ARGV[4])
redis.call('ZADD', KEYS[4], 'NX', now, ARGV[2])
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
redis.call('HSET', KEYS[2], 'reminded:' .. ARGV[8], id)
redis.call('HINCRBY', KEYS[6], 'queued', 1)
return 'queued'
"""


class Reminders:
    """One business's reminders, as the worker fires them."""

    def __init__(self, client: redis.Redis, shop: Tenant, catalogs: Catalogs) -> None:
        self.client = client
        self.shop = shop
        self.catalogs = catalogs
        self._fire = client.register_script(_FIRE)

    def fire(self, member: str, outbox: Outbox) -> str:
        """Queue the due reminder ``member`` (``REF:offset``) if its booking still stands: 'queued',
        'revoked', 'opted_out', 'late', 'dropped' or 'gone'. Two round trips: the booking, then the script."""
        ref, _, offset = member.partition(":")
        keys = self.shop.keys
        booking = cast(dict[str, str], self.client.hgetall(keys.booking(ref)))
        phone, start = booking.get("phone", ""), booking.get("start", "")
        wanted = offset in self.shop.business.reminders  # the catalog may have dropped it since
        message = self.message(booking, offset) if wanted and phone and start.isdigit() else {}
        script_keys = [
            keys.reminders,
            keys.booking(ref),
            keys.outbox(phone or "-"),
            keys.due,
            keys.optout,
            keys.reminder_counts,
        ]
        args = [member, phone, start, json.dumps(message, ensure_ascii=False) if wanted else "", outbox.now_arg()]
        args += [outbox.bell, self.shop.id, offset]
        outcome = str(self._fire(keys=script_keys, args=args))
        if outcome != "gone":
            log.info("reminder %s of %s for %s: %s", offset, ref, mask_phone(phone), outcome)
        return outcome

    def message(self, booking: dict[str, str], offset: str) -> dict[str, object]:
        """The reminder template, worded in the language the customer booked in."""
        shop = self.shop
        language = shop.pick_language(booking.get("language"), self.catalogs) or shop.default_language
        t = self.catalogs.get(language)
        business = shop.business
        start = datetime.fromtimestamp(int(booking["start"]), UTC)
        service = shop.catalog.service(booking.get("service", ""))
        ref = booking.get("ref", "")
        variables = {
            "1": booking.get("name") or t(proactive.NO_NAME),
            "2": service.name(t.code) if service else booking.get("service", ""),
            "3": day_label(start.astimezone(business.timezone).date(), t),
            "4": time_label(start, business.timezone, t),
            "5": business.address or business.name,
        }
        for key, button in zip(proactive.BUTTON_VARIABLES, reminder_buttons(ref, int(booking["start"])), strict=True):
            variables[key] = button.pack()
        extra: dict[str, object] = {"booking": ref, "version": booking["start"], "offset": offset}
        if shop.sender:
            extra["from"] = shop.sender
        return proactive.message(proactive.REMINDER, language, variables, **extra)

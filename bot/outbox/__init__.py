"""The durable outbox: messages for the worker to send through Twilio's REST API, per business.

Keys (:class:`bot.keys.BusinessKeys`, all under the business's hash tag)::

    outbox:<+E164>     stream, this customer's unsent messages, oldest first (field ``m``: JSON);
                       deleted once drained
    window:<+E164>     string, epoch ms of the customer's last inbound message (24-hour window)
    delivery:<+E164>   hash, per entry id: the worker's record (JSON); ``acc:<id>``: the MessageSid
                       Twilio accepted an entry still in flight as
    lease:<+E164>      string, the worker currently sending this customer's messages
    due                zset, phone → epoch ms when its head message is due (the doorbell); a
                       worker that claims a phone moves it to the end of its lease
    status:<MessageSid>   hash, delivery status reported by Twilio's status callback

The webhook's apply script appends the reply to the stream, rings the doorbell and stamps the
window in the same atomic step as the session write: one slot, so nothing is lost between them.
It also publishes the business's id on the bell channel (:attr:`bot.keys.SharedKeys.outbox_bell`),
which wakes the workers at once; a bell nobody heard is found by the workers' timed poll.

**One clock.** Every time the outbox stamps or compares (the doorbell, the 24-hour window,
backoffs, graces) is the Redis server's (:class:`bot.outbox.clock.RedisClock`, ``TIME`` in the
scripts), so app hosts and worker hosts whose clocks disagree still agree on what is due.
The worker's sweep (``SCAN`` of a business's outbox streams, at start-up and every few minutes,
never on the request path) rings the doorbell of any stream left behind, and deletes one found
empty (as earlier releases left them).

Streams keep per-customer order for free; the lease makes one worker at a time send a given
customer's messages, so order holds with several workers.

**What is kept, and for how long** (memory per customer stays flat however long they keep
writing). A drained stream is deleted by a script that deletes it only while it is still
empty, so a reply appended at that moment is kept and its doorbell stays rung. A record in
flight (``sending``, ``retry``) and the ``acc:<id>`` proof of its entry are kept as long as the
entry waits, however old. A finished record (``sent``, ``failed``, ``undeliverable``) is kept
:data:`FINISHED_KEEP` after it finished, by its own time on the app's clock, for operators
("did yesterday's message go?"); the worker prunes older ones of a customer whenever it
finishes one of theirs, in the same script. ``acc:<id>`` goes when its entry finishes: the
record then holds the MessageSid, and a status callback naming a finished or pruned entry
touches only ``status:<MessageSid>``. The hash's own expiry (:data:`RECORD_TTL_MS` after the
worker's last write, never renewed by callbacks) only clears customers who stopped writing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis

from ..keys import BusinessKeys
from .clock import RedisClock

#: how long statuses are kept, and a delivery hash after the worker last wrote to it
RECORD_TTL_MS = 7 * 86_400 * 1000

#: how long a finished delivery record is kept after it finished (for operators: yesterday's messages)
FINISHED_KEEP = timedelta(days=2)

#: the states of a finished record (its entry is no longer in the stream); ``revoked``: a message
#: about a booking that changed before it went (not sent, nothing wrong)
FINISHED = ("sent", "failed", "undeliverable", "revoked")
#: the finished states of a message that never reached the customer
GIVEN_UP = ("failed", "undeliverable")

#: a sent record keeps its message this long (or until Twilio reports it delivered), so a failure
#: Twilio reports after accepting it can be sent again
RESEND_WITHIN = timedelta(minutes=15)

#: how many times a message Twilio failed after accepting is queued again
MAX_REQUEUES = 3

#: status callback values, ranked so a late callback never moves a message backwards
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "failed": 3,
    "undelivered": 3,
    "canceled": 3,
    "partially_delivered": 3,
    "delivered": 4,
    "read": 5,
}

_STATUS = """
local rank = cjson.decode(ARGV[5])
local current = redis.call('HGET', KEYS[1], 'status')
if current and (rank[current] or 0) >= rank[ARGV[1]] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'error', ARGV[2], 'at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

#: given-up messages kept for the owner's page: this long, and at most this many
UNDELIVERED_KEEP_MS = 7 * 86_400 * 1000
UNDELIVERED_MAX = 200

# Writes a message given up into the business's undelivered list (the owner's page reads it).
_GIVE_UP_LUA = f"""
local function give_up(key, member, now)
  redis.call('ZADD', key, now, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - {UNDELIVERED_KEEP_MS})
  redis.call('ZREMRANGEBYRANK', key, 0, -{UNDELIVERED_MAX + 1})
  redis.call('PEXPIRE', key, {UNDELIVERED_KEEP_MS})
end
"""

_FINISHED_LUA = "local finished = {" + ", ".join(f"{state}=true" for state in FINISHED) + "}\n"

# Now in epoch ms: the time given (the app's clock, in tests), or the server's own when '' is given.
_NOW_LUA = """
local function now_ms(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# A status callback naming its entry and the attempt's nonce proves Twilio accepted it: written
# down only while the entry is in flight (its record exists, is not finished and carries that
# nonce), so a callback naming another customer's entry, an older attempt or a finished entry adds
# nothing. Then the phone, if still waiting, is made due now (sooner, never later; a drained phone
# is not rung again), and the lease is dropped: a worker that died mid-send no longer keeps the
# customer waiting, and a live one finds its lease gone at its next message and stops (the proven
# entry is finished by whoever comes first, with the same sid). KEYS[1] delivery hash, [2] doorbell,
# [3] lease; ARGV[1] entry id, [2] MessageSid, [3] phone, [4] nonce, [5] now. Returns 1 when it proved.
_PROVE = (
    _FINISHED_LUA
    + _NOW_LUA
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local ok, record = pcall(cjson.decode, raw)
if not ok or type(record) ~= 'table' or finished[record.state] or record.nonce ~= ARGV[4] then return 0 end
redis.call('HSETNX', KEYS[1], 'acc:' .. ARGV[1], ARGV[2])
local now = now_ms(ARGV[5])
local due = redis.call('ZSCORE', KEYS[2], ARGV[3])
if due and tonumber(due) > now then redis.call('ZADD', KEYS[2], now, ARGV[3]) end
redis.call('DEL', KEYS[3])
return 1
"""
)

# A worker claims up to ARGV[2] phones due by ARGV[1], and up to ARGV[4] due reminders: each moves
# to the end of the claim (ARGV[3] ms later), so no other worker claims it meanwhile; a worker that
# dies leaves it due again then. Returns the phones, '|', the reminders, then the earliest score
# left in either set ('' when none). KEYS[1] doorbell, [2] the due reminders.
_CLAIM = """
local hold = tonumber(ARGV[1]) + tonumber(ARGV[3])
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, phone in ipairs(found) do redis.call('ZADD', KEYS[1], 'XX', hold, phone) end
found[#found + 1] = '|'
local reminders = {}
if tonumber(ARGV[4]) > 0 then
  reminders = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
end
for _, member in ipairs(reminders) do
  redis.call('ZADD', KEYS[2], 'XX', hold, member)
  found[#found + 1] = member
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local next_reminder = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
if next_reminder and (not first or tonumber(next_reminder) < tonumber(first)) then first = next_reminder end
found[#found + 1] = first or ''
return found
"""

# Before each send: the lease is still ours (extended) and the attempt is written down, in one
# step, so a worker whose lease lapsed never sends. A message about a booking (a reminder) goes
# only while the booking is still the one it is about: confirmed, at the start it names (ARGV[6]),
# so a cancel or move a moment before revokes it. KEYS[1] lease, [2] delivery hash, [3] the
# booking (the lease again when none); ARGV[1] token, [2] lease ms, [3] entry id, [4] record (JSON),
# [5] the hash's expiry (ms), [6] the booking's start ('' when none). Returns 1 (go), 0 (lease
# lost) or 2 (revoked).
_BEGIN = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[6] ~= '' then
  local b = redis.call('HMGET', KEYS[3], 'status', 'start')
  if b[1] ~= 'confirmed' or b[2] ~= ARGV[6] then return 2 end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""

# What became of an attempt (retry, uncertain, a failed lookup), written down only while the entry's
# record is still that attempt's (its nonce) and in flight: a status callback may have proved the
# attempt while its request hung, and another worker finished the entry meanwhile, whose finished
# record must stay (it names the MessageSid a later lookup must not take for another entry).
# KEYS[1] delivery hash; ARGV[1] entry id, [2] nonce, [3] record (JSON), [4] the hash's expiry (ms).
# Returns false when not written, else the MessageSid a callback proved the attempt with ('' if none).
_NOTE = (
    _FINISHED_LUA
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local ok, record = pcall(cjson.decode, raw)
if not ok or type(record) ~= 'table' or finished[record.state] or (record.nonce or '') ~= ARGV[2] then
  return false
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('HGET', KEYS[1], 'acc:' .. ARGV[1]) or ''
"""
)

# A message queued outside a tap (a notice): the phone made due (keeping an earlier time, e.g. a
# backoff) and the workers woken. KEYS[1] doorbell; ARGV[1] phone, [2] bell channel, [3] business,
# [4] now.
_RING = (
    _NOW_LUA
    + """
redis.call('ZADD', KEYS[1], 'NX', now_ms(ARGV[4]), ARGV[1])
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 1
"""
)

# An entry's outcome, written and the entry removed from the stream in one step; its acc: proof
# goes (the record holds the sid), and so do the customer's records finished before ARGV[4] with
# their proofs, and proofs whose record is gone; records finished before ARGV[5] lose the message
# they kept for a resend. Records in flight stay, however old.
# A message given up (ARGV[6], '' when sent) joins the undelivered list; a reminder's outcome is
# counted (ARGV[8], '' for other messages). KEYS[1] delivery hash, [2] stream, [3] undelivered,
# [4] reminder counts; ARGV[1] entry id, [2] record (JSON), [3] the hash's expiry (ms), [4] the
# cutoff (epoch ms), [5] the resend cutoff (epoch ms), [6] the undelivered member, [7] now, [8] the
# count.
# Returns the entries left in the stream.
_FINISH = (
    _FINISHED_LUA
    + _GIVE_UP_LUA
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[6] ~= '' then give_up(KEYS[3], ARGV[6], tonumber(ARGV[7])) end
if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[8], 1) end
redis.call('HDEL', KEYS[1], 'acc:' .. ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local cutoff = tonumber(ARGV[4])
local fields = redis.call('HGETALL', KEYS[1])
local live, proofs, dead = {}, {}, {}
for i = 1, #fields, 2 do
  local name = fields[i]
  if string.sub(name, 1, 4) == 'acc:' then
    proofs[#proofs + 1] = name
  else
    local ok, record = pcall(cjson.decode, fields[i + 1])
    if ok and type(record) == 'table' and finished[record.state] then
      if tonumber(record.at) and tonumber(record.at) < cutoff then
        dead[#dead + 1] = name
      elseif record.m and tonumber(record.at) and tonumber(record.at) < tonumber(ARGV[5]) then
        record.m = nil
        redis.call('HSET', KEYS[1], name, cjson.encode(record))
      end
    else
      live[name] = true
    end
  end
end
for _, name in ipairs(proofs) do
  if not live[string.sub(name, 5)] then dead[#dead + 1] = name end
end
for i = 1, #dead, 500 do
  redis.call('HDEL', KEYS[1], unpack(dead, i, math.min(i + 499, #dead)))
end
return redis.call('XLEN', KEYS[2])
"""
)

# What Twilio reported about an entry it accepted (the record is ``sent`` with that very sid):
# delivered or read, and the message kept for a resend goes; failed or undelivered, and the entry is
# queued again (due after ARGV[7] ms, the workers woken) when the failure passes (ARGV[5] = '1'),
# (a reminder given up is counted failed in KEYS[5], its business's reminder counts)
# the record still has its message, it was queued again fewer than ARGV[11] times, and it is still
# the customer's newest (nothing waiting, nothing sent after it); else it is marked failed, why
# with it, and it joins the undelivered list. KEYS[1] delivery hash, [2] stream, [3] doorbell,
# [4] undelivered; ARGV[1] entry id, [2] MessageSid,
# [3] status, [4] error code, [5] passing, [6] now, [7] delay, [8] bell, [9] business, [10] phone,
# [11] most requeues, [12] hash expiry. Returns 'unknown', 'delivered', 'requeued', 'superseded'
# or 'gave-up'.
_FATE = (
    _GIVE_UP_LUA
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'unknown' end
local ok, record = pcall(cjson.decode, raw)
if not ok or type(record) ~= 'table' or record.state ~= 'sent' or record.sid ~= ARGV[2] then return 'unknown' end
if ARGV[3] == 'delivered' or ARGV[3] == 'read' then
  if record.m then
    record.m = nil
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
  end
  return 'delivered'
end
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms) or 0, tonumber(seq) or 0
end
local function later(a, b)
  local am, as = parts(a)
  local bm, bs = parts(b)
  return am > bm or (am == bm and as > bs)
end
local why = 'Twilio reported it ' .. ARGV[3] .. ' (' .. ARGV[4] .. ') after accepting it'
local message = record.m and cjson.decode(record.m)
local outcome = 'gave-up'
if ARGV[5] == '1' and message and (tonumber(message.requeued) or 0) < tonumber(ARGV[11]) then
  outcome = 'requeued'
  if redis.call('XLEN', KEYS[2]) > 0 then outcome = 'superseded' end
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    local name = fields[i]
    if string.sub(name, 1, 4) ~= 'acc:' and later(name, ARGV[1]) then
      local ok2, other = pcall(cjson.decode, fields[i + 1])
      if ok2 and type(other) == 'table' and other.state == 'sent' then outcome = 'superseded' end
    end
  end
end
record.m = nil
record.state = 'failed'
if outcome == 'requeued' then
  message.requeued = (tonumber(message.requeued) or 0) + 1
  local id = redis.call('XADD', KEYS[2], '*', 'm', cjson.encode(message))
  record.reason = why .. '; queued again as ' .. id
  redis.call('ZADD', KEYS[3], 'NX', tonumber(ARGV[6]) + tonumber(ARGV[7]), ARGV[10])
  if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
elseif outcome == 'superseded' then
  record.reason = why .. '; a newer message to the customer superseded it'
else
  record.reason = why
end
if outcome ~= 'requeued' then
  local member = {phone = ARGV[10], entry = ARGV[1], state = 'failed', reason = record.reason}
  give_up(KEYS[4], cjson.encode(member), tonumber(ARGV[6]))
  if message and message.kind == 'reminder' then redis.call('HINCRBY', KEYS[5], 'failed', 1) end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
redis.call('PEXPIRE', KEYS[1], ARGV[12])
return outcome
"""
)

# A drained phone (the sweep's): its stream deleted and its doorbell dropped, unless an entry arrived
# since the last read (the webhook appends and rings at any moment): then both stay, the doorbell
# rung if it was not. The worker holding a phone says the same with its release (_LEAVE).
# KEYS[1] stream, [2] doorbell; ARGV[1] phone, [2] now (ms).
_SETTLE = """
if redis.call('XLEN', KEYS[1]) > 0 then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The oldest unsent entry of a phone with all the worker needs to decide on it, in one read: its
# id and message, its delivery record and acc: proof, the customer's last inbound time, and whether
# they wrote STOP; with a token, only after taking the phone's lease (SET NX: false when another
# holds it). An empty table when nothing waits. KEYS[1] lease, [2] stream, [3] delivery hash,
# [4] window, [5] the business's opt-outs; ARGV[1] token ('' to read only), [2] lease ms, [3] phone.
_HEAD = """
if ARGV[1] ~= '' and not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local entries = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #entries == 0 then return {} end
local id, fields, message = entries[1][1], entries[1][2], ''
for i = 1, #fields, 2 do
  if fields[i] == 'm' then message = fields[i + 1] end
end
local record = redis.call('HMGET', KEYS[3], id, 'acc:' .. id)
local window = redis.call('GET', KEYS[4]) or ''
return {id, message, record[1] or '', record[2] or '', window, redis.call('HEXISTS', KEYS[5], ARGV[3])}
"""

# A claim that found the phone still draining in the same worker undoes itself: the doorbell goes
# back to now, unless it moved since the claim put it at the claim's end (the drain deferred or
# settled it). KEYS[1] doorbell; ARGV[1] phone, [2] the claim's end (ms), [3] now (ms).
_UNCLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return 1
"""

# A worker done with a phone says its last word on the doorbell and releases the lease in one step,
# so a claim that failed on the lease meanwhile (it moved the doorbell to the end of its claim) is
# undone and none can come in between: with a due time (ARGV[4]: a retry, a lookup, or now after a
# batch) the doorbell is set to it, or to now when a status callback has proved the entry it was
# for (ARGV[5]) since (it may have come while the worker wrote the attempt down); else the phone is
# settled as its holder would (_SETTLE: the stream deleted and the doorbell dropped if drained,
# else due now). KEYS[1] stream, [2] doorbell, [3] lease, [4] delivery hash; ARGV[1] phone, [2] now
# (ms), [3] token, [4] due (ms, '' for none), [5] the entry waited for ('' for none).
_LEAVE = """
if ARGV[4] ~= '' then
  local due = ARGV[4]
  if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[4], 'acc:' .. ARGV[5]) == 1 then due = ARGV[2] end
  redis.call('ZADD', KEYS[2], due, ARGV[1])
elseif redis.call('XLEN', KEYS[1]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return 1
"""


@dataclass(frozen=True)
class Undelivered:
    """A message given up: when, to whom, and why (for the owner)."""

    at: datetime
    phone: str
    state: str
    reason: str


@dataclass(frozen=True)
class Head:
    """A phone's oldest unsent entry and what the worker knows of it."""

    entry_id: str
    #: the message to send; None when the entry cannot be read (it is marked failed, never blocks)
    message: dict[str, Any] | None
    #: the worker's record of an earlier attempt ({} when none, or when it is a finished record of
    #: an earlier entry with the same id, see :meth:`Outbox.record`)
    record: dict[str, Any]
    #: the MessageSid a status callback proved Twilio accepted it as
    accepted: str | None
    #: the customer's last inbound message (epoch ms), for WhatsApp's 24-hour window
    seen: int | None
    #: the customer wrote STOP: nothing the business starts goes to them
    opted_out: bool = False


#: WhatsApp takes free-form messages only this long after the customer's last message
WINDOW = timedelta(hours=24)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def in_window(seen_ms: int | None, now_ms: int) -> bool:
    """Whether a customer last heard from at ``seen_ms`` may still get a free-form message."""
    return seen_ms is not None and now_ms - seen_ms <= WINDOW.total_seconds() * 1000


class Outbox:
    """One business's outbox: enqueueing, the worker's bookkeeping, and delivery statuses.

    ``clock``: the app's clock in tests; None (production) for the Redis server's clock: the
    scripts then read ``TIME`` themselves and Python reads :class:`RedisClock`."""

    def __init__(
        self, client: redis.Redis, keys: BusinessKeys, *, clock: Callable[[], datetime] | None, bell: str = ""
    ) -> None:
        self.client = client
        self.keys = keys
        self.redis_time = clock is None
        self.clock: Callable[[], datetime] = clock or RedisClock(client, keys.due)
        #: the pub/sub channel that wakes the workers ('' for none)
        self.bell = bell
        self._status = client.register_script(_STATUS)
        self._release = client.register_script(_RELEASE)
        self._prove = client.register_script(_PROVE)
        self._finish = client.register_script(_FINISH)
        self._settle = client.register_script(_SETTLE)
        self._claim = client.register_script(_CLAIM)
        self._begin = client.register_script(_BEGIN)
        self._fate = client.register_script(_FATE)
        self._ring = client.register_script(_RING)
        self._head = client.register_script(_HEAD)
        self._leave = client.register_script(_LEAVE)
        self._unclaim = client.register_script(_UNCLAIM)
        self._note = client.register_script(_NOTE)

    def now_ms(self) -> int:
        return epoch_ms(self.clock())

    def now_arg(self) -> str:
        """Now for a script: '' lets it read the server's own clock (exact, no offset)."""
        return "" if self.redis_time else str(self.now_ms())

    # --- producers -------------------------------------------------------------------
    @property
    def business(self) -> str:
        return self.keys.business

    def enqueue_text(self, phone: str, text: str, sender: str | None = None) -> str:
        """Queue a free-form text to ``phone`` (e.g. a notice from the business); the entry id.

        Sent by the worker like any reply, in order after what is already queued for that
        phone; outside WhatsApp's 24-hour window, or once the customer wrote STOP, it is marked
        undeliverable, not sent (``proactive``: the business, not the customer, started it).
        """
        message = json.dumps(
            {"body": text, "proactive": True, **({"from": sender} if sender else {})}, ensure_ascii=False
        )
        entry_id = self.client.xadd(self.keys.outbox(phone), {"m": message})
        self.ring(phone)
        return str(entry_id)

    def ring(self, phone: str) -> None:
        """Tell the workers ``phone`` has messages (keeps an earlier due time, e.g. a backoff)."""
        self._ring(keys=[self.keys.due], args=[phone, self.bell, self.business, self.now_arg()])

    # --- gauges ----------------------------------------------------------------------
    def depth(self) -> int:
        """Customers with unsent messages (one ZCARD; for a gauge)."""
        return int(self.client.zcard(self.keys.due))

    def pending(self, phone: str) -> int:
        """Unsent messages of one customer (XLEN)."""
        return int(self.client.xlen(self.keys.outbox(phone)))

    # --- the worker's side -----------------------------------------------------------
    def due_phones(self, now_ms: int, limit: int = 50) -> list[str]:
        return cast(list[str], self.client.zrangebyscore(self.keys.due, "-inf", now_ms, start=0, num=limit))

    def claim(self, now_ms: int, limit: int, hold_ms: int) -> tuple[list[str], int | None]:
        """Up to ``limit`` phones due by ``now_ms``, each held for ``hold_ms`` (no other worker claims
        it meanwhile), and the earliest due time left (None when nothing waits)."""
        phones, _, first = self.claim_all(now_ms, limit, hold_ms, reminders=0)
        return phones, first

    def claim_all(
        self, now_ms: int, limit: int, hold_ms: int, *, reminders: int
    ) -> tuple[list[str], list[str], int | None]:
        """As :meth:`claim`, and up to ``reminders`` due reminders (``REF:offset``) held the same way."""
        keys = [self.keys.due, self.keys.reminders]
        *found, first = cast(list[str], self._claim(keys=keys, args=[now_ms, limit, hold_ms, reminders]))
        split = found.index("|")
        return found[:split], found[split + 1 :], (int(float(first)) if first != "" else None)

    def unclaim(self, phone: str, hold_ms: int) -> None:
        """Make ``phone`` due now if the last claim (ending at ``hold_ms``) is still what holds it back."""
        self._unclaim(keys=[self.keys.due], args=[phone, hold_ms, self.now_ms()])

    def next_due_ms(self) -> int | None:
        first = self.client.zrange(self.keys.due, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    def settle(self, phone: str) -> bool:
        """Delete a drained phone's stream and drop its doorbell, unless a message arrived meanwhile.

        One script: a webhook that appends and rings between our last read and this finds its
        entry kept and the phone due; one that appends after it makes a new stream and rings
        again. True when the stream was empty (and is now gone).
        """
        keys = [self.keys.outbox(phone), self.keys.due]
        return bool(self._settle(keys=keys, args=[phone, self.now_ms()]))

    def release(self, phone: str, token: str) -> None:
        self._release(keys=[self.keys.lease(phone)], args=[token])

    def begin(
        self,
        phone: str,
        token: str,
        lease_ms: int,
        entry_id: str,
        record: dict[str, Any],
        *,
        booking: str = "",
        version: str = "",
    ) -> int:
        """Write down an attempt about to be sent, if the lease is still ours (and extend it), and the
        booking it is about (if any) is still confirmed at ``version``: 1, else 0 (lease lost) or 2
        (the booking changed: do not send)."""
        keys = [self.keys.lease(phone), self.keys.delivery(phone)]
        keys.append(self.keys.booking(booking) if booking else keys[0])
        record_json = json.dumps(record, ensure_ascii=False)
        args: list[str | int] = [token, lease_ms, entry_id, record_json, RECORD_TTL_MS, version if booking else ""]
        return int(self._begin(keys=keys, args=args))

    def take(self, phone: str, token: str, lease_ms: int) -> tuple[bool, Head | None]:
        """Take ``phone``'s lease (False when another worker holds it) and read its oldest entry."""
        found = self._head(keys=self._head_keys(phone), args=[token, lease_ms, phone])
        return (False, None) if found is None else (True, _head(found))

    def head(self, phone: str) -> Head | None:
        """``phone``'s oldest unsent entry (None when nothing waits), in one round trip."""
        return _head(self._head(keys=self._head_keys(phone), args=["", 0, phone]))

    def _head_keys(self, phone: str) -> list[str]:
        keys = self.keys
        return [keys.lease(phone), keys.outbox(phone), keys.delivery(phone), keys.window(phone), keys.optout]

    def reach(self, phone: str) -> tuple[int | None, bool]:
        """Whether the business may message ``phone`` now: their last inbound time (epoch ms) and
        whether they wrote STOP. One round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.window(phone))
        pipe.hexists(self.keys.optout, phone)
        seen, opted_out = pipe.execute()
        return (int(seen) if seen else None), bool(opted_out)

    def leave(self, phone: str, token: str, due_ms: int | None = None, entry_id: str = "") -> None:
        """Done with ``phone`` for now: due at ``due_ms`` (now if a callback has proved ``entry_id``
        meanwhile), or settled as its holder (see :meth:`settle`); the lease released in the same step."""
        keys = [self.keys.outbox(phone), self.keys.due, self.keys.lease(phone), self.keys.delivery(phone)]
        args: list[str | int] = [phone, self.now_ms(), token, "" if due_ms is None else due_ms, entry_id]
        self._leave(keys=keys, args=args)

    def known_sids(self, phone: str) -> set[str]:
        """Every MessageSid the records of ``phone`` name (a lookup at Twilio must not take one of
        them for the message it looks for)."""
        raw = cast(dict[str, str], self.client.hgetall(self.keys.delivery(phone)))
        sids = {value for name, value in raw.items() if name.startswith("acc:")}
        for name, value in raw.items():
            if not name.startswith("acc:"):
                try:
                    sid = json.loads(value).get("sid")
                except (ValueError, AttributeError):
                    continue
                if sid:
                    sids.add(str(sid))
        return sids

    def write_record(self, phone: str, entry_id: str, record: dict[str, Any]) -> None:
        key = self.keys.delivery(phone)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, entry_id, json.dumps(record, ensure_ascii=False))
        pipe.pexpire(key, RECORD_TTL_MS)
        pipe.execute()

    def note(self, phone: str, entry_id: str, record: dict[str, Any]) -> str | None:
        """Write down what became of an attempt (``record`` carries its nonce), unless the entry's
        record is no longer that attempt in flight (a status callback proved it while it hung and
        another worker finished the entry): None then, else the MessageSid a callback proved the
        attempt with ('' when none did)."""
        keys = [self.keys.delivery(phone)]
        args: list[str | int] = [entry_id, str(record.get("nonce", "")), json.dumps(record, ensure_ascii=False)]
        written = self._note(keys=keys, args=[*args, RECORD_TTL_MS])
        if written is None:
            return None
        return written.decode() if isinstance(written, bytes) else str(written)

    def finish(self, phone: str, entry_id: str, record: dict[str, Any], *, count: str = "") -> int:
        """Record the entry's outcome and remove it from the stream, atomically (one slot), pruning
        the phone's records finished more than :data:`FINISHED_KEEP` ago; the entries left.
        ``count``: the reminder counter to add one to (a reminder's outcome)."""
        now = self.clock()
        cutoff, resend_cutoff = epoch_ms(now - FINISHED_KEEP), epoch_ms(now - RESEND_WITHIN)
        given_up = ""
        if record.get("state") in GIVEN_UP:
            member = {"phone": phone, "entry": entry_id, "state": record["state"], "reason": record.get("reason", "")}
            given_up = json.dumps(member, ensure_ascii=False)
        keys = [self.keys.delivery(phone), self.keys.outbox(phone), self.keys.undelivered, self.keys.reminder_counts]
        record_json = json.dumps(record, ensure_ascii=False)
        args: list[str | int] = [entry_id, record_json, RECORD_TTL_MS, cutoff, resend_cutoff, given_up, epoch_ms(now)]
        args.append(count)
        return int(self._finish(keys=keys, args=args))

    def undelivered(self, limit: int = 20) -> list[Undelivered]:
        """The messages given up most recently, newest first (one read: for the owner's page)."""
        found = cast(
            list[tuple[str, float]], self.client.zrevrange(self.keys.undelivered, 0, limit - 1, withscores=True)
        )
        given_up = []
        for member, at_ms in found:
            try:
                data = json.loads(member)
            except ValueError:
                continue
            at = datetime.fromtimestamp(at_ms / 1000, UTC)
            given_up.append(
                Undelivered(at, str(data.get("phone", "")), str(data.get("state", "")), str(data.get("reason", "")))
            )
        return given_up

    def delivery(self, phone: str) -> dict[str, dict[str, Any]]:
        """Every delivery record of ``phone`` by entry id, oldest first (for tests and operators)."""
        raw = cast(dict[str, str], self.client.hgetall(self.keys.delivery(phone)))
        ids = sorted((k for k in raw if not k.startswith("acc:")), key=lambda k: tuple(map(int, k.split("-"))))
        return {k: json.loads(raw[k]) for k in ids}

    def streams(self) -> Iterator[str]:
        """Phones with an outbox stream (SCAN: the worker's sweep only, never a request)."""
        for key in self.client.scan_iter(match=self.keys.outbox_pattern, count=500, _type="stream"):
            yield self.keys.phone_of_outbox(key)

    def record_status(
        self,
        message_sid: str,
        status: str,
        error_code: str,
        *,
        phone: str | None,
        entry_id: str | None,
        nonce: str = "",
    ) -> bool:
        """Store a delivery status unless a later one is already known; True when it changed.

        A callback naming its outbox entry and that attempt's nonce also proves Twilio accepted
        the entry, which a worker that died before writing down the MessageSid needs to know (see
        the worker): it is written down while that attempt is in flight, the phone made due now
        and its lease dropped. A callback of a finished or pruned entry (``delivered`` and
        ``read`` come later), of another attempt or naming another customer's entry leaves the
        delivery hash as it is, expiry included.
        """
        if phone and entry_id and nonce:
            self._prove(
                keys=[self.keys.delivery(phone), self.keys.due, self.keys.lease(phone)],
                args=[entry_id, message_sid, phone, nonce, self.now_arg()],
            )
        changed = self._status(
            keys=[self.keys.status(message_sid)],
            args=[status, error_code, self.now_ms(), RECORD_TTL_MS, json.dumps(STATUS_RANK)],
        )
        return bool(changed)

    def fate(
        self, phone: str, entry_id: str, message_sid: str, status: str, error_code: str, *, passing: bool, delay_ms: int
    ) -> str:
        """Act on what Twilio reported about an entry it accepted (see ``_FATE``): 'unknown' (not
        this entry's message, or not sent by us), 'delivered', 'requeued', 'superseded' or 'gave-up'."""
        keys = [self.keys.delivery(phone), self.keys.outbox(phone), self.keys.due, self.keys.undelivered]
        keys.append(self.keys.reminder_counts)
        args: list[str | int] = [
            entry_id,
            message_sid,
            status,
            error_code or "-",
            "1" if passing else "0",
            self.now_ms(),
            delay_ms,
            self.bell,
            self.business,
            phone,
            MAX_REQUEUES,
            RECORD_TTL_MS,
        ]
        return str(self._fate(keys=keys, args=args))

    def status(self, message_sid: str) -> dict[str, str]:
        return cast(dict[str, str], self.client.hgetall(self.keys.status(message_sid)))


def _record(raw: str | None, accepted: str | None) -> tuple[dict[str, Any], str | None]:
    """A delivery record and its proof, as read for an entry still in the stream.

    An entry leaves the stream in the step that finishes its record, so a finished record found
    for an entry still there belongs to an earlier entry with the same id (a deleted stream
    re-created in the same millisecond, or a server clock set back): it says nothing about this one.
    """
    record = json.loads(raw) if raw else {}
    if record.get("state") in FINISHED:
        return {}, None
    return record, accepted or None


def _head(found: list[str]) -> Head | None:
    """:data:`_HEAD`'s answer as a :class:`Head`."""
    if not found:
        return None
    entry_id, raw_message, raw_record, accepted, seen, opted_out = found
    try:
        message = json.loads(raw_message)
    except ValueError:
        message = None
    if not (isinstance(message, dict) and ("body" in message or "template" in message)):
        message = None
    record, proof = _record(raw_record or None, accepted or None)
    return Head(entry_id, message, record, proof, int(seen) if seen else None, bool(opted_out))

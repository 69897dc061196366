"""Every Redis key the bot uses, built in one place (like aiogram's ``RedisStorage`` key builder).

All keys of one business carry its hash tag ``{<business>}``, so everything a tap touches (the
customer's session, the message record, holds, bookings, indexes, the outbox) sits in one Redis
Cluster slot and one script can change it atomically. One business is then served by one master;
many businesses spread over a cluster. The few keys shared by all businesses are only ever
touched by single-key commands: the content template SIDs and approvals, the worker's totals,
the workers' heartbeats and the calendar feeds' tokens.
The counters of failed /admin logins (Flask-Limiter's, :mod:`bot.logins`) carry no hash tag
either: each is read and written by a single-key script, wherever its slot is.

:data:`LAYOUT` describes each key for people; the key table of docs/architecture.md is rendered
from it and a test checks that every key the running bot writes matches one of its patterns.

:class:`LegacyKeys` names the keys of release 1 (one business per deployment, sessions tagged by
phone), read only while a deployment is being upgraded (see :mod:`bot.upgrade`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

#: the session layout this release writes (release 1 wrote layout 3, under :class:`LegacyKeys`)
LAYOUT_VERSION = "4"


def day_code(day: date) -> str:
    """``20260114``: how a local date appears in keys, button IDs and sessions."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def parse_day_code(value: str) -> date | None:
    """The date :func:`day_code` wrote, or None for anything else (a damaged session, a forged button)."""
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


@dataclass(frozen=True)
class BusinessKeys:
    """The keys of one business: ``<prefix>:{<business>}:<kind>[:<part>…]``."""

    prefix: str
    business: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.business}}}"

    # -- conversations ----------------------------------------------------------------------
    def session(self, phone: str) -> str:
        return f"{self.base}:session:{phone}"

    def profile(self, phone: str) -> str:
        return f"{self.base}:profile:{phone}"

    def message(self, message_sid: str) -> str:
        return f"{self.base}:msg:{message_sid}"

    def answered(self, phone: str) -> str:
        return f"{self.base}:answered:{phone}"

    # -- the outbox (Content API mode) ------------------------------------------------------
    def outbox(self, phone: str) -> str:
        return f"{self.base}:outbox:{phone}"

    def window(self, phone: str) -> str:
        return f"{self.base}:window:{phone}"

    def preview(self, phone: str) -> str:
        """The replies to a preview phone of ``/try`` (never the outbox: nothing reaches Twilio)."""
        return f"{self.base}:preview:{phone}"

    def delivery(self, phone: str) -> str:
        return f"{self.base}:delivery:{phone}"

    def lease(self, phone: str) -> str:
        return f"{self.base}:lease:{phone}"

    @property
    def due(self) -> str:
        return f"{self.base}:due"

    @property
    def blocks(self) -> str:
        return f"{self.base}:blocks"

    @property
    def reminders(self) -> str:
        return f"{self.base}:reminders"

    @property
    def reminder_counts(self) -> str:
        return f"{self.base}:reminder-counts"

    @property
    def optout(self) -> str:
        return f"{self.base}:optout"

    @property
    def retention(self) -> str:
        return f"{self.base}:retention"

    @property
    def undelivered(self) -> str:
        return f"{self.base}:undelivered"

    def status(self, message_sid: str) -> str:
        return f"{self.base}:status:{message_sid}"

    @property
    def outbox_pattern(self) -> str:
        """For the worker's sweep (SCAN), never for a request."""
        return f"{self.base}:outbox:*"

    def phone_of_outbox(self, key: str) -> str:
        return key.rpartition(":outbox:")[2]

    # -- bookings ---------------------------------------------------------------------------
    def occupancy(self, resource: str, day: date) -> str:
        return f"{self.base}:occ:{resource}:{day_code(day)}"

    def booking(self, ref: str) -> str:
        return f"{self.base}:booking:{ref}"

    @property
    def booking_prefix(self) -> str:
        return f"{self.base}:booking:"

    def customer(self, phone: str) -> str:
        return f"{self.base}:customer:{phone}"

    @property
    def bookings(self) -> str:
        return f"{self.base}:bookings"

    def from_hold(self, token: str) -> str:
        return f"{self.base}:from-hold:{token}"

    # -- the owner's calendar feed (see :mod:`bot.feeds`) -------------------------------------
    @property
    def calendar_feed(self) -> str:
        """Whose feed → its secret token (``business`` for the business's own)."""
        return f"{self.base}:calendar-feed"

    # -- upgrades ---------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        """``4`` once this business's data is all in this layout (see :mod:`bot.upgrade`)."""
        return f"{self.base}:layout"


@dataclass(frozen=True)
class SharedKeys:
    """The keys shared by every business of a deployment (single-key commands only)."""

    prefix: str

    @property
    def templates(self) -> str:
        return f"{self.prefix}:templates"

    @property
    def template_approvals(self) -> str:
        return f"{self.prefix}:template-approvals"

    @property
    def outbox_totals(self) -> str:
        return f"{self.prefix}:outbox-totals"

    @property
    def worker_heartbeats(self) -> str:
        """Each running outbox worker's last heartbeat (see :mod:`bot.outbox.heartbeat`)."""
        return f"{self.prefix}:worker-heartbeats"

    @property
    def calendar_feeds(self) -> str:
        """SHA-256 of a calendar feed's token → whose feed it is (see :mod:`bot.feeds`)."""
        return f"{self.prefix}:calendar-feeds"

    @property
    def outbox_bell(self) -> str:
        """Pub/sub channel (not a key): a business id is published on it when a message is queued."""
        return f"{self.prefix}:outbox-bell"


@dataclass(frozen=True)
class LegacyKeys:
    """Release 1's keys: one business, conversation keys tagged by phone, bookings under ``bk``."""

    prefix: str
    business: str

    def session(self, phone: str) -> str:
        return f"{self.prefix}:session:{{{phone}}}"

    def profile(self, phone: str) -> str:
        return f"{self.prefix}:profile:{{{phone}}}"

    def outbox(self, phone: str) -> str:
        return f"{self.prefix}:outbox:{{{phone}}}"

    def window(self, phone: str) -> str:
        return f"{self.prefix}:seen:{{{phone}}}"

    def delivery(self, phone: str) -> str:
        return f"{self.prefix}:delivery:{{{phone}}}"

    @property
    def due(self) -> str:
        return f"{self.prefix}:outbox-due"

    @property
    def booking_base(self) -> str:
        return f"{self.prefix}:bk:{{{self.business}}}"

    def occupancy(self, resource: str, day: date) -> str:
        return f"{self.booking_base}:occ:{resource}:{day_code(day)}"

    def booking(self, ref: str) -> str:
        return f"{self.booking_base}:booking:{ref}"

    def customer(self, phone: str) -> str:
        return f"{self.booking_base}:customer:{phone}"

    @property
    def bookings(self) -> str:
        return f"{self.booking_base}:bookings"

    def from_hold(self, token: str) -> str:
        return f"{self.booking_base}:hold:{token}"

    def renamed(self, key: str, new: BusinessKeys) -> str | None:
        """The key of this release that a release-1 booking key becomes (None: not a booking key)."""
        head = self.booking_base + ":"
        if not key.startswith(head):
            return None
        kind, _, rest = key[len(head) :].partition(":")
        if kind == "hold":
            return new.from_hold(rest)
        if kind in ("occ", "booking", "customer") and rest:
            return f"{new.base}:{kind}:{rest}"
        return new.bookings if kind == "bookings" and not rest else None

    def pattern(self, kind: str) -> str:
        """A SCAN pattern of release 1's conversation keys of ``kind`` (``session``, ``profile``,
        ``outbox``, ``seen``) or of its booking keys (``bk``): for ``bookings migrate`` only."""
        if kind == "bk":
            return _escape(self.booking_base) + ":*"
        return _escape(f"{self.prefix}:{kind}:") + "{*}"

    @staticmethod
    def phone_in(key: str) -> str:
        """The phone of a release-1 conversation key (``…:{+E164}…``)."""
        return key[key.index("{") + 1 : key.index("}")]


def _escape(text: str) -> str:
    """``text`` as a literal part of a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class KeyDoc:
    """One row of the key table: a pattern, its Redis type, its expiry and what it holds."""

    pattern: str
    type: str
    expiry: str
    content: str

    def regex(self) -> re.Pattern[str]:
        """The pattern as a regular expression over real keys (``<…>`` parts are placeholders)."""
        parts = re.split(r"(<[^>]+>)", self.pattern)
        return re.compile("".join(r"[^:]+" if p.startswith("<") else re.escape(p) for p in parts if p))


_B = "<prefix>:{<business>}"

#: the key table (docs/architecture.md, "Redis key layout"): every key this release writes
LAYOUT: tuple[KeyDoc, ...] = (
    KeyDoc(
        f"{_B}:session:<+E164>",
        "hash",
        "`SESSION_TTL_SECONDS` after the last write",
        "the conversation (layout 4): `rev`, `step`, `lang`, `turn`, `offered` (+ `offered2`…), "
        "and the flow's fields (see [Sessions](#sessions))",
    ),
    KeyDoc(f"{_B}:profile:<+E164>", "hash", "`PROFILE_TTL_SECONDS` after the last choice", "`language`"),
    KeyDoc(
        f"{_B}:msg:<MessageSid>",
        "string",
        "`DEDUPE_TTL_SECONDS`",
        "the TwiML answered to that message (Twilio's retries get it again)",
    ),
    KeyDoc(
        f"{_B}:answered:<+E164>",
        "zset",
        "30 days after the customer's last message",
        "the messages answered (48 bits of each MessageSid, in base 62) → when: every one of the last 48 "
        "hours, and the last 100 whatever their age (a copy of one of them changes nothing)",
    ),
    KeyDoc(
        f"{_B}:occ:<resource>:<YYYYMMDD>",
        "hash",
        "none (holds lapse by their own expiry)",
        "hold token → `start,end,expires_ms`; `=start,end` → `start,end,0,n`: the `n` bookings of that "
        "interval (epoch seconds, buffers included); `REF` → `start,end,0` (bookings of early releases); "
        "`block:<id>` → `start,end,0,1000000`: time off (see `blocks`)",
    ),
    KeyDoc(
        f"{_B}:booking:<REF>",
        "hash",
        "**never**",
        "`ref`, `phone`, `name`, `service`, `resource`, `start`, `end`, `day`, `status` (`confirmed`, "
        "`cancelled`, `rescheduled`), `language`, `created_at`, `changed_at`, `rescheduled_from`/`_to`, `occ`, "
        "`reminders` (its offsets), `reminded:<offset>` (the outbox entry it went as), `customer_confirmed_at`",
    ),
    KeyDoc(f"{_B}:customer:<+E164>", "zset", "never", "the phone's active bookings: REF → start"),
    KeyDoc(f"{_B}:bookings", "zset", "never", "every booking of the business: REF → start"),
    KeyDoc(f"{_B}:from-hold:<token>", "string", "2 days", "the REF booked from that hold (a second Confirm)"),
    KeyDoc(f"{_B}:layout", "string", "never", "`4` once all of the business's data is in this layout"),
    KeyDoc(
        f"{_B}:outbox:<+E164>",
        "stream",
        "none (sent entries are deleted, the stream once drained)",
        "unsent messages, field `m` (JSON)",
    ),
    KeyDoc(
        f"{_B}:preview:<+999…>",
        "stream",
        "1 hour after the last reply",
        "replies to a preview phone of `/try` (field `m`, as an outbox entry), read and deleted by the page",
    ),
    KeyDoc(f"{_B}:due", "zset", "none", "phone → epoch ms its next message is due (the worker's doorbell)"),
    KeyDoc(
        f"{_B}:blocks",
        "hash",
        "never (until the owner removes the block)",
        "block id → JSON `{start, end, reason, places}`: time off the owner added; its entries "
        "`block:<id>` → `start,end,0,1000000` in the occupancy hashes of every resource (`places`)",
    ),
    KeyDoc(
        f"{_B}:reminders",
        "zset",
        "none (a reminder leaves when it is sent, or its booking is moved or cancelled)",
        "`<REF>:<offset>` → epoch ms the reminder is due; written by the step that books, moves or cancels",
    ),
    KeyDoc(
        f"{_B}:reminder-counts",
        "hash",
        "none",
        "reminders `queued`, `sent`, `failed`, `revoked` (booking changed first), `opted_out`, `not_approved`, "
        "`late` (due after the booking started: no worker ran), `confirmed` (by the customer's tap) → counts, "
        "exported at `/metrics`",
    ),
    KeyDoc(f"{_B}:window:<+E164>", "string", "2 days", "epoch ms of the customer's last message (24-hour window)"),
    KeyDoc(
        f"{_B}:delivery:<+E164>",
        "hash",
        "7 days after the worker's last write; a finished record is pruned 2 days after it finished",
        "outbox entry id → the worker's record (state, `at`, attempts, attempt `nonce`, `look_at`, sid, reason; a sent "
        "one keeps its message `m` 15 minutes or until delivered); `acc:<id>` → MessageSid a status callback proved "
        "Twilio accepted an entry still in flight as",
    ),
    KeyDoc(
        f"{_B}:lease:<+E164>",
        "string",
        "15 seconds, extended before each send",
        "the worker sending this customer's messages (dropped by a callback proving its send)",
    ),
    KeyDoc(
        f"{_B}:undelivered",
        "zset",
        "7 days after the last write; the newest 200 kept",
        "JSON `{phone, entry, state, reason}` → epoch ms a message was given up (failed, undeliverable, or failed "
        "after Twilio accepted it): shown on `/admin`",
    ),
    KeyDoc(
        f"{_B}:optout",
        "hash",
        "never (a START removes the customer)",
        "phone → epoch seconds it wrote STOP: no business-initiated message to it (notices, reminders) until START",
    ),
    KeyDoc(
        f"{_B}:retention",
        "string",
        "never",
        "the start (epoch s) up to which every booking was looked at by the retention sweep",
    ),
    KeyDoc(f"{_B}:status:<MessageSid>", "hash", "7 days", "`status`, `error`, `at` from Twilio's status callback"),
    KeyDoc(
        f"{_B}:calendar-feed",
        "hash",
        "never (a rotation replaces the token)",
        "`business` → the secret token of the business's calendar feed (`/calendar/<token>.ics`, `calendar url`); "
        "`staff:<id>` for a staff member's, later",
    ),
    KeyDoc("<prefix>:templates", "hash", "none", "content template friendly name → `HX…` SID (`templates sync`)"),
    KeyDoc(
        "<prefix>:template-approvals",
        "hash",
        "none",
        "content template friendly name → JSON `{status, reason, at}`: WhatsApp's approval as last fetched "
        "(`templates sync`/`list`, and the worker every few minutes until approved)",
    ),
    KeyDoc(
        "<prefix>:calendar-feeds",
        "hash",
        "none (a rotation removes the old token's field)",
        "SHA-256 (hex) of a calendar feed's token → JSON `{business}` (+ `staff`): how `/calendar/<token>.ics` "
        "finds its business in one read; the business's `calendar-feed` must still name the token",
    ),
    KeyDoc("<prefix>:outbox-totals", "hash", "none", "the worker's send results → counts, exported at `/metrics`"),
    KeyDoc(
        "<prefix>:worker-heartbeats",
        "hash",
        "30 seconds after the last heartbeat (a worker's field is dropped 30 s after its last)",
        "outbox worker → `<epoch ms> <JSON {host, pid, businesses}>`, written every 5 seconds by each running "
        "worker (Redis's clock) and removed when it stops: read by `flask doctor`",
    ),
    KeyDoc(
        "<prefix>:admin-logins:LIMITER/<who>/<scope>/<n>/1/minute",
        "list",
        "1 minute after the last failure",
        "epoch seconds of the failed `/admin` logins of the last minute (Flask-Limiter's moving window): "
        "`<who>/address/10` per client address (an IPv6 /64 as `2001-db8-0-1`), `<who>/business/30` per business",
    ),
)


def describe(key: str, prefix: str) -> KeyDoc | None:
    """The row of :data:`LAYOUT` that ``key`` matches (None: an undocumented key)."""
    if not key.startswith(prefix + ":"):
        return None
    return next((row for row in LAYOUT if row.regex().fullmatch(key)), None)


def key_table() -> str:
    """The key table of docs/architecture.md (Markdown), rendered from :data:`LAYOUT`."""
    lines = ["| Key | Type | Expiry | Content |", "|---|---|---|---|"]
    lines += [f"| `{row.pattern}` | {row.type} | {row.expiry} | {row.content} |" for row in LAYOUT]
    return "\n".join(lines)

"""A tap's two round trips: :meth:`TapStore.load` (one pipelined read) and :meth:`TapStore.apply`
(one script that writes everything the tap causes, or nothing).

The load reads the message record (a retry of a message already answered gets the first reply
again), the customer's session and profile with this business, and whatever the tapped button
will need (:mod:`bot.reads`). The apply script (``bot/lua/tap.lua``) claims the message, checks
that the session's ``rev`` is still the one loaded, re-checks every booking request against what
is stored now, and only then writes the session, the holds and bookings, the reply record, the
profile and the outbox entry. A session changed meanwhile (another tap of the same phone) or a
request whose outcome is not the one the reply announces makes it write nothing: the engine runs
the tap again on the new state.

Exactly once, and no replays: the reply record lives only as long as Twilio may retry (its whole
budget, retries included, is 15 s), while the customer's ``answered`` set remembers every message
answered in the last :data:`ANSWERED_HOURS` hours and the last :data:`ANSWERED_KEEP` whatever
their age (48 bits of each MessageSid; one sorted set per customer and business, kept 30 days
after their last message). A copy of one of them, a late retry or a signed request captured and
re-posted days later, changes nothing and is answered with an empty TwiML response.

**While upgrading** from release 1 (see :mod:`bot.upgrade`) the load also reads the customer's
release-1 session and profile, and the business's layout marker; a release-1 session is converted
(:mod:`bot.legacy`), written under this release's key by the apply, and then deleted (one more
round trip, once per customer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import redis

from .booking.store import KeyList, Read
from .keys import LAYOUT_VERSION
from .legacy import from_layout3
from .lua import Scripts
from .phones import is_preview
from .sessions import in_base
from .tenants import Tenant

#: every message answered this recently is remembered…
ANSWERED_HOURS = 48
#: …and at least this many of a customer's last ones, whatever their age (a sorted set of at most 128
#: members stays one compact listpack: ``zset-max-listpack-entries``)
ANSWERED_KEEP = 100
#: how long a customer's answered set outlives their last message
ANSWERED_TTL_MS = 30 * 86_400 * 1000
#: how long the 24-hour window stamp lives: past the window it means nothing
WINDOW_TTL_MS = 2 * 86_400 * 1000
#: how long a preview phone's unread replies are kept
PREVIEW_TTL_MS = 3600 * 1000
_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def answered_id(message_sid: str) -> str:
    """What the answered set keeps of a MessageSid: its last 12 hex digits (48 bits), in base 62 (at
    most 9 characters). A new message taken for one of a customer's last 100 (and so ignored) happens
    about once in 2.8 trillion."""
    tail = message_sid[-12:]
    if len(tail) != 12 or any(c not in "0123456789abcdef" for c in tail):  # never a Twilio MessageSid
        return tail
    return in_base(int(tail, 16), _BASE62)


def release_1_id(message_sid: str) -> str:
    """How release 1's sessions remembered a message in ``n``/``seen``: 28 bits, in base 62."""
    tail = message_sid[-7:]
    if len(tail) != 7 or any(c not in "0123456789abcdef" for c in tail):
        return tail
    return in_base(int(tail, 16), _BASE62)


@dataclass(frozen=True)
class Snapshot:
    """What one load returns."""

    prior_reply: str | None
    session: dict[str, str]
    profile_language: str | None
    #: answered before, but its reply is no longer kept (see ``DEDUPE_TTL_SECONDS``)
    answered: bool = False
    #: the values of the reads asked for, by read
    reads: dict[Read, Any] = field(default_factory=dict)
    #: the session came from release 1's key (written under this release's on apply)
    from_legacy: bool = False
    #: the profile language came from release 1's key (likewise)
    profile_from_legacy: bool = False
    #: the business's layout marker says its upgrade is complete
    upgraded: bool = False


class Status(Enum):
    OK = "ok"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REFUSED = "refused"


@dataclass(frozen=True)
class Applied:
    status: Status
    prior_reply: str | None = None
    #: for REFUSED: the request refused (its index in the plan) and the outcome the store found
    refused: int = -1
    outcome: tuple[str, str] = ("", "")
    #: lapsed holds the scripts deleted on the way
    purged: int = 0


@dataclass
class TapPlan:
    """Everything one tap writes."""

    shop: Tenant
    phone: str
    message_sid: str
    expected_rev: str
    fields: dict[str, str]
    reply: str
    requests: list[Any]
    profile_language: str | None = None
    outbound: str | None = None
    #: "out" (STOP) or "in" (START): the customer's choice about business-initiated messages
    consent: str = ""
    window_ms: int | None = None
    now_ms: int = 0
    #: delete the customer's release-1 session and profile once written under the new keys
    drop_legacy: bool = False
    #: messages the business starts, queued with the tap (the owner's alerts)
    notices: tuple[Any, ...] = ()


class TapStore:
    """Sessions, profiles and message records, and the apply script (one client for all businesses)."""

    def __init__(
        self,
        client: redis.Redis,
        scripts: Scripts,
        *,
        session_ttl: int,
        profile_ttl: int,
        dedupe_ttl: int,
        redis_time: bool = False,
        bell: str = "",
    ) -> None:
        self.client = client
        self.scripts = scripts
        #: stamp the outbox's doorbell and 24-hour window with the server's clock (production)
        self.redis_time = redis_time
        #: the channel a queued message is announced on (wakes the outbox workers)
        self.bell = bell
        self._session_ttl_ms = session_ttl * 1000
        self._profile_ttl_ms = profile_ttl * 1000
        self._dedupe_ttl_ms = dedupe_ttl * 1000

    def load(self, shop: Tenant, phone: str, message_sid: str, reads: list[Read]) -> Snapshot:
        """One round trip: the message record, the session, the profile language and ``reads``."""
        keys, legacy = shop.keys, shop.legacy
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys.message(message_sid))
        pipe.hgetall(keys.session(phone))
        pipe.hget(keys.profile(phone), "language")
        pipe.zscore(keys.answered(phone), answered_id(message_sid))
        if legacy:
            pipe.hgetall(legacy.session(phone))
            pipe.hget(legacy.profile(phone), "language")
            pipe.get(keys.layout)
        counts = [shop.bookings.queue(pipe, read) for read in reads]
        replies = pipe.execute()
        prior, session, language, when = replies[:4]
        answered = prior is None and when is not None
        offset = 4
        from_legacy = profile_from_legacy = upgraded = False
        if legacy:
            old_session, old_language, marker = replies[4:7]
            offset = 7
            upgraded = marker == LAYOUT_VERSION
            if not session and old_session:
                session, from_legacy = from_layout3(old_session), True
                release_1_seen = session.pop("seen", "").split()
                answered = answered or (prior is None and release_1_id(message_sid) in release_1_seen)
            if not language and old_language:
                language, profile_from_legacy = old_language, True
        values: dict[Read, Any] = {}
        for read, count in zip(reads, counts, strict=True):
            values[read] = shop.bookings.parse(read, replies[offset : offset + count])
            offset += count
        return Snapshot(prior, session, language, answered, values, from_legacy, profile_from_legacy, upgraded)

    def apply(self, plan: TapPlan) -> Applied:
        """One round trip: the apply script (see the module docstring)."""
        shop, phone = plan.shop, plan.phone
        keys = shop.keys
        preview = is_preview(phone)
        script_keys = KeyList(
            [
                keys.message(plan.message_sid),
                keys.session(phone),
                keys.profile(phone),
                keys.preview(phone) if preview else keys.outbox(phone),
                keys.due,
                keys.window(phone),
                keys.answered(phone),
                keys.optout,
            ]
        )
        ops = [shop.bookings.encode(request, script_keys) for request in plan.requests]
        notices = shop.bookings.encode_notices(plan.notices, script_keys)
        header = {
            "id": answered_id(plan.message_sid),
            "now_s": plan.now_ms // 1000,
            "answered_since": plan.now_ms // 1000 - ANSWERED_HOURS * 3600,
            "answered_keep": ANSWERED_KEEP,
            "answered_ttl": ANSWERED_TTL_MS,
            "rev": plan.expected_rev,
            "ops": ops,
            "adopt": [list(pair) for pair in script_keys.adopt],
            "reply": plan.reply,
            "session_ttl": self._session_ttl_ms,
            "dedupe_ttl": self._dedupe_ttl_ms,
            "language": plan.profile_language or "",
            "profile_ttl": self._profile_ttl_ms,
            "outbound": plan.outbound or "",
            "consent": plan.consent,
            "phone": phone,
            "now_ms": plan.now_ms,
            "window_ms": plan.window_ms or 0,
            "window_ttl": WINDOW_TTL_MS,
            "redis_time": self.redis_time,
            "bell": self.bell,
            "business": shop.id,
            "notices": notices,
            "preview": preview,
            "preview_ttl": PREVIEW_TTL_MS,
        }
        args: list[str] = [json.dumps(header, ensure_ascii=False, separators=(",", ":"))]
        for name, value in plan.fields.items():
            args += (name, value)
        reply = self.scripts.tap(keys=script_keys.keys, args=args)
        status = Status(reply[0])
        if status is Status.OK and plan.drop_legacy and shop.legacy:  # once per customer while upgrading
            self.client.delete(shop.legacy.session(phone), shop.legacy.profile(phone))  # one slot: {phone}
        if status is Status.DUPLICATE:
            return Applied(status, prior_reply=reply[1] or None)
        if status is Status.CONFLICT:
            return Applied(status)
        if status is Status.REFUSED:
            return Applied(
                status, refused=int(reply[1]) - 1, outcome=(str(reply[2]), str(reply[3])), purged=int(reply[4])
            )
        return Applied(status, purged=int(reply[1]))

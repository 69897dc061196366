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

Exactly once, cheaply: the reply record lives only as long as Twilio may retry (its whole budget,
retries included, is 15 s), while the session's ``seen`` field keeps the short ids of the last few
messages for as long as the session lives. A retry after its record expired is recognised by
``seen`` and changes nothing; it is answered with an empty TwiML response.

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
from .sessions import SEEN, in_base
from .tenants import Tenant

#: how many recent messages the session remembers as answered (``seen``)
SEEN_COUNT = 3
#: how long the 24-hour window stamp lives: past the window it means nothing
WINDOW_TTL_MS = 2 * 86_400 * 1000
_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def short_id(message_sid: str) -> str:
    """What ``seen`` keeps of a MessageSid: its last 7 hex digits (28 bits), in base 62. A new message
    mistaken for one of the last 3 (and so ignored) happens once in about 90 million."""
    tail = message_sid[-7:]
    if len(tail) != 7 or any(c not in "0123456789abcdef" for c in tail):  # never a Twilio MessageSid
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
    window_ms: int | None = None
    now_ms: int = 0
    #: delete the customer's release-1 session and profile once written under the new keys
    drop_legacy: bool = False


class TapStore:
    """Sessions, profiles and message records, and the apply script (one client for all businesses)."""

    def __init__(
        self, client: redis.Redis, scripts: Scripts, *, session_ttl: int, profile_ttl: int, dedupe_ttl: int
    ) -> None:
        self.client = client
        self.scripts = scripts
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
        if legacy:
            pipe.hgetall(legacy.session(phone))
            pipe.hget(legacy.profile(phone), "language")
            pipe.get(keys.layout)
        counts = [shop.bookings.queue(pipe, read) for read in reads]
        replies = pipe.execute()
        prior, session, language = replies[:3]
        offset = 3
        from_legacy = profile_from_legacy = upgraded = False
        if legacy:
            old_session, old_language, marker = replies[3:6]
            offset = 6
            upgraded = marker == LAYOUT_VERSION
            if not session and old_session:
                session, from_legacy = from_layout3(old_session), True
            if not language and old_language:
                language, profile_from_legacy = old_language, True
        values: dict[Read, Any] = {}
        for read, count in zip(reads, counts, strict=True):
            values[read] = shop.bookings.parse(read, replies[offset : offset + count])
            offset += count
        answered = prior is None and short_id(message_sid) in session.get(SEEN, "").split()
        return Snapshot(prior, session, language, answered, values, from_legacy, profile_from_legacy, upgraded)

    def apply(self, plan: TapPlan) -> Applied:
        """One round trip: the apply script (see the module docstring)."""
        shop, phone = plan.shop, plan.phone
        keys = shop.keys
        script_keys = KeyList(
            [
                keys.message(plan.message_sid),
                keys.session(phone),
                keys.profile(phone),
                keys.outbox(phone),
                keys.due,
                keys.window(phone),
            ]
        )
        ops = [shop.bookings.encode(request, script_keys) for request in plan.requests]
        seen = [short_id(plan.message_sid), *plan.fields.get(SEEN, "").split()][:SEEN_COUNT]
        header = {
            "id": short_id(plan.message_sid),
            "rev": plan.expected_rev,
            "ops": ops,
            "adopt": [list(pair) for pair in script_keys.adopt],
            "reply": plan.reply,
            "session_ttl": self._session_ttl_ms,
            "dedupe_ttl": self._dedupe_ttl_ms,
            "language": plan.profile_language or "",
            "profile_ttl": self._profile_ttl_ms,
            "outbound": plan.outbound or "",
            "phone": phone,
            "now_ms": plan.now_ms,
            "window_ms": plan.window_ms or 0,
            "window_ttl": WINDOW_TTL_MS,
        }
        args: list[str] = [json.dumps(header, ensure_ascii=False, separators=(",", ":"))]
        for name, value in {**plan.fields, SEEN: " ".join(seen)}.items():
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

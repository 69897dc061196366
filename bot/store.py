"""Redis layout of a conversation, and the two round trips of a tap.

Keys (one hash tag per phone, so a turn's keys share a Redis Cluster slot)::

    <prefix>:session:{+E164}            hash, expires SESSION_TTL_SECONDS after the last write
    <prefix>:profile:{+E164}            hash, the customer's language choice (long-lived)
    <prefix>:msg:{+E164}:<MessageSid>   string, the reply sent for that message (dedupe)

A tap is :meth:`SessionStore.load` (one pipelined read) then :meth:`SessionStore.commit`
(one Lua script). The script claims the MessageSid (``SET NX`` semantics: a message
already answered returns the first reply and writes nothing) and saves the session only
if its ``rev`` is still the one loaded (optimistic versioning), all atomically. With the
Content API on, the same script appends the reply to the phone's outbox stream and stamps
the phone's last inbound time (see :mod:`bot.outbox`), and the doorbell rides in the same
round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import redis
from redis.exceptions import NoScriptError

from .outbox import OutboxKeys

_COMMIT = """
local prior = redis.call('GET', KEYS[1])
if prior then return {'duplicate', prior} end
local rev = redis.call('HGET', KEYS[2], 'rev') or ''
if rev ~= ARGV[2] then return {'conflict', rev} end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 10))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], 'language', ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
if ARGV[7] ~= '' then redis.call('XADD', KEYS[4], '*', 'm', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('SET', KEYS[5], ARGV[8], 'PX', ARGV[9]) end
return {'ok', ''}
"""


@dataclass(frozen=True)
class TurnKeys:
    session: str
    profile: str
    message: str
    phone: str = ""
    outbox: str = ""
    seen: str = ""


@dataclass(frozen=True)
class Snapshot:
    """What one read returns: the earlier reply if this message was answered, else the state."""

    prior_reply: str | None
    session: dict[str, str]
    profile_language: str | None


class CommitStatus(Enum):
    OK = "ok"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class CommitResult:
    status: CommitStatus
    prior_reply: str | None = None


class SessionStore:
    """Sessions, profiles and message records in one Redis, under one key builder."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        session_ttl: int,
        profile_ttl: int,
        dedupe_ttl: int,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._session_ttl_ms = str(session_ttl * 1000)
        self._profile_ttl_ms = str(profile_ttl * 1000)
        self._dedupe_ttl_ms = str(dedupe_ttl * 1000)
        self._commit = client.register_script(_COMMIT)
        self.outbox_keys = OutboxKeys(prefix)
        #: how long the last-inbound stamp lives: past the 24-hour window it means nothing
        self._seen_ttl_ms = str(2 * 86_400 * 1000)

    def session_key(self, phone: str) -> str:
        return f"{self.prefix}:session:{{{phone}}}"

    def keys(self, phone: str, message_sid: str) -> TurnKeys:
        return TurnKeys(
            session=self.session_key(phone),
            profile=f"{self.prefix}:profile:{{{phone}}}",
            message=f"{self.prefix}:msg:{{{phone}}}:{message_sid}",
            phone=phone,
            outbox=self.outbox_keys.stream(phone),
            seen=self.outbox_keys.seen(phone),
        )

    def load(self, keys: TurnKeys) -> Snapshot:
        """One round trip: the message record, the session and the profile language."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys.message)
        pipe.hgetall(keys.session)
        pipe.hget(keys.profile, "language")
        prior, session, language = pipe.execute()
        return Snapshot(prior, session, language)

    def commit(
        self,
        keys: TurnKeys,
        *,
        expected_rev: str,
        fields: dict[str, str],
        reply: str,
        profile_language: str | None,
        outbound: str | None = None,
        seen_ms: int | None = None,
    ) -> CommitResult:
        """One round trip: claim the message, save the session, record the reply.

        ``outbound`` (a JSON message) is appended to the phone's outbox stream and
        ``seen_ms`` stamps its last inbound time, in the same script; the outbox doorbell
        is rung in the same pipeline.
        """
        args = [
            reply,
            expected_rev,
            self._session_ttl_ms,
            self._dedupe_ttl_ms,
            profile_language or "",
            self._profile_ttl_ms,
            outbound or "",
            "" if seen_ms is None else str(seen_ms),
            self._seen_ttl_ms,
        ]
        for name, value in fields.items():
            args += (name, value)
        script_keys = [keys.message, keys.session, keys.profile, keys.outbox, keys.seen]
        if outbound:
            status, detail = self._commit_and_ring(script_keys, args, keys.phone, seen_ms or 0)
        else:
            status, detail = self._commit(keys=script_keys, args=args)
        status = CommitStatus(status)
        return CommitResult(status, detail if status is CommitStatus.DUPLICATE else None)

    def _commit_and_ring(self, keys: list[str], args: list[str], phone: str, now_ms: int) -> list[str]:
        """The commit script and the outbox doorbell (``ZADD NX``) in one pipelined round trip.

        Ringing on a conflict or duplicate is harmless: the worker finds nothing new.
        """
        pipe = self.client.pipeline(transaction=False)
        pipe.evalsha(self._commit.sha, len(keys), *keys, *args)
        pipe.zadd(self.outbox_keys.due, {phone: now_ms}, nx=True)
        result, _ = pipe.execute(raise_on_error=False)
        if isinstance(result, NoScriptError):  # a restarted or flushed Redis: load and run it
            return self._commit(keys=keys, args=args)
        if isinstance(result, Exception):
            raise result
        return result

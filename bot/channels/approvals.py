"""WhatsApp's approval of the proactive templates, as last read from Twilio, kept in Redis.

``<prefix>:template-approvals`` maps a content template's friendly name to JSON
``{"status", "reason", "at"}``: WhatsApp's status (``unsubmitted``, ``received``, ``pending``,
``approved``, ``rejected``, ``paused``, ``disabled``), the rejection reason, and when it was
read (epoch seconds). ``flask templates sync`` and ``list`` record what they read; the worker
polls the templates not yet approved (:meth:`Approvals.refresh`) and asks
:meth:`Approvals.approved` before each send outside the 24-hour window, which answers from an
in-process copy of the hash read again at most every ``cache_seconds``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import redis
from twilio.rest import Client

from .twilio import TemplateSids

log = logging.getLogger(__name__)

APPROVED = "approved"
#: WhatsApp's status of a template never submitted for approval
UNSUBMITTED = "unsubmitted"
#: statuses that may still change without the operator doing anything: the worker polls these
WAITING = frozenset({"received", "pending", "paused"})


@dataclass(frozen=True)
class Approval:
    """WhatsApp's word on one template: ``status``, ``reason`` (rejections) and ``at`` (epoch seconds)."""

    status: str
    reason: str
    at: int

    @property
    def approved(self) -> bool:
        return self.status == APPROVED

    def to_json(self) -> str:
        return json.dumps({"status": self.status, "reason": self.reason, "at": self.at}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Approval | None:
        """The recorded approval, or None when the entry is not one this module wrote."""
        try:
            data = json.loads(text)
            return cls(str(data["status"]), str(data.get("reason", "")), int(data["at"]))
        except (ValueError, TypeError, KeyError):
            return None


class Approvals:
    """The approvals hash (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = 60.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.key = key
        self.clock = clock
        self.cache_seconds = cache_seconds
        #: the wall clock ``at`` is stamped with
        self.now = now
        self._lock = threading.Lock()
        self._cache: dict[str, Approval] = {}
        self._loaded: float | None = None

    # -- the hash ------------------------------------------------------------------------
    def record(self, name: str, status: str, reason: str = "") -> None:
        self._store(name, Approval(status, reason, int(self.now())))

    def _store(self, name: str, approval: Approval) -> None:
        self.client.hset(self.key, name, approval.to_json())
        with self._lock:
            if self._loaded is not None:
                self._cache[name] = approval

    def get(self, name: str) -> Approval | None:
        raw = self.client.hget(self.key, name)
        return None if raw is None else Approval.from_json(raw)

    def all(self) -> dict[str, Approval]:
        raw = cast(dict[Any, Any], self.client.hgetall(self.key))
        found = {}
        for name, text in sorted(raw.items()):
            approval = Approval.from_json(text)
            if approval is None:
                log.warning("template approval of %r unreadable: %r", name, text)
                continue
            found[name.decode() if isinstance(name, bytes) else name] = approval
        return found

    def approved(self, name: str) -> bool:
        """Whether WhatsApp approved ``name``, as recorded at most ``cache_seconds`` ago (one
        HGETALL per ``cache_seconds`` in all, none per call in between)."""
        with self._lock:
            now = self.clock()
            if self._loaded is None or now - self._loaded >= self.cache_seconds:
                self._cache = self.all()
                self._loaded = now
            approval = self._cache.get(name)
        return approval is not None and approval.approved

    # -- Twilio --------------------------------------------------------------------------
    def fetch(self, client: Client, sid: str) -> Approval:
        """WhatsApp's approval of content ``sid`` as Twilio reads it now (not recorded).

        Raises what the twilio client raises (``TwilioRestException``, ``requests`` errors)."""
        whatsapp = client.content.v1.contents(sid).approval_fetch().fetch().whatsapp or {}
        status = str(whatsapp.get("status") or UNSUBMITTED)
        return Approval(status, str(whatsapp.get("rejection_reason") or ""), int(self.now()))

    def refresh(self, client: Client, sids: TemplateSids, names: Iterable[str]) -> dict[str, Approval]:
        """Fetch and record the approval of every template of ``names`` that is synced and waiting
        for WhatsApp's verdict (recorded as submitted, pending or paused: ``templates sync`` records
        each one it submits); what was recorded, by name. One never submitted, approved, rejected
        or disabled is not asked about (the operator acts on those with ``templates sync``/``list``).
        A template Twilio fails to answer for is logged and skipped."""
        recorded = self.all()
        fresh: dict[str, Approval] = {}
        for name in names:
            sid = sids.get(name)
            known = recorded.get(name)
            if sid is None or known is None or known.status not in WAITING:
                continue
            try:
                approval = self.fetch(client, sid)
            except Exception as exc:  # noqa: BLE001 - a poll: the next one tries again
                log.warning("template approval of %s (%s) not read: %s: %s", name, sid, type(exc).__name__, exc)
                continue
            self._store(name, approval)
            fresh[name] = approval
        return fresh

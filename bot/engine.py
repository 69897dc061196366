"""One tap, start to finish: load, resolve the action, dispatch, save and reply.

Two Redis round trips when nothing collides: :meth:`SessionStore.load` and
:meth:`SessionStore.commit`. When another tap from the same phone commits in between,
the whole turn is replayed on the fresh state, so no update is ever lost.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import redis

from .booking.desk import BookingDesk, ReadAhead
from .buttons import Button, without_turn
from .channels import Channel, Option, Outgoing, Rendered, TwimlChannel
from .dispatch import Action, Registry, Unmatched
from .errors import BadButtonId
from .i18n import N_, Catalogs, normalize
from .inbound import InboundMessage
from .logs import mask_phone
from .outbox import epoch_ms
from .replies import EMPTY_TWIML, render_text_only
from .sessions import Session, migrate
from .stats import Stats
from .store import CommitStatus, SessionStore
from .turn import Turn

log = logging.getLogger(__name__)

TROUBLE = N_("Sorry, we're having trouble right now. Please try again in a minute.")
BUSY = N_("Sorry, that was a lot at once. Please try again.")
RESTARTED = N_("Sorry, we had to start our conversation again.")


@dataclass(frozen=True)
class TurnResult:
    """The TwiML to send back and what happened, for logs and counters."""

    body: str
    outcome: str  # ok, duplicate, stale, busy, redis_error
    handler: str = ""
    round_trips: int = 0
    attempts: int = 0


class Conversation:
    """Runs taps against the store with the registered flows."""

    def __init__(
        self,
        store: SessionStore,
        flows: Registry,
        catalogs: Catalogs,
        stats: Stats,
        *,
        desk: BookingDesk,
        default_language: str,
        clock: Callable[[], datetime],
        max_attempts: int = 20,
        pause: Callable[[float], None] = time.sleep,
        channel: Channel | None = None,
    ) -> None:
        flows.validate()
        self.store = store
        self.flows = flows
        self.catalogs = catalogs
        self.stats = stats
        self.desk = desk
        self.default_language = default_language
        self.clock = clock
        self.max_attempts = max_attempts
        self.pause = pause
        self.channel = channel or TwimlChannel()
        self.keywords = flows.compile_keywords(catalogs)

    def reply_to(self, message: InboundMessage, *, lang_param: str | None = None) -> TurnResult:
        keys = self.store.keys(message.phone, message.message_sid)
        language = self.catalogs.pick(lang_param) or self.default_language
        round_trips = 0
        try:
            for attempt in range(1, self.max_attempts + 1):
                now = self.clock()
                ahead = self._read_ahead(message, now)
                snapshot = self.store.load(keys, partial(self.desk.queue_read_ahead, ahead=ahead) if ahead else None)
                round_trips += 1
                if snapshot.prior_reply is not None:
                    return TurnResult(snapshot.prior_reply, "duplicate", "", round_trips, attempt)
                if snapshot.answered:  # a late retry whose reply record lapsed: answered once, send nothing
                    return TurnResult(EMPTY_TWIML, "duplicate", "", round_trips, attempt)
                if ahead:
                    self.desk.take_read_ahead(ahead, snapshot.also)
                data, migrated = migrate(snapshot.session, self.default_language)
                session = Session(data)
                language = self._language(lang_param, snapshot.profile_language, session.language)
                turn = Turn(
                    message=message,
                    session=session,
                    t=self.catalogs.get(language),
                    catalogs=self.catalogs,
                    flows=self.flows,
                    now=now,
                    desk=self.desk,
                    read_ahead=ahead,
                )
                outcome, handler, rendered = self._run(turn)
                body = rendered.body
                round_trips += turn.trips
                result = self.store.commit(
                    keys,
                    expected_rev=turn.session.rev,
                    fields=turn.session.fields(),
                    reply=body,
                    profile_language=turn.profile_language,
                    outbound=rendered.outbound,
                    seen_ms=epoch_ms(turn.now) if self.channel.out_of_band else None,
                )
                round_trips += 1
                if result.status is CommitStatus.OK:
                    if migrated:
                        self.stats.incr("migrations")
                        log.info("migrated session of %s to the current layout", mask_phone(message.phone))
                    return TurnResult(body, outcome, handler, round_trips, attempt)
                if result.status is CommitStatus.DUPLICATE:
                    return TurnResult(result.prior_reply or EMPTY_TWIML, "duplicate", "", round_trips, attempt)
                self.stats.incr("conflicts")
                self.pause(random.uniform(0, min(0.02, 0.001 * 2**attempt)))
        except redis.RedisError as exc:
            log.warning("redis error for %s: %s: %s", mask_phone(message.phone), type(exc).__name__, exc)
            body = render_text_only(self.catalogs.get(language).gettext(TROUBLE))
            return TurnResult(body, "redis_error", "", round_trips)
        log.warning("gave up on %s after %d conflicting attempts", mask_phone(message.phone), attempt)
        body = render_text_only(self.catalogs.get(language).gettext(BUSY))
        return TurnResult(body, "busy", "", round_trips, attempt)

    def _read_ahead(self, message: InboundMessage, now: datetime) -> ReadAhead | None:
        """What the tapped button's reply will read, so the load can fetch it in the same trip."""
        payload = message.button_payload or message.list_id
        if not payload:
            return None
        try:
            button = Button.unpack(payload)
        except BadButtonId:
            return None
        return self.flows.plan_reads(button, self.desk, now)

    def _language(self, lang_param: str | None, profile: str | None, session: str) -> str:
        """``?lang`` → the customer's choice → the session's language → the default."""
        for candidate in (lang_param, profile, session):
            code = self.catalogs.pick(candidate)
            if code:
                return code
        return self.default_language

    def _run(self, turn: Turn) -> tuple[str, str, Rendered]:
        """Outcome, handler name and the reply rendered for the channel; mutates ``turn.session``."""
        session = turn.session
        if not session.is_new and not self.flows.has_step(session.step):
            log.info("unknown step %r for %s: back to the start", session.step, mask_phone(turn.message.phone))
            outcome, handler = "ok", "reset"
            reply = turn.goto(self.flows.start_step).after(turn.t(RESTARTED))
        else:
            if session.is_new:
                session.step = self.flows.start_step
            action = self._resolve(turn)
            if session.is_new and action == Unmatched("unrecognized"):
                action = self.flows.start_button
            handler, reply, unmatched = self.flows.dispatch(turn, action)
            outcome = "stale" if unmatched and unmatched.reason != "unrecognized" else "ok"
        session.language = "" if turn.t.code == self.default_language else turn.t.code  # the default: not stored
        if [b.pack() for b in reply.options] != [without_turn(p) for p in session.offered]:
            session.next_turn()  # new options: buttons of earlier messages stop working
        session.offered = [button.pack(session.turn) for button in reply.options]
        options = tuple(Option(packed, b.label(turn)) for packed, b in zip(session.offered, reply.options, strict=True))
        return outcome, handler, self.channel.render(Outgoing(reply.text, options), turn.t)

    def _resolve(self, turn: Turn) -> Action:
        """ButtonPayload, then ListId, then typed text: an option's number or title, a keyword."""
        message = turn.message
        for payload in (message.button_payload, message.list_id):
            if payload:
                return self._button(turn, payload)
        text = normalize(message.body)
        if not text:
            return Unmatched("unrecognized")
        offered = turn.session.offered
        if text.isdigit():
            number = int(text)
            if 1 <= number <= len(offered):
                return self._button(turn, offered[number - 1])
            return Unmatched("unrecognized")
        for packed in offered:
            try:
                button = Button.unpack(packed)
            except BadButtonId:
                continue
            if normalize(button.label(turn)) == text:
                return button
        return self.keywords.get(text, Unmatched("unrecognized"))

    @staticmethod
    def _button(turn: Turn, payload: str) -> Action:
        try:
            button = Button.unpack(payload)
        except BadButtonId as exc:
            log.info("unusable button id (%s)", exc.reason)
            return Unmatched("invalid")
        if button.step_bound and payload not in turn.session.offered:
            return Unmatched("stale")
        return button

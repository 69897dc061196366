"""One tap, start to finish: load, resolve the action, dispatch, apply and reply.

Two Redis round trips when nothing collides: :meth:`TapStore.load` and :meth:`TapStore.apply`.
The apply writes everything the tap causes (session, hold, booking, outbox entry) or nothing:
when another tap of the same phone wrote first, or a booking request's outcome is no longer the
one the reply announces, the whole tap runs again on the new state, so no update is lost and no
reply contradicts what was stored.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis

from .booking.requests import BookRequest, CancelRequest, ReleaseRequest, Request
from .booking.store import Read
from .buttons import Button, without_turn
from .channels import Option, Outgoing, Rendered
from .channels.content import ContentChannel
from .dispatch import Action, Registry, Unmatched
from .effects import Effects, Outcome
from .errors import BadButtonId
from .flows import state
from .flows.core import NavButton
from .i18n import N_, Catalogs, normalize
from .inbound import InboundMessage
from .logs import mask_phone
from .notify import owner_notices
from .outbox import epoch_ms
from .phones import is_preview
from .reads import Reads
from .replies import EMPTY_TWIML, render_text_only
from .sessions import Session
from .stats import Stats
from .store import Status, TapPlan, TapStore
from .tenants import Tenant
from .turn import Turn

log = logging.getLogger(__name__)

#: how the /try page's phones are answered: as WhatsApp shows button mode, whatever the business's channel
PREVIEW_CHANNEL = ContentChannel()

#: what WhatsApp posts for a message that is not text (Twilio's MessageType): voice notes, pictures, places…
MEDIA = frozenset({"audio", "image", "video", "document", "location", "sticker", "contacts"})
#: a thumbs-up and friends: thanks, not a question
THANKS_EMOJI = frozenset({"👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "🙏", "😊", "👌", "❤️"})

#: a typed text longer than this that means nothing to the bot gets a friendlier answer than a "didn't catch that"
LONG_TEXT = 160

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
    """Runs taps against the store with the registered flows, for any business."""

    def __init__(
        self,
        store: TapStore,
        flows: Registry,
        catalogs: Catalogs,
        stats: Stats,
        *,
        clock: Callable[[], datetime],
        max_attempts: int = 40,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        flows.validate()
        self.store = store
        self.flows = flows
        self.catalogs = catalogs
        self.stats = stats
        self.clock = clock
        self.max_attempts = max_attempts
        self.pause = pause
        self.keywords = flows.compile_keywords(catalogs)
        self.keyword_languages = flows.keyword_languages(catalogs)

    def reply_to(self, shop: Tenant, message: InboundMessage, *, lang_param: str | None = None) -> TurnResult:
        language = shop.pick_language(lang_param, self.catalogs) or shop.default_language
        round_trips = 0
        known: dict[tuple[object, ...], Outcome] = {}
        try:
            for attempt in range(1, self.max_attempts + 1):
                now = self.clock()
                snapshot = self.store.load(shop, message.phone, message.message_sid, self._reads(shop, message, now))
                round_trips += 1
                if shop.upgrading and snapshot.upgraded:
                    shop.end_upgrade()
                if snapshot.prior_reply is not None:
                    return TurnResult(snapshot.prior_reply, "duplicate", "", round_trips, attempt)
                if snapshot.answered:  # a late retry whose reply record lapsed: answered once, send nothing
                    return TurnResult(EMPTY_TWIML, "duplicate", "", round_trips, attempt)
                session = Session(snapshot.session)
                language = self._language(shop, lang_param, snapshot.profile_language, session.language)
                turn = Turn(
                    message=message,
                    session=session,
                    t=self.catalogs.get(language),
                    catalogs=self.catalogs,
                    flows=self.flows,
                    now=now,
                    shop=shop,
                    reads=Reads(shop.bookings, snapshot.reads),
                    effects=Effects(known),
                )
                turn.suggested_language = self._suggested(shop, message, language, snapshot.profile_language)
                outcome, handler, rendered = self._run(turn)
                requests = [*turn.effects.requests, *self._releases(turn)]
                notices = (
                    ()
                    if is_preview(message.phone)
                    else owner_notices(shop, self.catalogs, requests, turn.reads.booking)
                )
                round_trips += turn.reads.trips
                moving_in = snapshot.from_legacy or snapshot.profile_from_legacy  # release 1's keys: move them
                plan = TapPlan(
                    shop=shop,
                    phone=message.phone,
                    message_sid=message.message_sid,
                    expected_rev="" if snapshot.from_legacy else session.rev,
                    fields=session.fields(),
                    reply=rendered.body,
                    requests=requests,
                    profile_language=turn.profile_language
                    or (snapshot.profile_language if snapshot.profile_from_legacy else None),
                    outbound=rendered.outbound,
                    consent=turn.consent,
                    window_ms=epoch_ms(now) if shop.channel.out_of_band else None,
                    now_ms=epoch_ms(now),
                    drop_legacy=moving_in,
                    notices=notices,
                )
                applied = self.store.apply(plan)
                round_trips += 1 + (1 if moving_in and applied.status is Status.OK else 0)
                if applied.purged:
                    self.stats.incr("holds.expired", applied.purged, business=shop.id)
                if applied.status is Status.OK:
                    self._count(shop, requests, snapshot.from_legacy, message.phone)
                    if turn.consent:
                        self.stats.incr(f"consent.{turn.consent}", business=shop.id)
                    return TurnResult(rendered.body, outcome, handler, round_trips, attempt)
                if applied.status is Status.DUPLICATE:
                    return TurnResult(applied.prior_reply or EMPTY_TWIML, "duplicate", "", round_trips, attempt)
                if applied.status is Status.REFUSED:  # the store knows better now: run again, knowing it
                    known[requests[applied.refused].key] = applied.outcome
                    self.stats.incr("refusals", business=shop.id)
                    continue
                self.stats.incr("conflicts", business=shop.id)
                self.pause(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        except redis.RedisError as exc:
            log.warning("redis error for %s: %s: %s", mask_phone(message.phone), type(exc).__name__, exc)
            body = render_text_only(self.catalogs.get(language).gettext(TROUBLE))
            return TurnResult(body, "redis_error", "", round_trips)
        log.warning("gave up on %s after %d conflicting attempts", mask_phone(message.phone), attempt)
        body = render_text_only(self.catalogs.get(language).gettext(BUSY))
        return TurnResult(body, "busy", "", round_trips, attempt)

    def _count(self, shop: Tenant, requests: list[Request], migrated: bool, phone: str) -> None:
        for request in requests:
            if isinstance(request, BookRequest):
                self.stats.incr("bookings.rescheduled" if request.moving else "bookings.created", business=shop.id)
            elif isinstance(request, CancelRequest):
                self.stats.incr("bookings.cancelled", business=shop.id)
        if migrated:
            self.stats.incr("migrations", business=shop.id)
            log.info("moved the release-1 conversation of %s to business %s", mask_phone(phone), shop.id)

    def _reads(self, shop: Tenant, message: InboundMessage, now: datetime) -> list[Read]:
        """What the tapped button (or a typed keyword) will read, so the load can fetch it too."""
        button: Button | None = None
        payload = message.button_payload or message.list_id
        if payload:
            try:
                button = Button.unpack(payload)
            except BadButtonId:
                return []
        else:
            text = normalize(message.body)
            button = self.keywords.get(text) if text and not text.isdigit() else None
        return self.flows.plan_reads(button, shop, message.phone, now) if button else []

    def _suggested(self, shop: Tenant, message: InboundMessage, language: str, profile: str | None) -> str | None:
        """A language the customer seems to write in (a keyword of it, ``hola``), when it is not the
        one spoken and they never chose one: the menu then offers it as a one-tap switch."""
        if profile or message.button_payload or message.list_id:
            return None
        codes = self.keyword_languages.get(normalize(message.body), frozenset())
        if not codes or language in codes:
            return None
        return next((code for code in shop.languages if code in codes), None)

    def _language(self, shop: Tenant, lang_param: str | None, profile: str | None, session: str) -> str:
        """The customer's own choice → the number's ``?lang`` (a default) → the session's language →
        the business's default."""
        for candidate in (profile, lang_param, session):
            code = shop.pick_language(candidate, self.catalogs)
            if code:
                return code
        return shop.default_language

    @staticmethod
    def _releases(turn: Turn) -> list[Request]:
        """The customer's previous hold, given back in the same write when the session no longer has it
        (and no booking was made from it): so a phone never holds more than one time."""
        token = turn.session.loaded("hold")
        if not token or token == turn.session.get("hold"):
            return []
        if any(isinstance(r, BookRequest) and r.token == token for r in turn.effects.requests):
            return []
        day = state.parse_day(turn.session.loaded("hold_day"))
        service = turn.shop.catalog.service(turn.session.loaded("service"))
        if day is None or service is None:
            return []
        return [ReleaseRequest(service.resource, day, token)]

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
            typed = isinstance(action, Unmatched) and action.reason in ("unrecognized", "long")
            if session.is_new and typed and self.flows.start_button:
                action = self.flows.start_button
            handler, reply, unmatched = self.flows.dispatch(turn, action)
            outcome = "stale" if unmatched and unmatched.reason in ("stale", "invalid") else "ok"
        session.language = turn.t.code
        if [b.pack() for b in reply.options] != [without_turn(p) for p in session.offered]:
            session.next_turn()  # new options: buttons of earlier messages stop working
        session.offered = [button.pack(session.turn) for button in reply.options]
        options = tuple(Option(packed, b.label(turn)) for packed, b in zip(session.offered, reply.options, strict=True))
        sender = turn.shop.reply_sender(turn.message.to) or ""
        channel = PREVIEW_CHANNEL if is_preview(turn.message.phone) else turn.shop.channel  # /try shows buttons
        return outcome, handler, channel.render(Outgoing(reply.text, options), turn.t, sender)

    def _resolve(self, turn: Turn) -> Action:
        """ButtonPayload, then ListId, then typed text: an option's number or title, a keyword."""
        message = turn.message
        for payload in (message.button_payload, message.list_id):
            if payload:
                return self._button(turn, payload)
        if message.body.strip() in THANKS_EMOJI:
            return NavButton("thanks")
        text = normalize(message.body)
        if not text:
            return Unmatched("media" if message.message_type in MEDIA else "unrecognized")
        offered = turn.session.offered
        if text.isascii() and text.isdigit():
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
        return self.keywords.get(text, Unmatched("long" if len(message.body) > LONG_TEXT else "unrecognized"))

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

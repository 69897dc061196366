"""What a handler sees during one tap: the message, the session, the business, what was read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .effects import Effects
from .i18n import Catalogs, Translator
from .inbound import InboundMessage
from .reads import Reads
from .replies import Reply
from .sessions import Session

if TYPE_CHECKING:
    from .dispatch import Registry
    from .tenants import Tenant


@dataclass
class Turn:
    message: InboundMessage
    session: Session
    t: Translator
    catalogs: Catalogs
    flows: Registry
    now: datetime
    #: the business the message was written to
    shop: Tenant
    #: occupancy and bookings, read with the session or on demand
    reads: Reads
    #: the writes the tap asks for (applied with the session, atomically)
    effects: Effects
    #: set when the customer picks a language: kept in their long-lived profile
    profile_language: str | None = field(default=None)
    #: "out" when the customer wrote STOP, "in" when START: kept without expiry
    consent: str = field(default="")
    #: a language the customer seems to write in (not the one spoken): offered as a one-tap switch
    suggested_language: str | None = field(default=None)

    def goto(self, step: str) -> Reply:
        """Move to ``step`` and return its prompt."""
        self.session.step = step
        return self.flows.render(step, self)

    def current(self) -> Reply:
        """The prompt of the step the customer is on."""
        return self.flows.render(self.session.step, self)

    def set_language(self, code: str) -> None:
        """Speak ``code`` from this reply on, and remember it beyond the session."""
        self.t = self.catalogs.get(code)
        self.session.language = code
        self.profile_language = code

    def set_consent(self, choice: str) -> None:
        """Business-initiated messages to this customer: "out" (STOP) or "in" (START)."""
        if choice not in ("out", "in"):
            raise ValueError(choice)
        self.consent = choice

    @property
    def customer_name(self) -> str:
        """The WhatsApp profile name, stripped of control characters, or empty."""
        name = "".join(" " if c.isspace() else c for c in self.message.profile_name if c.isprintable() or c.isspace())
        return " ".join(name.split())[:40].strip()

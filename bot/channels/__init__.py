"""How a reply reaches the customer: rendered per channel.

A handler returns a :class:`~bot.replies.Reply`; the engine resolves its buttons into
:class:`Outgoing` (text plus ``(id, title)`` options in the customer's language) and the
configured channel renders that:

- :class:`TwimlChannel` (the default, and the fallback for error answers): the webhook's
  TwiML carries the prompt and ``1. Title`` lines.
- :class:`~bot.channels.content.ContentChannel` (when the Content API is configured): the
  webhook answers an empty ``<Response/>`` and the reply becomes an outbox entry (quick
  reply, list picker or text) that the worker sends through Twilio's REST API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..i18n import Translator
from ..replies import render_twiml


@dataclass(frozen=True)
class Option:
    """One offered button: the ID WhatsApp returns as ``ButtonPayload``, and its title."""

    id: str
    title: str


@dataclass(frozen=True)
class Outgoing:
    """A reply ready to render: the prompt and its options, already in the customer's language."""

    text: str
    options: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Rendered:
    """What the webhook answers, and the message to send out of band (JSON), if any."""

    body: str
    outbound: str | None = None


class Channel(Protocol):
    #: whether replies leave through the outbox (then the 24-hour window is tracked per phone)
    out_of_band: bool

    def render(self, reply: Outgoing, t: Translator, sender: str = "") -> Rendered: ...


class TwimlChannel:
    """Replies inside the webhook's TwiML: the prompt, a blank line, ``1. Title`` per option."""

    out_of_band = False

    def render(self, reply: Outgoing, t: Translator, sender: str = "") -> Rendered:
        return Rendered(render_twiml(reply.text, [option.title for option in reply.options]))

"""What a handler returns, and how it becomes the TwiML Twilio sends to the customer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twilio.twiml.messaging_response import MessagingResponse

from .buttons import Button

#: a TwiML answer that sends nothing (the reply left another way, or was already sent)
EMPTY_TWIML = str(MessagingResponse())

MAX_OPTIONS = 10  # WhatsApp's list-picker limit


@dataclass(frozen=True)
class Reply:
    """A prompt and the buttons offered with it (labels are resolved at render time)."""

    text: str
    options: tuple[Button, ...] = ()

    def __post_init__(self) -> None:
        if len(self.options) > MAX_OPTIONS:
            raise ValueError(f"a reply offers at most {MAX_OPTIONS} options, got {len(self.options)}")

    def after(self, *lines: str) -> Reply:
        """This reply with ``lines`` shown first, each in its own paragraph."""
        text = "\n\n".join([*(line for line in lines if line), self.text])
        return Reply(text, self.options)


def render_twiml(text: str, titles: Sequence[str]) -> str:
    """TwiML with one message: the prompt, then ``1. Title`` lines for the options."""
    lines = [text]
    if titles:
        lines.append("")
        lines.extend(f"{number}. {title}" for number, title in enumerate(titles, start=1))
    response = MessagingResponse()
    response.message("\n".join(lines))
    return str(response)


def render_text_only(text: str) -> str:
    """TwiML for a reply without options (the polite error answers)."""
    return render_twiml(text, ())

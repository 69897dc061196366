"""What Twilio does with one message send, planned by a test for :class:`tests.twilio_server.TwilioServer`.

A :class:`Fault` says how the send is answered (a 201, an error, no answer, half an answer)
and whether the message was created anyway; a lifecycle (a tuple of :class:`Step`) says what
becomes of a created message afterwards: the statuses it reaches and the status callbacks
Twilio posts for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import twilio_rest as rest
from .twilio_rest import Answer

#: how a send ends: answered; never answered (until the client gives up); connection closed
#: unanswered; the answer cut short (Content-Length of the whole, half of it sent); a short answer
#: that says its own length (the JSON does not parse)
ANSWER, HANG, DROP, CUT, SHORT = "answer", "hang", "drop", "cut", "short"


@dataclass(frozen=True)
class Step:
    """A status the message reaches ``after`` seconds past Twilio's answer (planned or given)."""

    status: str
    after: float
    error_code: int | None = None
    #: False: the status changes, but its callback is lost on Twilio's side (never posted)
    posted: bool = True


#: Twilio's usual course: sent, then delivered
SENT_DELIVERED = (Step("sent", 0.05), Step("delivered", 0.15))
#: the same course, with no callback posted
QUIET = tuple(Step(step.status, step.after, posted=False) for step in SENT_DELIVERED)
#: accepted, then nothing: queued for good (``date_sent`` stays null)
STUCK: tuple[Step, ...] = ()


def failed(code: int = 63018, after: float = 0.05) -> tuple[Step, ...]:
    """The message fails with ``code`` (63018: WhatsApp's rate limit) after ``after`` seconds."""
    return (Step("failed", after, code),)


def delayed(seconds: float, course: tuple[Step, ...] = SENT_DELIVERED) -> tuple[Step, ...]:
    """``course`` with every step ``seconds`` later."""
    return tuple(Step(s.status, s.after + seconds, s.error_code, s.posted) for s in course)


@dataclass(frozen=True)
class Fault:
    """How one message send is answered; the default is a 201 after the server's delay.

    ``answer``: an error to answer instead of the 201; ``created``: whether the message exists
    (listed, its lifecycle run) whatever the answer; ``end``: how the exchange ends (ANSWER, HANG,
    DROP, CUT, SHORT); ``delay``: seconds before answering (None: the server's); ``lifecycle``:
    the message's steps (None: the server's)."""

    answer: Answer | None = None
    created: bool = True
    end: str = ANSWER
    delay: float | None = None
    lifecycle: tuple[Step, ...] | None = None

    def __post_init__(self) -> None:
        if self.answer is None and self.end in {ANSWER, CUT, SHORT} and not self.created:
            raise ValueError("a 201 (whole or cut) means the message was created")


def too_many(retry_after: int | str = 1) -> Fault:
    """429 with ``Retry-After`` (seconds, or an HTTP date); nothing created."""
    return Fault(rest.TOO_MANY_REQUESTS.with_headers(**{"Retry-After": str(retry_after)}), created=False)


def server_error(status: int = 500, *, created: bool = True) -> Fault:
    """500 or 503, by default *after* processing: the message was created and is listed."""
    return Fault(rest.REFUSALS[status], created=created)


def hang(*, created: bool = False) -> Fault:
    """No answer at all until the client gives up (its read timeout) or the server closes."""
    return Fault(created=created, end=HANG)


def drop(*, created: bool = False) -> Fault:
    """The request is read, then the connection is closed without an answer."""
    return Fault(created=created, end=DROP)


def problem_answer(status: int = 400, code: int = 21610, title: str = "Message blocked", *, detail: str = "") -> Fault:
    """An RFC 9457 ``application/problem+json`` error (``TwilioServiceException``); nothing created."""
    return Fault(rest.problem(status, code, title, detail), created=False)


def truncated(*, cut: bool = True) -> Fault:
    """A 201 whose body is half there: ``cut`` closes the connection short of its Content-Length
    (``requests`` raises ChunkedEncodingError); else a short body with its own length (the JSON does
    not parse). The message was created either way."""
    return Fault(end=CUT if cut else SHORT)


def refused(code: int) -> Fault:
    """A 4xx with Twilio error ``code``: 63016 (outside the 24-hour window), 63018 (rate limit),
    21211 (bad number); nothing created."""
    return Fault(rest.REFUSALS[code], created=False)


def slow(seconds: float) -> Fault:
    """A 201 after ``seconds`` instead of the server's delay."""
    return Fault(delay=seconds)

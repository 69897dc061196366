"""What a tap asks to write, and the outcome its reply announces for each write.

A handler never writes. It asks for a hold, a booking, a move or a cancel here, with the outcome
it predicts from what the tap read, and words its reply for that outcome. The engine then applies
the session, the reply and every request in one script, which re-checks each request: when the
outcome is not the announced one (the slot was taken a moment ago, the booking was cancelled
meanwhile), nothing at all is written and the tap runs again, this time knowing the real outcome
(:attr:`known`), so the reply always says what was stored.
"""

from __future__ import annotations

from .booking.records import booking_ref
from .booking.requests import Request

Outcome = tuple[str, str]


class Effects:
    def __init__(self, known: dict[tuple[object, ...], Outcome]) -> None:
        #: outcomes the store reported for requests of earlier runs of this tap
        self.known = known
        #: the requests to apply, in order
        self.requests: list[Request] = []

    def ask(self, request: Request, predicted: Outcome) -> Outcome:
        """The outcome of ``request``: as the store reported it before, else ``predicted``. Only a
        request whose outcome is the one it expects is applied (a refusal writes nothing)."""
        status, value = self.known.get(request.key, predicted)
        if status == request.expect[0] and (not request.expect[1] or value == request.expect[1]):
            self.requests.append(request)
        return status, value

    def fresh_ref(self, token: str) -> str:
        """The first reference for a booking from hold ``token`` not found taken by an earlier run."""
        attempt = 0
        while self.known.get(("book", token, booking_ref(token, attempt)), ("", ""))[0] == "ref_taken":
            attempt += 1
        return booking_ref(token, attempt)

"""A booking as stored, and the identifiers of holds and bookings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

REF_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no I, L, O, 0, 1: easy to read out


@dataclass(frozen=True)
class Booking:
    ref: str
    phone: str
    service_id: str
    start: datetime
    end: datetime
    status: str  # confirmed, cancelled, rescheduled
    name: str = ""
    language: str = ""
    occ: str = ""  # "start,end" of the place it takes (with buffers); empty for bookings made before counts
    resource: str = ""  # whose occupancy it takes, as booked (a later catalog may move the service)
    #: the customer tapped Confirm on a reminder
    customer_confirmed: bool = False
    #: the owner's mark once it started: ``attended``, ``no_show`` or empty
    attendance: str = ""

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Booking:
        return cls(
            ref=data["ref"],
            phone=data["phone"],
            service_id=data["service"],
            start=datetime.fromtimestamp(int(data["start"]), UTC),
            end=datetime.fromtimestamp(int(data["end"]), UTC),
            status=data.get("status", ""),
            name=data.get("name", ""),
            language=data.get("language", ""),
            occ=data.get("occ", ""),
            resource=data.get("resource", ""),
            customer_confirmed=bool(data.get("customer_confirmed_at")),
            attendance=data.get("attendance", ""),
        )

    @property
    def place(self) -> str:
        """Its id among a day's entries as listings skip it: the counted interval, or its own REF."""
        return f"={self.occ}" if self.occ else self.ref


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def hold_token(message_sid: str) -> str:
    """The hold a message places: the same for a retry or a replay of that message."""
    return hashlib.blake2s(message_sid.encode(), digest_size=8).hexdigest()


def booking_ref(token: str, attempt: int) -> str:
    """A short reference read out on the phone, e.g. ``K7Q2MX``; the same for a hold's replays."""
    number = int.from_bytes(hashlib.blake2s(f"{token}:{attempt}".encode(), digest_size=8).digest())
    chars = []
    for _ in range(6):
        number, index = divmod(number, len(REF_ALPHABET))
        chars.append(REF_ALPHABET[index])
    return "".join(chars)

"""Signed, realistic conversations for the benchmark: hi → Book → service → day → time → Confirm.

Every button ID is made by the bot's own code: the buttons' ``pack()``, the turn codes of
:class:`~bot.sessions.Session` and the slot rules of :mod:`bot.booking.slots` (which days and
times a fresh session is offered). The titles are the buttons' own ``label()``. Each form is
signed like Twilio signs it, so the signature check is part of what is measured.

The day and time a phone picks are spread evenly over what every reply is sure to offer on
its first page (days 2 to 8 from today, the first 9 times of the day), so the conversations
keep working across a midnight and while other phones fill the same days.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bot.booking.catalog import Catalog
from bot.booking.slots import day_starts, local_today
from bot.buttons import Button
from bot.cli import twilio_form
from bot.flows.booking import DayButton, HoldButton, ServiceButton, TimeButton
from bot.flows.core import NavButton
from bot.i18n import Catalogs
from bot.sessions import Session

#: the benchmark's business (one catalog, no numbers: it answers every ``To``)
CLINIC = Path(__file__).with_name("clinic.toml")
#: the two-business run: the clinic twice, each with its id and the number its customers write to
TWO_CLINICS = (("clinic-a", "+15550000101"), ("clinic-b", "+15550000102"))

#: what a page of a list shows before its More button
FIRST_PAGE = 9
#: days that are on the first page of the dates whether or not today still has free times
DAY_OFFSETS = range(2, 9)
TAPS = 6


@dataclass(frozen=True)
class Tap:
    """One webhook request: the posted form and its ``X-Twilio-Signature``."""

    form: dict[str, str]
    signature: str

    def raw_http(self, host: str, path: str = "/webhook") -> bytes:
        """The whole HTTP/1.1 request, as wrk sends it."""
        body = urlencode(self.form)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {self.signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return (head + body).encode()


class ConversationPlan:
    """Makes the taps of booking conversations for one business, as of ``now``."""

    def __init__(self, catalog: Catalog, *, token: str, url: str, now: datetime) -> None:
        self.catalog = catalog
        self.validator = RequestValidator(token)
        self.url = url
        catalogs = Catalogs.load()
        # what a button needs to name itself (see bot.buttons.LabelContext)
        self.labels = SimpleNamespace(
            t=catalogs.get("en"), catalogs=catalogs, shop=SimpleNamespace(catalog=catalog, business=catalog.business)
        )
        #: the number customers write to: the business's first, when it has numbers
        self.to = {"To": f"whatsapp:{catalog.business.numbers[0]}"} if catalog.business.numbers else {}
        today = local_today(catalog.business, now)
        self.slots = [
            (service, day, start)
            for day in (today + timedelta(days=n) for n in DAY_OFFSETS)
            for service in catalog.services
            for start in day_starts(catalog.business, service, day, now)[:FIRST_PAGE]
        ]
        if not self.slots:
            raise ValueError("the catalog offers no times on days 2 to 8: cannot plan conversations")

    def _tap(self, phone: str, button: Button | None, turn: str, text: str = "") -> Tap:
        if button is None:
            form = twilio_form(phone, text, name="Bench", **self.to)
        else:
            title = button.label(self.labels)
            form = twilio_form(
                phone,
                title,
                name="Bench",
                ButtonPayload=button.pack(turn),
                ButtonText=title,
                MessageType="button",
                **self.to,
            )
        form["MessageSid"] = "SM" + uuid.uuid4().hex
        return Tap(form, self.validator.compute_signature(self.url, form))

    def conversation(self, phone: str, index: int) -> list[Tap]:
        """The six taps of ``phone`` booking the ``index``-th slot (cycling over the slots)."""
        service, day, start = self.slots[index % len(self.slots)]
        turns = Session({})  # a fresh session: every reply offers new options, so the turn code steps
        steps: list[Button | None] = [
            None,  # "hi"
            NavButton("book"),
            ServiceButton(service.id),
            DayButton(service.id, _day(day)),
            TimeButton(service.id, int(start.timestamp())),
            HoldButton("confirm"),
        ]
        taps = []
        for button in steps:
            taps.append(self._tap(phone, button, turns.turn, "hi"))
            turns.next_turn()
        return taps

    def conversations(self, first_phone: int, count: int) -> Iterator[list[Tap]]:
        """``count`` conversations of the phones ``+1555`` + 7 digits from ``first_phone`` on."""
        for index in range(count):
            yield self.conversation(phone(first_phone + index), index)


def phone(number: int) -> str:
    return f"+1555{number:07d}"


def _day(day: date) -> str:
    return day.strftime("%Y%m%d")


def interleave(conversations: list[list[Tap]], width: int) -> list[Tap]:
    """The taps of ``width`` conversations at a time, alternating, each phone's in order."""
    taps: list[Tap] = []
    for start in range(0, len(conversations), width):
        group = conversations[start : start + width]
        for step in itertools.zip_longest(*group):
            taps.extend(tap for tap in step if tap is not None)
    return taps


def two_clinics(folder: Path) -> list[Path]:
    """A ``BOT_CATALOG`` folder of two businesses made from :data:`CLINIC` (see :data:`TWO_CLINICS`)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = CLINIC.read_text()
    files = []
    for business_id, number in TWO_CLINICS:
        head = f'[business]\nid = "{business_id}"\nnumbers = ["{number}"]\n'
        name = f"Bench Clinic {business_id[-1].upper()}"
        body = text.replace("[business]\n", head, 1).replace('name = "Bench Clinic"', f'name = "{name}"', 1)
        path = folder / f"{business_id}.toml"
        path.write_text(body)
        files.append(path)
    return files

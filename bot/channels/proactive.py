"""The messages the business starts: reminders, its own cancels and moves, alerts to the owner.

Outside WhatsApp's 24-hour window (a reminder a day ahead usually is) only an approved template
may go, so each of these is a Content API template of its own, one per language (a Content
resource has one ``language``), category UTILITY, with a fixed text and variables: the body never
starts or ends with a variable and no two are adjacent (WhatsApp refuses such templates). The
texts are gettext messages, so a language the bot speaks has its templates too.

``flask templates sync`` creates them and submits each for WhatsApp's approval; the worker sends
one outside the window only once approved (:mod:`bot.channels.approvals`), and inside the window
in any case (in-session, WhatsApp takes an unapproved template of up to three buttons).

The reminder's buttons carry :class:`ReminderButton` IDs (``rem1:c:K7Q2MX:1768386600``: act,
booking, version), so a tap works with no live session and is checked against the booking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..i18n import N_, Catalogs, Translator

VERSION = 1
CATEGORY = "UTILITY"

REMINDER, CANCELLED, MOVED, OWNER = "reminder", "cancelled", "moved", "owner"
KINDS = (REMINDER, CANCELLED, MOVED, OWNER)

# {{1}} the customer's name, {{2}} the service, {{3}} the date, {{4}} the time, {{5}} the place
REMINDER_BODY = N_("Hi {{1}}, this is a reminder of your {{2}} on {{3}} at {{4}}, at {{5}}. Will you come?")
#: said instead of the customer's name when WhatsApp gave none
NO_NAME = N_("there")
CONFIRM_TITLE = N_("Confirm")
RESCHEDULE_TITLE = N_("Reschedule")
CANCEL_TITLE = N_("Cancel")
# {{1}} the business, {{2}} the booking (service, date, time, reference)
CANCELLED_BODY = N_("Your booking with {{1}} is cancelled: {{2}}. Write to us to book another time.")
# {{1}} the business, {{2}} the booking at its new time
MOVED_BODY = N_("Your booking with {{1}} was moved to {{2}}. Write to us if that time does not suit you.")
# {{1}} the business, {{2}} what happened
OWNER_BODY = N_("Booking update for {{1}}: {{2}}. Your diary has the details.")

#: the reminder's buttons: (act in the button ID, title)
REMINDER_ACTS = (("c", CONFIRM_TITLE), ("m", RESCHEDULE_TITLE), ("x", CANCEL_TITLE))

_BODIES = {REMINDER: REMINDER_BODY, CANCELLED: CANCELLED_BODY, MOVED: MOVED_BODY, OWNER: OWNER_BODY}
_SAMPLES: dict[str, dict[str, str]] = {
    REMINDER: {"1": "Ana", "2": "Haircut", "3": "Tue 14 Jan", "4": "10:30", "5": "Bella Hair Studio"},
    CANCELLED: {"1": "Bella Hair Studio", "2": "Haircut, Tue 14 Jan, 10:30–11:00 (K7Q2MX)"},
    MOVED: {"1": "Bella Hair Studio", "2": "Haircut, Wed 15 Jan, 11:00–11:30 (K7Q2MX)"},
    OWNER: {"1": "Bella Hair Studio", "2": "new booking Haircut, Tue 14 Jan, 10:30–11:00 (K7Q2MX), Ana +34600000000"},
}
#: the variables after the body's that hold the reminder's button IDs
BUTTON_VARIABLES = ("6", "7", "8")


@dataclass(frozen=True)
class ProactiveTemplate:
    """One business-initiated template in one language, as ``POST /v1/Content`` takes it."""

    kind: str
    language: str
    body: str
    titles: tuple[str, ...] = ()

    @property
    def friendly_name(self) -> str:
        return friendly_name(self.kind, self.language)

    @property
    def content_type(self) -> str:
        return "twilio/quick-reply" if self.titles else "twilio/text"

    def definition(self) -> dict[str, Any]:
        variables = dict(_SAMPLES[self.kind])
        types: dict[str, Any] = {"body": self.body}
        if self.titles:
            actions = []
            for (act, _), title, key in zip(REMINDER_ACTS, self.titles, BUTTON_VARIABLES, strict=True):
                variables[key] = f"rem1:{act}:K7Q2MX:1768386600"
                actions.append({"title": title, "id": "{{" + key + "}}"})
            types["actions"] = actions
        return {
            "friendly_name": self.friendly_name,
            "language": self.language,
            "variables": variables,
            "types": {self.content_type: types},
        }


def friendly_name(kind: str, language: str) -> str:
    """``tapbook_reminder_es_v1``: one template per kind and language."""
    return f"tapbook_{kind}_{language.replace('-', '_').lower()}_v{VERSION}"


def template(kind: str, t: Translator) -> ProactiveTemplate:
    titles = tuple(t(title) for _, title in REMINDER_ACTS) if kind == REMINDER else ()
    return ProactiveTemplate(kind, t.code, t(_BODIES[kind]), titles)


def all_templates(catalogs: Catalogs) -> tuple[ProactiveTemplate, ...]:
    """Every proactive template, for every language the bot speaks."""
    return tuple(template(kind, t) for t in catalogs.all() for kind in KINDS)


def message(kind: str, language: str, variables: dict[str, str], **extra: Any) -> dict[str, Any]:
    """An outbox message sending the ``kind`` template in ``language``: business-initiated
    (``proactive``: a STOP stops it) and allowed outside the 24-hour window once approved
    (``approved_only``)."""
    return {
        "template": friendly_name(kind, language),
        "variables": variables,
        "proactive": True,
        "approved_only": True,
        "kind": kind,
        **extra,
    }

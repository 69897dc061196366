"""The main menu, help, back, keywords, and the fallback for input nothing understood."""

from __future__ import annotations

from dataclasses import dataclass

from ..buttons import Button, LabelContext
from ..dispatch import Registry, Unmatched
from ..i18n import N_
from ..replies import Reply
from ..turn import Turn
from .state import end_flow

MENU = "menu"

_NAV_TITLES = {
    "menu": N_("Menu"),
    "help": N_("Help"),
    "back": N_("Back"),
    "book": N_("Book"),
    "bookings": N_("My bookings"),
    "language": N_("Language"),
    "thanks": N_("Menu"),
}


@dataclass(frozen=True)
class NavButton(Button, kind="nav", step_bound=False):
    """Go somewhere: ``nav1.3:menu``, ``nav1.3:book``, ``nav1.3:back``. Valid from any message."""

    to: str

    def label(self, ctx: LabelContext) -> str:
        return ctx.t(_NAV_TITLES[self.to])


def render_menu(turn: Turn) -> Reply:
    """Book, My bookings, Language; for a customer writing in another language the bot speaks
    (``hola`` on an English number), that language in place of the picker: one tap switches."""
    from .language import LanguageButton  # the picker's own button (language imports this module)

    switch: Button = LanguageButton(turn.suggested_language) if turn.suggested_language else NavButton("language")
    return Reply(turn.t("What would you like to do?"), (NavButton("book"), NavButton("bookings"), switch))


def go_menu(turn: Turn, button: NavButton) -> Reply:
    end_flow(turn)
    reply = turn.goto(MENU)
    if turn.session.is_new:
        name = turn.customer_name
        greeting = turn.t("Hi {name}! 👋").format(name=name) if name else turn.t("Hi! 👋")
        return reply.after(greeting, turn.t("Welcome to {business}.").format(business=turn.shop.business.name))
    return reply


def show_help(turn: Turn, button: NavButton) -> Reply:
    """How to answer, then the step the customer is on: help never loses their place."""
    return turn.current().after(
        turn.t(
            "Tap a button, or reply with the number of an option. "
            "Send “menu” at any time to start again, or “back” to go one step back."
        )
    )


def say_welcome(turn: Turn, button: NavButton) -> Reply:
    """Thanks, ok, 👍: a short friendly answer, and the step the customer is on (nothing lost)."""
    return turn.current().after(turn.t("You're welcome! 😊"))


def go_back(turn: Turn, button: NavButton) -> Reply:
    """Back one page of a long list, else back one step."""
    page = turn.session.get("page", "0")
    if page.isascii() and page.isdigit() and int(page) > 0:
        turn.session.set("page", str(int(page) - 1))
        return turn.current()
    return turn.flows.go_back(turn)


HINTS = {
    "unrecognized": N_("Sorry, I didn't catch that. Please tap an option or reply with its number."),
    "long": N_(
        "Thanks for your message! I can only answer the options below: please tap one or reply with its number."
    ),
    "stale": N_("That menu is out of date. Here is where we are now:"),
    "invalid": N_("That menu is out of date. Here is where we are now:"),
    "media": N_("I can only read text and taps."),
}


def resend_current_step(turn: Turn, unmatched: Unmatched) -> Reply:
    """Unknown input: the current step again, after a one-line hint."""
    return turn.current().after(turn.t(HINTS[unmatched.reason]))


def register(registry: Registry) -> None:
    registry.step(MENU)(render_menu)
    registry.on(NavButton, check=lambda turn, b: b.to == "menu")(go_menu)
    registry.on(NavButton, check=lambda turn, b: b.to == "help")(show_help)
    registry.on(NavButton, check=lambda turn, b: b.to == "back")(go_back)
    registry.on(NavButton, check=lambda turn, b: b.to == "thanks")(say_welcome)
    registry.fallback(resend_current_step)
    registry.start_button = NavButton("menu")
    registry.keyword(N_("menu"), NavButton("menu"))
    registry.keyword(N_("hi, hello, hey"), NavButton("menu"))
    registry.keyword(N_("help"), NavButton("help"))
    registry.keyword(N_("back"), NavButton("back"))
    registry.keyword(N_("language"), NavButton("language"))
    registry.keyword(N_("book"), NavButton("book"))
    registry.keyword(N_("my bookings, bookings"), NavButton("bookings"))
    registry.keyword(N_("thanks, thank you, ok, okay, great, perfect, cool"), NavButton("thanks"))

"""The main menu, help, keywords, and the fallback for input nothing understood."""

from __future__ import annotations

from dataclasses import dataclass

from ..buttons import Button, LabelContext
from ..dispatch import Registry, Unmatched
from ..i18n import N_
from ..replies import Reply
from ..turn import Turn

MENU = "menu"

_NAV_TITLES = {"menu": N_("Menu"), "help": N_("Help"), "language": N_("Language")}


@dataclass(frozen=True)
class NavButton(Button, kind="nav", step_bound=False):
    """Go somewhere: ``nav1:menu``, ``nav1:help``, ``nav1:language``. Valid from any message."""

    to: str

    def label(self, ctx: LabelContext) -> str:
        return ctx.t(_NAV_TITLES[self.to])


def render_menu(turn: Turn) -> Reply:
    return Reply(turn.t("What would you like to do?"), (NavButton("language"),))


def go_menu(turn: Turn, button: NavButton) -> Reply:
    reply = turn.goto(MENU)
    if button.to == "help":
        return reply.after(
            turn.t("Tap a button, or reply with the number of an option. Send “menu” at any time to start again.")
        )
    if button.to == "menu" and turn.session.is_new:
        name = turn.customer_name
        return reply.after(turn.t("Hi {name}! 👋").format(name=name) if name else turn.t("Hi! 👋"))
    return reply


HINTS = {
    "unrecognized": N_("Sorry, I didn't catch that. Please tap an option or reply with its number."),
    "stale": N_("That button belongs to an earlier message. Here is where we are now:"),
    "invalid": N_("That button belongs to an earlier message. Here is where we are now:"),
}


def resend_current_step(turn: Turn, unmatched: Unmatched) -> Reply:
    """Unknown input: the current step again, after a one-line hint."""
    return turn.current().after(turn.t(HINTS[unmatched.reason]))


def register(registry: Registry) -> None:
    registry.step(MENU)(render_menu)
    registry.on(NavButton, check=lambda turn, b: b.to in ("menu", "help"))(go_menu)
    registry.fallback(resend_current_step)
    registry.start_button = NavButton("menu")
    registry.keyword(N_("menu, start"), NavButton("menu"))
    registry.keyword(N_("hi, hello, hey"), NavButton("menu"))
    registry.keyword(N_("help"), NavButton("help"))
    registry.keyword(N_("language"), NavButton("language"))

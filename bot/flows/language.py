"""The language picker: the choice is kept in the customer's long-lived profile.

Picking a language re-renders the step the customer came from, in that language.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..buttons import Button, LabelContext
from ..dispatch import Registry
from ..replies import Reply
from ..turn import Turn
from .core import MENU, NavButton

LANGUAGE = "language"


@dataclass(frozen=True)
class LanguageButton(Button, kind="lang", step_bound=False):
    """Speak a language: ``lang1.3:es``. Named in that language (``Español``)."""

    code: str

    def label(self, ctx: LabelContext) -> str:
        return ctx.catalogs.get(self.code).language_name


def render_picker(turn: Turn) -> Reply:
    options = tuple(LanguageButton(code) for code in sorted(turn.shop.languages))
    return Reply(turn.t("Which language would you like?"), options)


def _return_step(turn: Turn) -> str:
    came_from = turn.session.get("came_from")
    return came_from if came_from and came_from != LANGUAGE and turn.flows.has_step(came_from) else MENU


def open_picker(turn: Turn, button: NavButton) -> Reply:
    if turn.session.step != LANGUAGE:
        turn.session.set("came_from", turn.session.step)
    return turn.goto(LANGUAGE)


def choose(turn: Turn, button: LanguageButton) -> Reply:
    turn.set_language(button.code)
    step = _return_step(turn)
    turn.session.set("came_from", None)
    return turn.goto(step).after(turn.t("Done! I'll write to you in English from now on."))


def back(turn: Turn) -> Reply:
    step = _return_step(turn)
    turn.session.set("came_from", None)
    return turn.goto(step)


def register(registry: Registry) -> None:
    registry.step(LANGUAGE, back=back)(render_picker)
    registry.on(NavButton, check=lambda turn, b: b.to == LANGUAGE)(open_picker)
    registry.on(LanguageButton, check=lambda turn, b: b.code in turn.shop.languages)(choose)

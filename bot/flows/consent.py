"""STOP and START: whether the business may message the customer on its own.

A customer who writes STOP (or "baja", "parar", "sair", …) gets one confirmation and no message the
business starts (notices, reminders) until they write START ("alta", "ativar", …); replies to
their own messages go on as before. The choice is written with the tap's other writes and kept
without expiry (``<prefix>:{<business>}:optout``); the outbox worker checks it when it sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..buttons import Button, LabelContext
from ..dispatch import Registry
from ..i18n import N_
from ..replies import Reply
from ..turn import Turn
from .core import NavButton, go_menu

_TITLES = {"out": N_("Stop messages"), "in": N_("Start messages")}


@dataclass(frozen=True)
class ConsentButton(Button, kind="opt", step_bound=False):
    """``opt1.3:out`` (STOP) or ``opt1.3:in`` (START). Reached by typing, never offered."""

    choice: str

    def label(self, ctx: LabelContext) -> str:
        return ctx.t(_TITLES[self.choice])


def stop(turn: Turn, button: ConsentButton) -> Reply:
    turn.set_consent("out")
    return Reply(
        turn.t(
            "Done: {business} will not send you reminders or other messages you did not ask for. "
            "Your bookings stay as they are. Write START to get them again."
        ).format(business=turn.shop.business.name)
    )


def start(turn: Turn, button: ConsentButton) -> Reply:
    turn.set_consent("in")
    on_again = turn.t("Reminders and messages from {business} are on.").format(business=turn.shop.business.name)
    return go_menu(turn, NavButton("menu")).after(on_again)


def register(registry: Registry) -> None:
    registry.on(ConsentButton, check=lambda turn, b: b.choice == "out")(stop)
    registry.on(ConsentButton, check=lambda turn, b: b.choice == "in")(start)
    registry.keyword(N_("stop, unsubscribe"), ConsentButton("out"))
    registry.keyword(N_("start, subscribe"), ConsentButton("in"))

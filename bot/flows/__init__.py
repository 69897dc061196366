"""The conversation: each module registers its steps, buttons and handlers."""

from __future__ import annotations

from ..dispatch import Registry
from . import booking, consent, core, language, manage, reminders

MODULES = (core, consent, language, booking, manage, reminders)


def build_registry() -> Registry:
    registry = Registry(start_step=core.MENU)
    for module in MODULES:
        module.register(registry)
    registry.validate()
    return registry

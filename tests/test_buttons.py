"""Button IDs: typed, stable, versioned, and loud about values that would not round-trip."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.buttons import MAX_ID_LENGTH, MAX_TITLE_LENGTH, Button, known_kinds
from bot.errors import BadButtonId
from bot.flows import build_registry
from bot.flows.core import NavButton
from bot.flows.language import LanguageButton
from bot.i18n import Catalogs


@dataclass(frozen=True)
class SlotProbe(Button, kind="probe", version=3):
    day: str
    minute: int

    def label(self, ctx) -> str:  # type: ignore[no-untyped-def]
        return "probe"


def test_pack_and_unpack_round_trip_with_types() -> None:
    button = SlotProbe("2026-01-14", 630)
    assert button.pack() == "probe3:2026-01-14:630"
    assert Button.unpack("probe3:2026-01-14:630") == button
    assert Button.unpack("nav1:menu") == NavButton("menu")
    assert Button.unpack("lang1:es") == LanguageButton("es")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "malformed"),
        ("PROBE3:x:1", "malformed"),
        ("probe:x:1", "malformed"),
        ("zzz1:a", "unknown kind"),
        ("probe2:2026-01-14:630", "outdated version"),
        ("probe3:2026-01-14", "wrong fields"),
        ("probe3:2026-01-14:630:1", "wrong fields"),
        ("probe3:2026 01 14:630", "wrong fields"),
        ("probe3:2026-01-14:ten", "wrong field type"),
        ("probe3:" + "x" * 200, "too long"),
    ],
)
def test_unpack_refuses_what_this_release_did_not_pack(payload: str, reason: str) -> None:
    with pytest.raises(BadButtonId) as caught:
        Button.unpack(payload)
    assert caught.value.reason == reason
    assert caught.value.payload == payload


@pytest.mark.parametrize("value", ["a:b", "with space", "x" * 65, "ñ"])
def test_pack_fails_loudly_on_values_that_would_not_round_trip(value: str) -> None:
    with pytest.raises(ValueError):
        SlotProbe(value, 1).pack()


def test_pack_fails_loudly_beyond_the_id_limit() -> None:
    @dataclass(frozen=True)
    class Wide(Button, kind="wide"):
        a: str
        b: str

    with pytest.raises(ValueError, match="longer than 128"):
        Wide("x" * 64, "y" * 64).pack()


def test_a_kind_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="already used"):

        @dataclass(frozen=True)
        class AnotherNav(Button, kind="nav"):
            to: str


def test_every_button_the_bot_offers_fits_whatsapp_in_every_language() -> None:
    """Titles ≤ 20 characters, IDs ≤ 128, for every option of every step, in every language."""
    from types import SimpleNamespace

    catalogs = Catalogs.load()
    for translator in catalogs.all():
        ctx = SimpleNamespace(t=translator, catalogs=catalogs)
        buttons = [NavButton(to) for to in ("menu", "help", "language")]
        buttons += [LanguageButton(code) for code in sorted(catalogs.languages)]
        for button in buttons:
            assert len(button.pack()) <= MAX_ID_LENGTH
            assert 0 < len(button.label(ctx)) <= MAX_TITLE_LENGTH, (translator.code, button)
    assert {"nav", "lang"} <= set(known_kinds())
    build_registry()  # every flow registers cleanly

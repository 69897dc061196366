"""A small, fixed salon for the tests (the shipped sample may change; this one does not)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from zoneinfo import ZoneInfo

from bot.booking.catalog import Business, Catalog, OpeningRange, Service

MORNINGS = (OpeningRange(9 * 60, 13 * 60),)  # 09:00-13:00


def salon(**business: object) -> Catalog:
    """Mon-Sat 09:00-13:00 in Madrid, closed Fri 16 Jan 2026; a haircut and a 3-seat blow-dry."""
    base = Business(
        id="test",
        name="Test Salon",
        timezone=ZoneInfo("Europe/Madrid"),
        slot_minutes=30,
        min_notice_minutes=120,
        horizon_days=14,
        hold_minutes=10,
        cancel_cutoff_minutes=120,
        max_active_bookings=3,
        closed=frozenset({date(2026, 1, 16)}),
        hours={weekday: MORNINGS for weekday in range(6)},
    )
    services = (
        Service(
            id="cut",
            minutes=30,
            capacity=1,
            price="25 EUR",
            names={"en": "Haircut", "es": "Corte", "pt": "Corte"},
        ),
        Service(
            id="dry",
            minutes=60,
            capacity=3,
            price="30 EUR",
            names={"en": "Blow-dry", "es": "Peinado", "pt": "Escova"},
            buffer_after_minutes=15,
        ),
    )
    return Catalog(replace(base, **business), services)  # type: ignore[arg-type]

"""A business edits its catalog while bookings exist: what was booked keeps its place until cancelled."""

from __future__ import annotations

import dataclasses

import redis

from bot import create_app, get_services
from bot.agenda import cancel_for_business
from bot.booking.catalog import Catalog

from .bookings import book
from .catalogs import salon
from .conftest import TOKEN, Clock, app_config
from .redis_server import RedisServer
from .whatsapp import WhatsApp


def with_cut_on(resource: str) -> Catalog:
    catalog = salon()
    services = tuple(dataclasses.replace(s, resource=resource) if s.id == "cut" else s for s in catalog.services)
    return dataclasses.replace(catalog, services=services)


def test_a_cancel_frees_the_time_even_after_the_service_moved_to_another_resource(
    redis_server: RedisServer,
) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    clock = Clock()
    before = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock))
    ana = WhatsApp(before.test_client(), TOKEN)
    ref = book(ana, at="12:00")

    # the owner now gives haircuts a shared "chair" resource; Ana cancels under the new catalog
    after = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock, CATALOG=with_cut_on("chair")))
    services = get_services(after)
    assert cancel_for_business(services, services.business(), ref)[0] == "ok"

    # under the old layout 12:00 is free again: nothing was left behind on the resource it was booked on
    bob = WhatsApp(before.test_client(), TOKEN, phone="+447700900123", name="Bob")
    assert book(bob, at="12:00") != ref


def test_moving_a_booking_of_the_old_resource_does_not_free_that_time_on_the_new_one(
    redis_server: RedisServer,
) -> None:
    """Ana's booking sits on the old resource; Bob's took 12:00 on the new one: her move must not see
    12:00 free (nor get it), or the new resource would be sold twice."""
    redis.Redis.from_url(redis_server.url).flushdb()
    clock = Clock()
    before = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock))
    ana = WhatsApp(before.test_client(), TOKEN)
    book(ana, at="12:00")

    after = create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock, CATALOG=with_cut_on("chair")))
    bob = WhatsApp(after.test_client(), TOKEN, phone="+447700900123", name="Bob")
    book(bob, at="12:00")
    ana = WhatsApp(after.test_client(), TOKEN)
    mine = ana.choose(ana.send("menu"), "My bookings")
    booking = ana.choose(mine, mine.options[0])
    times = ana.choose(ana.choose(booking, "Reschedule"), "Wed 14 Jan")
    assert "12:30" in times.options and "12:00" not in times.options

"""``GET /metrics``: the counters of :mod:`bot.stats` in Prometheus text format.

Under gunicorn every worker process counts on its own. With ``PROMETHEUS_MULTIPROC_DIR``
set before the app is imported (``gunicorn.conf.py`` does it), each worker writes its
values to mmap files in that directory and a scrape, answered by any worker, adds up the
files of all of them (``prometheus_client``'s multiprocess mode). Without it (the
development server, tests) the app's own registry is served.
"""

from __future__ import annotations

import logging
import os

from flask import Blueprint, Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess, values

from .services import get_services
from .stats import ReminderCollector

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    """Whether prometheus_client writes values to files (decided when it was first imported)."""
    return values.ValueClass is not values.MutexValue


def check_mode() -> None:
    """Say so at start-up when the directory is set but came too late to take effect."""
    if os.environ.get(ENV) and not multiprocess_mode():
        log.warning("%s is set but prometheus_client was imported before it: /metrics shows one process only", ENV)


@bp.get("/metrics")
def metrics() -> Response:
    stats = get_services().stats
    registry = stats.registry
    if multiprocess_mode():
        registry = CollectorRegistry(auto_describe=True)
        multiprocess.MultiProcessCollector(registry)
        for collector in stats.collectors:
            registry.register(collector)
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def init_app(app: Flask) -> None:
    """Serve ``/metrics``, with the outboxes' depth read from Redis at each scrape (one pipelined
    ZCARD per business)."""
    app.register_blueprint(bp)
    services = get_services(app)

    def due_customers() -> int:
        pipe = services.redis.pipeline(transaction=False)
        for outbox in services.outboxes.values():
            pipe.zcard(outbox.keys.due)
        return sum(int(n) for n in pipe.execute())

    services.stats.add_probe("outbox_due_customers", "Customers with unsent messages in the outbox.", due_customers)
    reminders = {shop.id: (shop.keys.reminder_counts, shop.keys.reminders) for shop in services.directory}
    services.stats.add_collector(ReminderCollector(services.redis, reminders, services.stats.namespace))

"""The operator's and owner's commands: ``flask --app wsgi bookings|sessions|catalog|admin|customers|doctor …``.

Each exits non-zero with one clear line on failure (``Error: …``); long ones report
progress on stderr, so stdout stays clean for ``export > file``.
"""

from __future__ import annotations

from flask import Flask

from . import admin, bookings, calendar, catalog, customers, sessions


def init_app(app: Flask) -> None:
    app.cli.add_command(bookings.group)
    app.cli.add_command(sessions.group)
    app.cli.add_command(catalog.group)
    app.cli.add_command(admin.group)
    app.cli.add_command(customers.group)
    app.cli.add_command(calendar.group)
    from . import doctor  # here, not above: ``python -m bot.commands.doctor`` runs it as __main__

    app.cli.add_command(doctor.doctor)

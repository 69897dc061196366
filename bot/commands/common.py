"""What the commands share: Redis failures as one line, and progress on stderr."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import redis
from flask import current_app

from ..services import get_services
from ..tenants import Tenant

F = TypeVar("F", bound=Callable[..., Any])


def redis_errors_as_one_line(command: F) -> F:
    """A Redis that cannot be reached ends the command with exit 1 and one line, not a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis cannot be reached or failed: {type(exc).__name__}: {exc}") from None

    return run  # type: ignore[return-value]


def shared_store(command: F) -> F:
    """Refuse to run on the embedded store: it lives inside one process, so a command would
    read (or change) an empty store of its own and report "nothing" with exit 0."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        if get_services().embedded and not current_app.testing:
            raise click.ClickException(
                "REDIS_URL is not set: this command would only see an empty in-memory store of its own, "
                "not the bot's data. Set REDIS_URL to the bot's Redis."
            )
        return command(*args, **kwargs)

    return run  # type: ignore[return-value]


class Counting:
    """``label: n`` on stderr, rewritten in place on a terminal; one final line otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0
        self.live = sys.stderr.isatty()

    def __call__(self, n: int) -> None:
        self.count += n
        if self.live:
            click.echo(f"\r{self.label}: {self.count}", err=True, nl=False)

    def done(self) -> None:
        click.echo(f"\r{self.label}: {self.count}" if self.live else f"{self.label}: {self.count}", err=True)


def business_option(command: F) -> F:
    """``--business ID``: required when the deployment serves several businesses."""
    return click.option(
        "--business",
        "business_id",
        metavar="ID",
        default=None,
        help="The business (its catalog's id); required when there are several.",
    )(command)


def pick_business(business_id: str | None) -> Tenant:
    """The business the command is about, or a one-line error naming the choices."""
    directory = get_services().directory
    known = ", ".join(directory.ids)
    if business_id:
        shop = directory.get(business_id)
        if shop is None:
            raise click.ClickException(f"no business {business_id!r}; the businesses are: {known}")
        return shop
    if directory.only is None:
        raise click.ClickException(f"there are several businesses ({known}): choose one with --business ID")
    return directory.only

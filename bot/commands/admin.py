"""``flask admin hash-password``: a hash to put in a catalog as ``admin_password_hash``."""

from __future__ import annotations

import click
from werkzeug.security import generate_password_hash

group = click.Group("admin", help="The owners' /admin page.")


@group.command("hash-password")
@click.password_option("--password", prompt="Owner's password", help="The password (asked for when not given).")
def hash_password(password: str) -> None:
    """Print the hash of an owner's password for ``[business] admin_password_hash``."""
    if len(password) < 10:
        raise click.ClickException("the password must be at least 10 characters")
    click.echo(generate_password_hash(password))

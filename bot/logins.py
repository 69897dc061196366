"""Failed logins to the owner's page: counted per client address and per business, refused past a
limit with 429 and ``Retry-After``, and logged (issue 13, item 4).

The counting is Flask-Limiter's, with two shared limits on the ``admin`` blueprint whose hits are
deducted only when a request failed to log in (``deduct_when``): a page view with the right password
costs nothing, and a request without any credentials (a browser's first try, before it asks) is no
guess. Once a limit is used up every request it covers is refused with 429 before any password is
checked, the right one included, so a guesser learns nothing more until the window moves on.

Its storage is the app's own Redis client (:class:`AppRedisStorage`): one server, Sentinel's master,
a Cluster, or the embedded store, with the same timeouts, TLS and credentials as everything else,
so every gunicorn worker and every instance of a deployment counts together. Keys are
``<REDIS_KEY_PREFIX>:admin-logins:LIMITER/<who>/<scope>/<n>/1/minute`` (see ``bot.keys.LAYOUT``):
each is a list of timestamps (the moving window) that expires a minute after its last failure,
and each is read and written by one single-key script, so Redis Cluster runs them on any layout.

Flask-Limiter hooks every request of an app; here its hooks run for the owner's page alone
(:func:`_scoped`), so a tap on ``/webhook`` pays nothing for them (about 50 µs of CPU a request,
measured, even with no limit to check).

The address is the one ProxyFix leaves in ``request.remote_addr`` (``TRUSTED_PROXY_HOPS``); an IPv6
client is counted by its /64 network, which one subscriber usually holds whole. A failed login is
logged at WARNING with that address masked and the business tried (only a known id: a user name
that is no business, which may be a password typed in the wrong box, is never written down), and
never the password. Refusals while a limit holds are not logged one by one: a flood of them must
not fill the log.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, g, request
from flask.wrappers import Response
from flask_limiter import Limiter
from limits.storage import RedisStorage, Storage

log = logging.getLogger(__name__)

#: failed logins allowed in any moving minute from one client address (an IPv6 /64 counts as one)
PER_ADDRESS = "10 per minute"
#: failed logins allowed in any moving minute for one business, from all addresses together
PER_BUSINESS = "30 per minute"
#: Redis keys: ``<REDIS_KEY_PREFIX>:admin-logins:…``
KEY_PART = "admin-logins"

_SCHEME = "tapbook+app"


class AppRedisStorage(RedisStorage):
    """``limits``' Redis storage on a client the app already has (``tapbook+app://``).

    ``limits`` builds its own client from a URI; this one takes the app's, so the limiter reaches
    Redis exactly as the bot does in every mode, including Redis Cluster (redis-py routes each
    script by its one key) and the embedded store. It registers only the two scripts of the
    moving window, the one strategy used here: ``tests/test_cluster_slots.py`` checks that every
    script registered runs and keeps its keys in one slot.
    """

    STORAGE_SCHEME = [_SCHEME]

    def __init__(self, uri: str, *, client: Any, key_prefix: str, **_: Any) -> None:
        Storage.__init__(self, uri)
        self.key_prefix = key_prefix
        self.target_server = "redis"
        self.dependency = self.dependencies["redis"].module
        self.storage = client
        self.initialize_storage(uri)

    def initialize_storage(self, _uri: str) -> None:
        connection = self.get_connection()
        self.lua_moving_window = connection.register_script(self.SCRIPT_MOVING_WINDOW)
        self.lua_acquire_moving_window = connection.register_script(self.SCRIPT_ACQUIRE_MOVING_WINDOW)


def _address() -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_key() -> str:
    """Who is counted: ``203.0.113.7``, or an IPv6 client's /64 as ``2001-db8-0-1`` (no ``:`` in a key)."""
    address = _address()
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return "-".join(f"{int(group, 16):x}" for group in address.exploded.split(":")[:4])


def masked_address() -> str:
    """The client's address for a log line: ``203.0.113.x``, ``2001:db8:85a3:x:x:x:x:x``."""
    address = _address()
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv4Address):
        return str(address).rsplit(".", 1)[0] + ".x"
    return ":".join(f"{int(group, 16):x}" for group in address.exploded.split(":")[:3]) + ":x:x:x:x:x"


def failed(business: str | None) -> None:
    """Count this request as a failed login (see ``deduct_when``) and log it."""
    g.login_failed = True
    who = business or "unknown"
    where = masked_address()
    log.warning(
        "admin login failed: business %s from %s",
        who,
        where,
        extra={"fields": {"business": who, "address": where}},
    )


def _failed(_: Response) -> bool:
    return bool(g.get("login_failed"))


def limit_failed_logins(
    app: Flask,
    bp: Blueprint,
    *,
    client: Any,
    key_prefix: str,
    business: Callable[[], str | None],
    applies: Callable[[], bool],
) -> Limiter:
    """Limit ``bp``'s failed logins on ``app``: per address, and per ``business()`` (None: no business
    to count against, e.g. an unknown user name). ``applies()`` False skips the limiter entirely."""
    limiter = Limiter(
        client_key,
        storage_uri=f"{_SCHEME}://",
        storage_options={"client": client, "key_prefix": f"{key_prefix}:{KEY_PART}"},
        strategy="moving-window",
        headers_enabled=False,
    )
    limiter.request_filter(lambda: not applies())
    limiter.shared_limit(PER_ADDRESS, scope="address", key_func=client_key, deduct_when=_failed)(bp)
    limiter.shared_limit(
        PER_BUSINESS,
        scope="business",
        key_func=lambda: business() or "-",
        exempt_when=lambda: business() is None,
        deduct_when=_failed,
    )(bp)
    _scoped(app, bp, lambda: limiter.init_app(app))
    return limiter


def _scoped(app: Flask, bp: Blueprint, register: Callable[[], None]) -> None:
    """Run ``register``, and move the request hooks it added for the whole app to ``bp``'s requests,
    ahead of ``bp``'s own (the limit is checked before the password)."""
    registries: list[dict[Any, list[Any]]] = [
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    ]
    counts = [len(registry.get(None, [])) for registry in registries]
    register()
    for registry, count in zip(registries, counts, strict=True):
        added = registry.get(None, [])[count:]
        del registry.get(None, [])[count:]
        registry.setdefault(bp.name, [])[:0] = added


def retry_after(limiter: Limiter) -> int:
    """Seconds until the limit this request broke lets one more attempt through."""
    breached = limiter.current_limit
    if breached is None:
        return 60
    return max(1, math.ceil(breached.window.reset_time - time.time()))

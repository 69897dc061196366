"""``TWILIO_API_URL``: Twilio's own HTTP client, pointed at another base URL.

The ``twilio`` library builds absolute URLs on Twilio's hosts (``api.twilio.com`` for
Messages, ``content.twilio.com`` for the Content API, and the next-page links Twilio
answers with). :class:`EndpointHttpClient` keeps everything the library does (requests,
auth, timeouts, connection pooling) and only swaps each URL's scheme and host for the
configured base, keeping path and query, so the app, its worker and ``templates sync``
can talk to a local stand-in (``tests/twilio_server.py``) as they would to Twilio.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

log = logging.getLogger(__name__)


class EndpointHttpClient(TwilioHttpClient):
    """A :class:`TwilioHttpClient` whose every request goes to ``base_url`` (``http(s)://host[:port][/prefix]``)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.scheme, self.netloc, self.prefix = parts.scheme, parts.netloc, parts.path.rstrip("/")
        if self.session is not None:  # plain http gets the pool Twilio's client sets up for https
            self.session.mount("http://", self.session.get_adapter("https://"))
        log.warning("TWILIO_API_URL is set: Twilio REST requests go to %s, not to Twilio", self.base_url)

    def redirect(self, url: str) -> str:
        """``url`` with the base's scheme and host (its path prefixed with the base's path)."""
        parts = urlsplit(url)
        return urlunsplit((self.scheme, self.netloc, self.prefix + parts.path, parts.query, parts.fragment))

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        return super().request(
            method,
            self.redirect(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )

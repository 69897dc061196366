"""X-Twilio-Signature checks with twilio's ``RequestValidator``, before anything else runs."""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from urllib.parse import unquote

from flask import Request
from twilio.request_validator import RequestValidator

HEADER = "X-Twilio-Signature"

log = logging.getLogger(__name__)

_DEFAULT_PORT = {"http": ":80", "https": ":443"}
#: what to do when a signature fails and PUBLIC_BASE_URL is unset (also said by ``flask doctor``)
PUBLIC_BASE_URL_HINT = "set PUBLIC_BASE_URL to the https URL Twilio calls"
#: what to do when a proxy's X-Forwarded-* headers arrive and none is trusted (also said by ``flask doctor``)
PROXY_HINT = "behind a proxy or ngrok? set TRUSTED_PROXY_HOPS"
#: set in the WSGI environ by werkzeug's ProxyFix (installed when TRUSTED_PROXY_HOPS > 0)
_PROXY_FIX = "werkzeug.proxy_fix.orig"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``reason`` says why it failed, ``urls`` what was checked, ``hints``
    what the operator may have to set for it to pass."""

    valid: bool
    reason: str = ""
    urls: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()

    def urls_for_log(self) -> str:
        """The URLs checked, readable (``%2B`` decoded, so the log's safety net masks a phone)."""
        return " or ".join(_loggable(url) for url in self.urls) or "-"


class SignatureCheck:
    """Validates a request over the exact URL Twilio called and every posted parameter.

    Twilio signs the URL it called, so the URL checked must be one this deployment owns,
    not one the client names: ``PUBLIC_BASE_URL`` (scheme and host, the path and raw query
    string coming from the request), and/or the request's own URL when its host (after
    ``TRUSTED_PROXY_HOPS``, applied by ProxyFix) is one of ``WEBHOOK_HOSTS``. A request that
    matches neither is refused. With neither setting (only allowed on the embedded store) the
    request's own URL is checked, as a development convenience.
    """

    def __init__(
        self, token: str | None, *, enabled: bool, public_base_url: str | None, hosts: tuple[str, ...] = ()
    ) -> None:
        self.enabled = enabled
        self.public_base_url = public_base_url
        self.hosts = frozenset(hosts)
        self._validator = RequestValidator(token) if token else None

    def urls(self, request: Request) -> tuple[str, ...]:
        """The URLs a signature over ``request`` may have been made for (none: a host we do not serve)."""
        query = request.query_string.decode("utf-8", "replace")
        suffix = f"?{query}" if query else ""
        urls = []
        if self.public_base_url:
            urls.append(self.public_base_url + request.base_url[len(request.host_url) - 1 :] + suffix)
        if (not self.hosts and not self.public_base_url) or self._listed(request):
            urls.append(request.base_url + suffix)
        return tuple(dict.fromkeys(urls))

    def _listed(self, request: Request) -> bool:
        host = request.host.lower()
        default = _DEFAULT_PORT.get(request.scheme, "")
        bare = host.removesuffix(default) if default else host
        return bool({host, bare, bare + default} & self.hosts)

    def check(self, request: Request) -> Verdict:
        if not self.enabled:
            return Verdict(True)
        urls = self.urls(request)
        if not urls:
            reason = f"host {_loggable(request.host)} is not one of WEBHOOK_HOSTS"
            return Verdict(False, reason, hints=self.hints(request))
        signature = request.headers.get(HEADER, "")
        if not signature:
            return Verdict(False, f"missing {HEADER}", urls)
        if self._validator is None:
            return Verdict(False, "no TWILIO_AUTH_TOKEN to check signatures with", urls)
        form = request.form
        for url in urls:
            # The URL as called is one of the two forms validate() tries (with and without the default
            # port), so checking it first accepts nothing more; it saves the second HMAC on every tap.
            if hmac.compare_digest(self._validator.compute_signature(url, form).encode(), signature.encode()):
                return Verdict(True, urls=urls)
            if self._validator.validate(url, form, signature):
                return Verdict(True, urls=urls)
        return Verdict(False, f"wrong {HEADER}", urls, self.hints(request))

    def hints(self, request: Request) -> tuple[str, ...]:
        """What the operator may have to set when a signature over this request's URL fails: the
        public URL when none is set, trusted proxy hops when a proxy's headers came and none is trusted."""
        hints = []
        if not self.public_base_url:
            hints.append(PUBLIC_BASE_URL_HINT)
        forwarded = any(name.lower().startswith("x-forwarded-") for name in request.headers.keys())
        if forwarded and _PROXY_FIX not in request.environ:  # TRUSTED_PROXY_HOPS is 0: no ProxyFix
            hints.append(PROXY_HINT)
        return tuple(hints)

    def is_valid(self, request: Request) -> bool:
        """:meth:`check`, logging a WARNING with the URLs checked when it fails."""
        verdict = self.check(request)
        if not verdict.valid:
            hint = "".join(f"; hint: {hint}" for hint in verdict.hints)
            log.warning("signature refused: %s; checked %s%s", verdict.reason, verdict.urls_for_log(), hint)
        return verdict.valid


def _loggable(text: str, limit: int = 300) -> str:
    """``text`` for a log line: percent-decoded, control characters replaced, bounded."""
    text = _UNPRINTABLE.sub("?", unquote(text, errors="replace"))
    return text if len(text) <= limit else text[:limit] + "…"

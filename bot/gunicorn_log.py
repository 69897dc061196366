"""gunicorn's access log without secrets in paths: ``/calendar/<token>.ics`` is logged as
``/calendar/<hidden>.ics`` (the token is the only key to the feed; whoever reads the log must not
get it). Named by ``gunicorn.conf.py`` (``logger_class``)."""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

_FEED = re.compile(r"^/calendar/[^/]+\.ics$")


def hide(path: str) -> str:
    return "/calendar/<hidden>.ics" if _FEED.match(path) else path


class Logger(GunicornLogger):
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["U"] = hide(str(atoms.get("U", "")))
        return atoms

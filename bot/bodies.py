"""Request bodies: at most ``MAX_CONTENT_LENGTH`` bytes, whether or not a ``Content-Length`` says so.

Werkzeug refuses a declared ``Content-Length`` over the limit with 413. A chunked body has
none: the server (gunicorn, Werkzeug's own) hands it over in a stream that Werkzeug quietly
cuts at the limit, so the form would be parsed from a truncated body and the request logged
as forged. Here such a body is read first, up to the limit, and refused with 413 like any
other when more follows.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import LengthRequired, RequestEntityTooLarge


def bound_streamed_body() -> None:
    """``before_request``: read a chunked body now (cached for the form), 413 past the limit."""
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    if not request.environ.get("wsgi.input_terminated"):
        raise LengthRequired()  # the server gives no way to tell where the body ends
    limit = request.max_content_length
    data = request.get_data(cache=True)  # at most ``limit`` bytes
    if limit is not None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def init_app(app: Flask) -> None:
    app.before_request(bound_streamed_body)

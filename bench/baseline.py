"""The benchmark's baseline: the same stack (Flask on gunicorn with gunicorn.conf.py) and the same
requests, doing only what any webhook must: parse the posted form and answer constant TwiML.

Run by ``bench/run.py`` as ``gunicorn bench.baseline:app``; the gap to it is what the bot adds.
"""

from __future__ import annotations

from flask import Flask, Response, request

REPLY = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>What would you like to do?</Message></Response>'

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> Response:
    form = request.form
    if not form.get("MessageSid") or not form.get("From"):
        return Response("missing fields\n", 400, mimetype="text/plain")
    return Response(REPLY, 200, mimetype="text/xml")


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", 200, mimetype="text/plain")

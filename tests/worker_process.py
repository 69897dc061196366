"""``python -m tests.worker_process REDIS_URL MARKER``: the outbox worker in a process of its own.

Its Twilio never answers a message send: it writes the request to MARKER and hangs, so
the test can kill the process with SIGKILL while the request is on the wire.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot import create_app
from bot.outbox.worker import build_worker

from .conftest import Clock
from .content_phone import content_config
from .twilio_fake import MESSAGES_URL, FakeTwilio


class Hanging(FakeTwilio):
    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url == MESSAGES_URL:
            self.marker.write_text(json.dumps(kwargs.get("data") or args[1]))
            time.sleep(3600)  # on the wire until killed
        return super().request(method, url, *args, **kwargs)


def main(redis_url: str, marker: str) -> None:
    app = create_app(content_config(Hanging(Path(marker)), REDIS_URL=redis_url, CLOCK=Clock()))  # the test's NOW
    with app.app_context():
        worker = build_worker(lease=timedelta(seconds=1))
    worker.run(threading.Event(), idle=0.05)


if __name__ == "__main__":
    main(*sys.argv[1:])

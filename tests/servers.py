"""Real server processes for tests: gunicorn with our config, polled with bounded deadlines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import SECRET_KEY
from .redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def import_wsgi(cwd: Path, *, drop: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    """Build the app in a fresh process as gunicorn does (``import wsgi``): this process's environment
    without ``drop``, a webhook token, and ``env`` on top; stdout and stderr captured."""
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=cwd,
        env={**environ, "PYTHONPATH": str(ROOT), "TWILIO_AUTH_TOKEN": "start-up-token", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def post(url: str, form: dict[str, str], signature: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), headers={"X-Twilio-Signature": signature}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on a free loopback port."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"
        self.log = log

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:  # readiness poll of a process we just started, bounded
            try:
                get(self.base + "/healthz")
                return
            except (ConnectionError, urllib.error.URLError):
                assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.1)

    def workers(self) -> set[int]:
        """Process ids of the live workers (children of the master)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return {int(pid) for pid in children}


@contextmanager
def gunicorn(tmp_path: Path, **env: str) -> Iterator[Gunicorn]:
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "wsgi:app",
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "PORT": str(port),
            "PYTHONPATH": str(ROOT),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",  # what the tests post to and sign
            "SECRET_KEY": SECRET_KEY,
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Gunicorn(process, port, log_path)
    try:
        server.wait_until_serving()
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()

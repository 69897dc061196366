"""``python -m tests.system.skewed_clock SECONDS ARGS…``: the flask CLI (``flask ARGS…``) in a process
whose clock is SECONDS off (negative: behind), as on a host whose clock drifted.

``time.time``, ``time.time_ns`` and ``datetime.now``/``utcnow``/``today`` are shifted before anything
else is imported, so every clock this process reads for itself is off; what it asks Redis (``TIME``) is
not. The shifted clock is printed once at start, for the test to check.
"""

from __future__ import annotations

import datetime as _datetime
import sys
import time


def skew(seconds: float) -> None:
    real_time, real_ns = time.time, time.time_ns
    time.time = lambda: real_time() + seconds  # type: ignore[assignment]
    time.time_ns = lambda: real_ns() + int(seconds * 1e9)  # type: ignore[assignment]

    class SkewedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz: _datetime.tzinfo | None = None) -> SkewedDatetime:  # type: ignore[override]
            return cls.fromtimestamp(time.time(), tz)

        @classmethod
        def utcnow(cls) -> SkewedDatetime:  # type: ignore[override]
            return cls.fromtimestamp(time.time(), _datetime.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls) -> SkewedDatetime:  # type: ignore[override]
            return cls.fromtimestamp(time.time())

    _datetime.datetime = SkewedDatetime  # type: ignore[misc]


def main() -> None:
    seconds = float(sys.argv[1])
    skew(seconds)
    from flask.cli import main as flask

    print(f"skewed clock: {seconds:+g} s, now {_datetime.datetime.now(_datetime.UTC).isoformat()}", flush=True)
    sys.argv = ["flask", *sys.argv[2:]]
    flask()


if __name__ == "__main__":
    main()

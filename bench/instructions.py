"""What a tap costs, counted in CPU instructions: this release against the previous one, exactly.

Throughput on a shared 2-core VM moves by ±25 % from one minute to the next (see bench/results.md),
so a few percent between two releases cannot be read from taps/s. An instruction count can:
``valgrind --tool=callgrind`` counts the instructions the app's process executes, the same on
every run for the same code and inputs, whatever else the machine is doing.

For each release (this checkout, and ``release-1`` extracted with ``git archive``) the app is
built in-process with its own ``create_app`` on a real redis-server (not traced: a separate
process) and answers its own benchmark conversations (``bench/conversations.py``: hi, Book,
service, day, time, Confirm) through Flask's test client: once with 5 conversations, once with
5 + N. The difference divided by 6N taps is the instructions per tap, start-up and imports
cancelled out. One command (about 3 minutes; installs valgrind with apt-get when missing)::

    .venv/bin/python bench/instructions.py [--conversations 20] [--release release-1]

Prints a table and writes it to ``bench/instructions.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import ensure_tool, release_checkout  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

RESULTS = REPO / "bench" / "instructions.md"
WARM = 5  # conversations both runs make: imports, connections and caches warm in both

#: run inside valgrind, with the release's code first on sys.path: argv = repo, redis url, conversations
DRIVER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
repo, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, repo)
import redis
from bot import create_app
from bot.booking.catalog import load_catalog
from bench.conversations import ConversationPlan
redis.Redis.from_url(url).flushall()
catalog = load_catalog(Path(repo) / "bench" / "clinic.toml", languages=frozenset({"en", "es", "pt"}))
base = "https://bot.example.com"
app = create_app({"REDIS_URL": url, "TWILIO_AUTH_TOKEN": "bench", "PUBLIC_BASE_URL": base, "CATALOG": catalog,
                  "SECRET_KEY": "bench-secret-key-" + "b" * 32, "LOG_LEVEL": "WARNING"})
client = app.test_client()
now = datetime.fromisoformat(sys.argv[4])
plan = ConversationPlan(catalog, token="bench", url=base + "/webhook", now=now)
for conversation in plan.conversations(first_phone=1, count=count):
    for tap in conversation:
        answer = client.post("/webhook", base_url=base, data=tap.form, headers={"X-Twilio-Signature": tap.signature})
        assert answer.status_code == 200 and b"out of date" not in answer.data, answer.data
"""


def instructions(valgrind: str, repo: Path, url: str, conversations: int, workdir: Path, now: str) -> int:
    """Instructions the app's process executed answering ``conversations`` conversations."""
    driver = workdir / "driver.py"
    driver.write_text(DRIVER)
    result = subprocess.run(
        [valgrind, "--tool=callgrind", f"--callgrind-out-file={workdir / 'callgrind.out'}",
         sys.executable, str(driver), str(repo), url, str(conversations), now],
        capture_output=True, text=True, cwd=workdir, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or not found:
        sys.exit(f"the run under valgrind failed:\n{result.stderr[-3000:]}")
    return int(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=20, help="N: the measured conversations")
    parser.add_argument("--release", default="release-1", help="the previous release's git revision")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    valgrind = ensure_tool("valgrind")
    workdir = Path(tempfile.mkdtemp(prefix="tapbook-instructions-"))
    server = RedisServer(workdir / "redis")
    server.start()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    try:
        releases = {"this release": REPO}
        previous = release_checkout(workdir, args.release)
        if previous:
            releases[args.release] = previous
        per_tap = {}
        for name, repo in releases.items():
            counts = [
                instructions(valgrind, repo, server.url, n, workdir, now) for n in (WARM, WARM + args.conversations)
            ]
            per_tap[name] = (counts[1] - counts[0]) / (6 * args.conversations)
            print(f"{name}: {per_tap[name] / 1e6:.3f} M instructions per tap", flush=True)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    lines = [
        "# Instructions per tap",
        "",
        f"`python bench/instructions.py --conversations {args.conversations}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: "
        f"callgrind's count of the app process's instructions for {args.conversations} booking conversations "
        f"({6 * args.conversations} taps) beyond {WARM} warm ones, in-process on a real redis-server (see the "
        "docstring of bench/instructions.py).",
        "",
        "| Release | Instructions per tap | / previous |",
        "|---|---|---|",
    ]
    base = per_tap.get(args.release)
    for name, value in per_tap.items():
        lines.append(
            f"| {name} | {value / 1e6:.3f} M | {value / base:.3f} |"
            if base
            else f"| {name} | {value / 1e6:.3f} M | n/a |"
        )
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()

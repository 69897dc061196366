"""gunicorn settings for a small machine; gunicorn reads this file on its own.

Every tap spends most of its time waiting on Redis (two short round trips), so each
worker process runs a few threads; processes scale with the cores. Override with
WEB_CONCURRENCY (processes) and GUNICORN_THREADS.

Metrics: every worker counts on its own, so prometheus_client runs in multiprocess mode.
PROMETHEUS_MULTIPROC_DIR must be set before the app (and prometheus_client) is imported,
which is why it is set here: a fresh temporary directory unless the environment names
one, whose old files are then removed. A scrape of /metrics on any worker adds up the
files of all workers; ``child_exit`` tells prometheus_client when a worker is gone.
"""

import glob
import multiprocessing
import os
import shutil
import tempfile

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Config errors surface once, in the master, as one line; workers fork a ready app.
preload_app = True
# Twilio waits 15 s at most; a request still running at 20 s is stuck: recycle the worker.
timeout = 20
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# gunicorn's default line, but the path without its query string: the status callbacks the outbox
# worker asks Twilio for name the customer (?to=%2B34600111222), and no log may carry a phone number.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'
# and a calendar feed's secret token (its URL is the only key to it) never reaches the log either
logger_class = "bot.gunicorn_log.Logger"

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    for stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(stale)  # counts of an earlier run would add to this one's
else:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir = tempfile.mkdtemp(prefix="tapbook-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess  # imported only once the directory is set

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if "_own_metrics_dir" in globals():
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)

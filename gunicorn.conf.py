"""gunicorn settings for a small machine; gunicorn reads this file on its own.

Every tap spends most of its time waiting on Redis (two short round trips), so each
worker process runs a few threads; processes scale with the cores. Override with
WEB_CONCURRENCY (processes) and GUNICORN_THREADS.
"""

import multiprocessing
import os

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

"""Gunicorn settings for Cordiale's web processes (used by deploy/bin/web).

Everything here can still be overridden on the command line or through
GUNICORN_CMD_ARGS; the values below are the defaults we run in production.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from forum.logs import RedactFilter, redact_path

# Loopback unless told otherwise: a developer's `deploy/bin/web` should not be
# reachable from the network. The image sets GUNICORN_BIND=0.0.0.0:8000, since in a
# container the pod or bridge network is the boundary.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")


def _available_cpus() -> int:
    """CPUs this process may actually use: the cgroup v2 quota if one is set.

    os.cpu_count() reports the host's cores, so a pod limited to 1 CPU on a 64-core
    node would otherwise start 129 workers and be throttled and OOM-killed.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, round(int(quota) / int(period))))


# gthread: each worker process runs `threads` request threads. Requests to Cordiale
# spend most of their time waiting on PostgreSQL and on the client (member uploads
# of statement batches, keep-alive connections from load balancers and sync
# clients), so threads buy concurrency for a fraction of a process's memory; and
# unlike the sync worker, a slow client does not occupy a whole process. Async
# workers would need the whole stack (psycopg, Django ORM calls) to cooperate.
worker_class = "gthread"
threads = 4

# WEB_CONCURRENCY when the operator sizes it (the Kubernetes manifests do, per pod);
# otherwise the classic 2 x CPUs + 1, capped: every thread may hold a PostgreSQL
# connection, so processes x threads x replicas must stay within the database's
# max_connections (or PgBouncer's pool), which matters more than using every core.
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * _available_cpus() + 1, 8))

# With gthread, `timeout` is how long the arbiter waits for a silent worker process
# (its main loop, not one request) before killing it. Request duration is bounded
# instead by the load balancer and PostgreSQL's statement_timeout.
timeout = 30
# On SIGTERM, finish in-flight requests for up to this long. Kubernetes waits
# terminationGracePeriodSeconds (45 in deploy/k8s) before SIGKILL, so keep it below.
graceful_timeout = 30
# Longer than the idle timeout of common load balancers (AWS ALB 60s, nginx 60s), so
# the balancer, not gunicorn, closes idle connections: otherwise a request sent just
# as gunicorn closes the connection fails with a 502.
keepalive = 65

# Restart each worker after about this many requests, with jitter so that workers
# started together do not all restart together: a cheap guard against slow memory
# leaks (in dependencies as much as in our code) in a process that runs for months.
max_requests = 2000
max_requests_jitter = 200

# Trust X-Forwarded-* (scheme) only from these peers. Gunicorn reads the default from
# FORWARDED_ALLOW_IPS. The HTTPS decision that matters is Django's
# SECURE_PROXY_SSL_HEADER; this only affects wsgi.url_scheme.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Heartbeat files on tmpfs where there is one: on a container's overlay filesystem a
# blocked fsync can stall the heartbeat and get healthy workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# The process is managed by the container runtime or the test that started it; the
# control socket would try to write to $HOME, read-only in the image.
control_socket_disable = True

# Logs go to stdout/stderr for the platform to collect; no log files in the container.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# prometheus_client in a multi-process server needs a shared directory for its
# per-process value files, empty at start. Set it here, in the arbiter, before any
# worker imports the app, unless the operator already chose one.
_created_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="cordiale-prometheus-"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_exit(server: Any) -> None:
    """Remove the metrics directory this configuration created."""
    if _created_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the shared metrics directory."""
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    multiprocess.mark_process_dead(worker.pid)


_REDACT = RedactFilter()


class JsonAccessLogger(Logger):
    """Access log as one JSON object per line, in the same stream as the app's logs.

    Built with json.dumps rather than access_log_format, which does not escape a quote
    in a user agent or path and would produce lines log collectors cannot parse.

    Neither log shows a signal value: lookups name it in the path, and gunicorn's error
    log quotes the request line of a request it cannot parse (forum/logs.py).
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # On the logger, so that every handler gunicorn attaches (stream, file, syslog)
        # gets redacted records; addFilter ignores a second add on a configuration reload.
        self.error_log.addFilter(_REDACT)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.cfg.accesslog:
            return
        response_headers = {name.lower(): value for name, value in resp.headers}
        path = environ.get("PATH_INFO")
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        record = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "level": "info",
            "logger": "gunicorn.access",
            # The id the app assigned (or accepted from the client) and echoed in the
            # response; the same id appears in the app's and the Celery tasks' logs.
            "request_id": response_headers.get("x-request-id") or environ.get("HTTP_X_REQUEST_ID"),
            "method": environ.get("REQUEST_METHOD"),
            "path": redact_path(path) if path else path,
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        # No query string: it carries feed cursors, which the access log does not need.
        try:
            self.access_log.info(json.dumps(record, separators=(",", ":")))
        except Exception:
            self.error("could not write access log line", exc_info=sys.exc_info())


logger_class = JsonAccessLogger

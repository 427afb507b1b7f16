"""Structured logs and the request id that ties a request to the tasks it causes.

Outside debug mode every process (gunicorn workers, Celery workers, beat, management
commands) writes one JSON object per line on stdout::

    {"time": "2025-06-01T12:00:00.123+00:00", "level": "info", "logger": "celery.app.trace",
     "message": "Task exchange.tasks.fanout_feed_changed[...] succeeded in 0.01s: 3",
     "request_id": "0c1f6a...", "task_id": "5b2e..."}

``request_id`` comes from ``RequestIdMiddleware`` (the client's ``X-Request-ID`` if it
sent a valid one, else a new one) and travels with every Celery task published while it
is set, in the message headers (see ``forum/celery.py``): a submission's id appears on
its own log lines and on those of the fan-out and delivery tasks it caused.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("cordiale_request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("cordiale_task_id", default=None)

# Ids from clients and proxies are echoed in headers and logs: accept only short tokens
# of safe characters (UUIDs, ULIDs, trace ids), never arbitrary text.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def valid_request_id(value: str | None) -> str | None:
    """``value`` if it can serve as a request id, else None."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` and ``task_id`` (None outside a request or task) to every record.

    Attach it to handlers, not loggers: a logger's filters do not see records that
    propagate to it from child loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.task_id = task_id_var.get()
        return True


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "task_id"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        task_id = getattr(record, "task_id", None)
        if task_id:
            entry["task_id"] = task_id
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and not name.startswith("_"):
                entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, separators=(",", ":"))

"""Structured logs and the request id that ties a request to the tasks it causes.

Outside debug mode every process (gunicorn workers, Celery workers, beat, management
commands) writes one JSON object per line: servers on stdout, where the platform collects
their output, and management commands on stderr (``manage.py`` calls ``log_to_stderr``),
since their stdout is for scripts (an audit archive, a JSON result line)::

    {"time": "2025-06-01T12:00:00.123+00:00", "level": "info", "logger": "celery.app.trace",
     "message": "Task exchange.tasks.fanout_feed_changed[...] succeeded in 0.01s: 3",
     "request_id": "0c1f6a...", "task_id": "5b2e..."}

``request_id`` comes from ``RequestIdMiddleware`` (the client's ``X-Request-ID`` if it
sent a valid one, else a new one) and travels with every Celery task published while it
is set, in the message headers (see ``forum/celery.py``): a submission's id appears on
its own log lines and on those of the fan-out and delivery tasks it caused.

Logs never carry a queried signal value. A lookup names the value in its path
(``/api/v1/signals/pdq/<value>``, ``/api/v1/opinions/<type>/<value>``) and a query
string may carry a feed cursor; log lines are read by more people, and kept longer,
than the data itself. ``RedactFilter`` rewrites such paths and query strings in every
record it sees, Django's request and runserver loggers included, and gunicorn's access
and error logs use the same functions (``deploy/gunicorn.conf.py``)::

    Not Found: /api/v1/signals/pdq/<redacted>
    "GET /api/v1/changes?cursor=<redacted>&limit=<redacted> HTTP/1.1" 400 187
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("cordiale_request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("cordiale_task_id", default=None)

# Ids from clients and proxies are echoed in headers and logs: accept only short tokens
# of safe characters (UUIDs, ULIDs, trace ids), never arbitrary text.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


# Where this process's console handler writes: "stdout" for servers, "stderr" for tools.
_console = {"stream": "stdout"}


def log_to_stderr() -> None:
    """Send this process's logs to stderr; call it before Django configures logging."""
    _console["stream"] = "stderr"


def console_handler() -> logging.StreamHandler[Any]:
    """The handler of ``settings.LOGGING``'s console: stdout, or stderr for a tool."""
    return logging.StreamHandler(sys.stderr if _console["stream"] == "stderr" else sys.stdout)


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

REDACTED = "<redacted>"

# Routes whose path names a signal value after its type. A ``url`` value keeps its
# slashes (and a decoded ``?``), so everything after the type is the value.
_VALUE_ROUTE = re.compile(r"/api/v1/(?:signals|opinions)/")
# What a signal type name looks like (``pdq``, ``sha256``, ``video_md5``): kept in the
# log, as it says what was looked up. A segment that does not look like one may be a
# value sent in the wrong place, and goes too.
_SIGNAL_TYPE = re.compile(r"[a-z][a-z0-9_]{0,19}")
# Query parameter names are the API's vocabulary (``cursor``, ``limit``, ``match[id]``)
# and are kept; anything else in a query is a value.
_QUERY_NAME = re.compile(r"[A-Za-z0-9_.\[\]-]{1,40}")
# In free text (a request line, an error message) a path runs to the next space, double
# quote or backslash (where a repr or JSON escape starts).
_TEXT_VALUE_ROUTE = re.compile(r"/api/v1/(?:signals|opinions)/[^\s\"\\]*")
_TEXT_QUERY = re.compile(r"(/[^\s\"\\?]*)\?([^\s\"\\]*)")


def redact_query(query: str) -> str:
    """``query`` with every value replaced: ``cursor=<redacted>&limit=<redacted>``."""
    items = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        items.append(f"{name}={REDACTED}" if equals and _QUERY_NAME.fullmatch(name) else REDACTED)
    return "&".join(items)


def redact_path(path: str) -> str:
    """``path`` (optionally with its query string) as logs may show it.

    ``/api/v1/signals/pdq/<value>`` becomes ``/api/v1/signals/pdq/<redacted>`` and a
    query keeps only its parameter names; any other path is returned unchanged.
    """
    route = _VALUE_ROUTE.search(path)
    if route is not None and route.end() < len(path):
        signal_type, slash, _ = path[route.end() :].partition("/")
        kept = signal_type + slash if slash and _SIGNAL_TYPE.fullmatch(signal_type) else ""
        return path[: route.end()] + kept + REDACTED
    path, question_mark, query = path.partition("?")
    return f"{path}?{redact_query(query)}" if question_mark else path


def redact_text(text: str) -> str:
    """``text`` with every value route and query string in it redacted (see ``redact_path``)."""
    text = _TEXT_VALUE_ROUTE.sub(lambda m: redact_path(m.group()), text)
    return _TEXT_QUERY.sub(lambda m: f"{m.group(1)}?{redact_query(m.group(2))}", text)


def _redact_arg(arg: object) -> object:
    # Other objects keep their type, so that ``%d`` and friends still format them.
    if not isinstance(arg, str | BaseException):
        return arg
    text = str(arg)
    # A whole argument that is a path (``Not Found: %s``) is redacted as one, even if
    # its decoded value has spaces in it.
    return redact_path(text) if text.startswith("/") else redact_text(text)


class RedactFilter(logging.Filter):
    """Removes signal values and query values from a record before it is written.

    Rewrites the message, its arguments, string ``extra`` fields and the exception
    text. Attach it to the handlers, and to loggers whose records other handlers see
    too (``django.request``, ``django.server``, ``gunicorn.error``). Running it twice
    on a record changes nothing more.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _redact_arg(value) for key, value in record.args.items()}
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, name, redact_text(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


# Django's request loggers pass the request itself (an HttpRequest, or runserver's
# socket): its text is the method and full path, and the path is in the message anyway.
_UNLOGGED_EXTRAS = _STANDARD_ATTRS | {"request"}


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
            if name not in _UNLOGGED_EXTRAS and not name.startswith("_"):
                entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, separators=(",", ":"))

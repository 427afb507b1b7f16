"""Celery application, configured from Django settings under the ``CELERY_`` namespace.

Also wires what every task gets without asking: Django's logging configuration (JSON
lines outside debug mode) instead of Celery's own, the request id of the request that
published a task (carried in the message headers, restored while the task runs), task
outcome counters for ``/metrics``, and what apps want ready in each pool process
(``warm_each_worker_process``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import Token
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "forum.settings")

app = Celery("forum")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "cordiale_request_id"


@signals.setup_logging.connect
def _configure_logging(**kwargs: Any) -> None:
    """Use ``settings.LOGGING`` in workers and beat (a receiver stops Celery's own setup)."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


# What each pool process builds as it starts, before its first task; apps register it
# from their AppConfig.ready() (exchange: the webhook HTTP client).
_process_warmers: list[Callable[[], object]] = []


def warm_each_worker_process(warm: Callable[[], object]) -> None:
    """Run ``warm()`` in every pool process as it starts; registering again changes nothing."""
    if warm not in _process_warmers:
        _process_warmers.append(warm)


@signals.worker_process_init.connect
def _warm_worker_process(**kwargs: Any) -> None:
    """Build what apps registered (the webhook HTTP client: its TLS context takes tens of
    ms) before a task, rather than during the first one after a start; then tune the
    garbage collector for the feed pages deliveries build (forum/gctune.py)."""
    from .gctune import tune_collector

    for warm in _process_warmers:
        warm()
    tune_collector()


@signals.celeryd_init.connect
def _prepare_worker_metrics(**kwargs: Any) -> None:
    """With ``CORDIALE_WORKER_METRICS_PORT``, pool processes (forked after this) record
    their task outcomes where the main process can add them up."""
    from django.conf import settings

    if settings.CORDIALE_WORKER_METRICS_PORT:
        from .metrics import worker_metrics_prepare

        worker_metrics_prepare()


@signals.worker_ready.connect
def _serve_worker_metrics(**kwargs: Any) -> None:
    """Serve the worker's task outcomes for Prometheus once it is ready."""
    from django.conf import settings

    if settings.CORDIALE_WORKER_METRICS_PORT:
        from .metrics import worker_metrics_serve

        worker_metrics_serve(
            port=settings.CORDIALE_WORKER_METRICS_PORT, addr=settings.CORDIALE_WORKER_METRICS_ADDR
        )


@signals.worker_process_shutdown.connect
def _forget_worker_process(pid: int | None = None, **kwargs: Any) -> None:
    from .metrics import worker_process_gone

    worker_process_gone(pid or os.getpid())


@signals.before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    from .logs import request_id_var

    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


# task id -> the context tokens to reset when that task ends.
_tokens: dict[str, tuple[Token[str | None], Token[str | None]]] = {}


@signals.task_prerun.connect
def _restore_request_id(task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    from .logs import request_id_var, task_id_var

    # An eager task runs inside the publishing request and already has its id.
    request_id = getattr(task.request, REQUEST_ID_HEADER, None) or request_id_var.get()
    _tokens[task_id] = (request_id_var.set(request_id), task_id_var.set(task_id))


@signals.task_postrun.connect
def _forget_request_id(task_id: str = "", **kwargs: Any) -> None:
    from .logs import request_id_var, task_id_var

    tokens = _tokens.pop(task_id, None)
    if tokens is not None:
        # Reverse order of setting, in case a token belongs to an outer context.
        task_id_var.reset(tokens[1])
        request_id_var.reset(tokens[0])


@signals.task_success.connect
def _count_success(sender: Any = None, **kwargs: Any) -> None:
    from .metrics import record_task

    record_task(getattr(sender, "name", "unknown"), "success")


@signals.task_failure.connect
def _count_failure(sender: Any = None, **kwargs: Any) -> None:
    from .metrics import record_task

    record_task(getattr(sender, "name", "unknown"), "failure")


@signals.task_retry.connect
def _count_retry(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    from .metrics import record_task

    # task_retry's sender is the task; its name is the label like the other outcomes.
    name = getattr(sender, "name", None) or getattr(request, "task", None)
    record_task(str(name or "unknown"), "retry")

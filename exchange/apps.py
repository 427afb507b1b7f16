from pathlib import Path

from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"
    verbose_name = "Exchange"
    # Where the app's templates and commands are, said outright: with the cordiale-client
    # distribution installed editable next to the server (the development install),
    # `exchange` can import as an implicit namespace package whose __path__ is an import
    # hook rather than this directory, and Django would otherwise look there.
    path = str(Path(__file__).resolve().parent)

    def ready(self) -> None:
        # Lower layers learn of their listeners here, never by importing them: the feed
        # knows no webhooks, /metrics and the Celery wiring know no app.
        from forum.celery import warm_each_worker_process

        from . import metrics
        from .feed import feed_listeners
        from .webhooks import admin  # noqa: F401  (registers the webhook admin)
        from .webhooks.delivery import http_client, webhooks_wake_on_feed

        feed_listeners.register(webhooks_wake_on_feed)
        metrics.register()
        warm_each_worker_process(http_client)

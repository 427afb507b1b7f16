from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"
    verbose_name = "Exchange"

    def ready(self) -> None:
        from . import admin_webhooks  # noqa: F401  (registers the webhook admin)

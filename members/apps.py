from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = "Membership"

    def ready(self) -> None:
        from django.core import checks

        from . import openapi, signals  # noqa: F401  (openapi: registers the auth scheme)
        from .forum_key import forum_key_check

        checks.register(forum_key_check)

        signals.connect_axes()

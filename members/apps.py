from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = "Membership"

    def ready(self) -> None:
        from . import signals

        signals.connect_axes()

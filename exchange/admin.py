"""Admin for the exchange: the label taxonomy (editable, audited) and read-only views of
signals and statements. Statements are signed by members and stored verbatim, so the
admin may look at them but never change them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from members.admin import admin_actor

from .models import Label, Signal, Statement
from .services.labels import label_save


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "active"]
    list_filter = ["kind", "active"]
    search_fields = ["slug", "name", "description"]

    def get_readonly_fields(self, request: HttpRequest, obj: Label | None = None) -> list[str]:
        # Statements carry label slugs: renaming a slug would orphan them.
        return [] if obj is None else ["slug"]

    def has_delete_permission(self, request: HttpRequest, obj: Label | None = None) -> bool:
        return False  # deactivate instead

    def save_model(self, request: HttpRequest, obj: Label, form: Any, change: bool) -> None:
        label_save(label=obj, actor=admin_actor(request))


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Signal)
class SignalAdmin(ReadOnlyAdmin):
    list_display = ["id", "signal_type", "short_value", "created_at"]
    list_filter = ["signal_type"]
    search_fields = ["=value"]

    @admin.display(description="value")
    def short_value(self, obj: Signal) -> str:
        return obj.value if len(obj.value) <= 80 else obj.value[:77] + "…"


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "member_slug",
        "op",
        "signal",
        "labels",
        "tlp",
        "audience",
        "iat",
        "received_at",
        "withdrawn_at",
    ]
    list_filter = ["op", "tlp", "withdrawn_reason"]
    search_fields = ["=jti", "=member_slug", "=kid", "=signal__value"]
    list_select_related = ["signal"]
    raw_id_fields = ["member", "signing_key", "signal", "group"]

"""Admin for the exchange: the label taxonomy (editable, audited) and read-only views of
signals and statements. Statements are signed by members and stored verbatim, so the
admin may look at them but never change them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from forum.admin_helpers import (
    AddOnlyAdmin,
    ReadOnlyAdmin,
    admin_actor,
    confirm_then,
    service_errors,
    staff_action,
)

from .disputes.admin import DisputeAdmin
from .models import Dispute, Incident, Label, Signal, Statement
from .services.incidents import incident_check_declarable, incident_declare, incident_end
from .services.labels import label_check_kind, label_save


class LabelForm(forms.ModelForm):
    class Meta:
        model = Label
        fields = ["slug", "name", "kind", "description", "active"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "kind" in data:
            with service_errors("kind"):
                label_check_kind(label=self.instance, kind=data["kind"])
        return data


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    form = LabelForm
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


class IncidentDeclareForm(forms.ModelForm):
    class Meta:
        model = Incident
        fields = ["name", "slug", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False
        self.fields[
            "slug"
        ].help_text = "Optional; made from the name. The label is incident-<slug>."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "name" in data:
            with service_errors("slug"):
                incident_check_declarable(name=data["name"], slug=data.get("slug") or None)
        return data

    def validate_unique(self) -> None:
        """What is taken is the service's to say (``clean``), by the slug it will use."""


@admin.register(Incident)
class IncidentAdmin(AddOnlyAdmin):
    """Declaring is the add form; an incident is never edited, only ended (audited)."""

    list_display = ["slug", "name", "declared_at", "declared_by", "ended_at", "label"]
    list_filter = [("ended_at", admin.EmptyFieldListFilter)]
    search_fields = ["slug", "name"]
    actions = ["end_incidents"]
    add_form = IncidentDeclareForm
    add_fields = ("name", "slug", "description")
    readonly_fields = (
        "name",
        "slug",
        "description",
        "declared_at",
        "declared_by",
        "ended_at",
        "label",
    )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Incident, form: Any, change: bool) -> None:
        if change:
            return
        declared = incident_declare(
            name=obj.name,
            slug=obj.slug or None,
            description=obj.description,
            actor=admin_actor(request),
        )
        obj.pk = declared.pk
        obj.slug, obj.label = declared.slug, declared.label

    @staff_action(permissions=["change"], description="End the selected incidents")
    def end_incidents(
        self, request: HttpRequest, queryset: QuerySet[Incident]
    ) -> TemplateResponse | None:
        actor = admin_actor(request)

        def apply(incident: Incident, data: dict[str, Any]) -> None:
            incident_end(incident=incident, actor=actor)

        return confirm_then(
            self,
            request,
            queryset.filter(ended_at__isnull=True),
            title="End incidents",
            consequences=[
                "Their labels are refused in new statements; statements that carry them keep them.",
                "Their statements are no longer pushed ahead of routine traffic.",
            ],
            apply=apply,
        )


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


admin.site.register(Dispute, DisputeAdmin)

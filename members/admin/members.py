"""Members in the admin: adding, editing and the lifecycle actions.

Approve, suspend, reinstate and expel go through ``members.services.member_set_status``
with the actor ``admin:<username>``; suspending and expelling first show what they will
do (keys disabled, deliveries paused, statements withdrawn), counted for each member.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from forum.admin_helpers import admin_actor, confirm_then, run_each, staff_action

from .. import services
from ..models import Member
from ..selectors_admin import member_impact, member_overview


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "status", "contact_email", "created_at", "status_changed_at"]
    list_filter = ["status"]
    search_fields = ["slug", "name", "contact_email"]
    ordering = ["slug"]
    actions = ["approve", "suspend", "reinstate", "expel"]

    def get_fields(self, request: HttpRequest, obj: Member | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("slug", "name", "contact_email")
        return ("slug", "name", "contact_email", "status", "created_at", "status_changed_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Member | None = None) -> list[str]:
        if obj is None:
            return []
        # Status moves only through the lifecycle actions, never by editing the field.
        return ["slug", "status", "created_at", "status_changed_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Member | None = None) -> bool:
        return False  # expulsion, not deletion: what a member signed stays auditable

    def save_model(self, request: HttpRequest, obj: Member, form: Any, change: bool) -> None:
        if change:
            services.member_update(
                member=obj,
                name=obj.name,
                contact_email=obj.contact_email,
                actor=admin_actor(request),
            )
        else:
            created = services.member_create(
                slug=obj.slug,
                name=obj.name,
                contact_email=obj.contact_email,
                actor=admin_actor(request),
            )
            obj.pk, obj.status, obj.created_at = created.pk, created.status, created.created_at

    def _set_status(self, request: HttpRequest, status: str) -> Callable[..., None]:
        actor = admin_actor(request)

        def apply(member: Member, *_: Any) -> None:
            services.member_set_status(member=member, status=status, actor=actor)

        return apply

    @staff_action(
        permissions=["change"], description="Approve selected applicants (they become active)"
    )
    def approve(self, request: HttpRequest, queryset: QuerySet[Member]) -> None:
        run_each(
            self,
            request,
            queryset,
            self._set_status(request, Member.Status.ACTIVE),
            "Approved",
        )

    @staff_action(permissions=["change"], description="Reinstate selected suspended members")
    def reinstate(self, request: HttpRequest, queryset: QuerySet[Member]) -> None:
        run_each(
            self,
            request,
            queryset.filter(status=Member.Status.SUSPENDED),
            self._set_status(request, Member.Status.ACTIVE),
            "Reinstated",
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        member = self.get_object(request, object_id)
        if member is not None:
            overview = member_overview(member=member)
            disputes = overview["disputes"]
            overview["dispute_rows"] = [
                ("opened by it", disputes["opened"]),
                ("against its statements", disputes["against"]),
            ]
            extra_context = {**(extra_context or {}), **overview}
        return super().change_view(request, object_id, form_url, extra_context)

    @staff_action(permissions=["change"], description="Suspend selected members…")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Member]) -> TemplateResponse | None:
        counted = []
        for member in queryset:
            impact = member_impact(member=member)
            line = f"{member.slug}: {impact.api_keys} API key(s) disabled"
            if impact.webhook_endpoints is not None:
                line += f", deliveries to {impact.webhook_endpoints} webhook endpoint(s) paused"
            counted.append(line + ".")
        return confirm_then(
            self,
            request,
            queryset,
            title="Suspend members",
            consequences=[
                *counted,
                "Their API keys stop working at once (403 on every request).",
                "Their webhook deliveries pause; their statements stay visible to others.",
                "Reinstating them later restores access; nothing is lost.",
            ],
            apply=self._set_status(request, Member.Status.SUSPENDED),
        )

    @staff_action(permissions=["change"], description="Expel selected members…")
    def expel(self, request: HttpRequest, queryset: QuerySet[Member]) -> TemplateResponse | None:
        counted = []
        for member in queryset:
            impact = member_impact(member=member)
            counted.append(
                f"{member.slug}: {impact.api_keys} API key(s) disabled; "
                f"{impact.live_statements} current statement(s) withdrawn from "
                f"{impact.viewers} member(s)' view."
            )
        return confirm_then(
            self,
            request,
            queryset,
            title="Expel members",
            consequences=[
                *counted,
                "Their API keys stop working at once.",
                "Every statement they made is withdrawn: other members receive deletions.",
                "Their opinions are removed and they leave every audience.",
                "Expulsion is final: a member that returns applies again as a new member.",
            ],
            apply=self._set_status(request, Member.Status.EXPELLED),
        )

"""Sharing groups in the admin: created, renamed and given members through the services,
since who joins or leaves a group changes who sees what, which only they tell the feed.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import widgets
from django.http import HttpRequest

from forum.admin_helpers import admin_actor

from .. import services
from ..models import Member, SharingGroup


class SharingGroupForm(forms.ModelForm):
    group_members = forms.ModelMultipleChoiceField(
        queryset=Member.objects.exclude(status=Member.Status.EXPELLED),
        required=False,
        widget=widgets.FilteredSelectMultiple("members", is_stacked=False),
        label="Members",
    )

    class Meta:
        model = SharingGroup
        fields = ["slug", "name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["group_members"].initial = list(self.instance.members.all())


@admin.register(SharingGroup)
class SharingGroupAdmin(admin.ModelAdmin):
    form = SharingGroupForm
    list_display = ["slug", "name", "member_count", "created_at"]
    search_fields = ["slug", "name"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: SharingGroup | None = None
    ) -> tuple[str, ...]:
        return () if obj is None else ("slug",)

    def get_fields(self, request: HttpRequest, obj: SharingGroup | None = None) -> tuple[str, ...]:
        return ("slug", "name", "description", "group_members")

    def has_delete_permission(self, request: HttpRequest, obj: SharingGroup | None = None) -> bool:
        return False  # statements addressed to a group keep pointing at it

    @admin.display(description="members")
    def member_count(self, obj: SharingGroup) -> int:
        return obj.members.count()

    def save_model(self, request: HttpRequest, obj: SharingGroup, form: Any, change: bool) -> None:
        actor = admin_actor(request)
        if change:
            services.sharing_group_update(
                group=obj, name=obj.name, description=obj.description, actor=actor
            )
        else:
            # Members are set in ``save_related``, inside the same admin transaction.
            created = services.sharing_group_create(
                slug=obj.slug, name=obj.name, description=obj.description, actor=actor
            )
            obj.pk, obj.name, obj.created_at = created.pk, created.name, created.created_at

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The membership is not saved by the form: joiners and leavers change who sees
        # what, which only the service tells the feed.
        services.sharing_group_set_members(
            group=form.instance,
            members=form.cleaned_data["group_members"],
            actor=admin_actor(request),
        )

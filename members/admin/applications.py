"""Membership applications in the admin: review, approve (creating the member, its first
API key and its signing key) or reject, each on a page that says what it will do."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from exchange.client import jws
from forum.admin_helpers import admin_actor, service_errors
from forum.errors import DomainError

from ..applications import (
    APPLICATION_FIELDS,
    application_approve,
    application_check_approvable,
    application_check_public_key,
    application_check_slug,
    application_reject,
    application_submit,
    application_update,
)
from ..models import Member, MembershipApplication
from ..services import ALL_SCOPES

_EDITABLE = APPLICATION_FIELDS


def _https_urls(field: models.Field[Any, Any], **kwargs: Any) -> forms.Field | None:
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return field.formfield(**kwargs)


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = MembershipApplication
        formfield_callback = _https_urls
        fields = list(_EDITABLE)
        widgets = {"public_key": forms.Textarea(attrs={"rows": 5, "cols": 70})}

    def clean_public_key(self) -> str:
        text: str = self.cleaned_data["public_key"].strip()
        with service_errors():
            application_check_public_key(text)
        return text

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"]
        with service_errors():
            application_check_slug(slug)
        return slug


class RejectForm(forms.Form):
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        required=False,
        help_text="Why, for the record (added to the reviewer notes).",
    )


@admin.register(MembershipApplication)
class MembershipApplicationAdmin(admin.ModelAdmin):
    form = ApplicationForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = [
        "organisation_name",
        "slug",
        "contact_email",
        "commitments",
        "status",
        "submitted_at",
    ]
    list_filter = ["status"]
    search_fields = ["organisation_name", "slug", "contact_email", "contact_name"]

    def get_fields(
        self, request: HttpRequest, obj: MembershipApplication | None = None
    ) -> tuple[str, ...]:
        if obj is None:
            return _EDITABLE
        return (*_EDITABLE, "status", "submitted_at", "decided_at", "decided_by", "member")

    def get_readonly_fields(
        self, request: HttpRequest, obj: MembershipApplication | None = None
    ) -> tuple[str, ...]:
        if obj is None:
            return ()
        decided = ("status", "submitted_at", "decided_at", "decided_by", "member")
        if obj.status != MembershipApplication.Status.PENDING:
            return (*_EDITABLE, *decided)
        return decided

    def has_delete_permission(
        self, request: HttpRequest, obj: MembershipApplication | None = None
    ) -> bool:
        return False  # decisions stay on record

    @admin.display(boolean=True, description="commitments")
    def commitments(self, obj: MembershipApplication) -> bool:
        return obj.commitments_met

    def save_model(
        self, request: HttpRequest, obj: MembershipApplication, form: Any, change: bool
    ) -> None:
        if change:
            application_update(application=obj, actor=admin_actor(request))
        else:
            application_submit(application=obj, actor=admin_actor(request))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/approve/",
                self.admin_site.admin_view(self.approve_view),
                name="members_membershipapplication_approve",
            ),
            path(
                "<path:object_id>/reject/",
                self.admin_site.admin_view(self.reject_view),
                name="members_membershipapplication_reject",
            ),
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, template: str, **context: Any) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/members/membershipapplication/{template}",
            {**self.admin_site.each_context(request), "opts": self.opts, **context},
        )

    def _change_url(self, application: MembershipApplication) -> str:
        return reverse("admin:members_membershipapplication_change", args=[application.pk])

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what approval will do; POST: approve, then show the API key once."""
        if not self.has_change_permission(request):
            return HttpResponse(status=403)
        application = get_object_or_404(MembershipApplication, pk=object_id)
        if request.method == "POST":
            try:
                approval = application_approve(application=application, actor=admin_actor(request))
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
                return HttpResponseRedirect(self._change_url(application))
            response = self._page(
                request,
                "approved.html",
                title=f"{approval.member.slug} is a member",
                original=application,
                approval=approval,
            )
            # The secret is on the answer to the POST only, never cached or redirected.
            response["Cache-Control"] = "no-store"
            return response
        problem = None
        try:
            application_check_approvable(application)
        except DomainError as exc:
            problem = exc.detail
        kid = None
        if problem is None:
            kid = jws.jwk_thumbprint(jws.load_public_key(application.public_key))
        return self._page(
            request,
            "approve.html",
            title=f"Approve {application.organisation_name}",
            original=application,
            problem=problem,
            kid=kid,
            scopes=ALL_SCOPES,
            active_members=Member.objects.filter(status=Member.Status.ACTIVE).count(),
        )

    def reject_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_change_permission(request):
            return HttpResponse(status=403)
        application = get_object_or_404(MembershipApplication, pk=object_id)
        form = RejectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                application_reject(
                    application=application,
                    notes=form.cleaned_data["notes"],
                    actor=admin_actor(request),
                )
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
            else:
                self.message_user(request, f"{application} rejected.", messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(application))
        return self._page(
            request,
            "reject.html",
            title=f"Reject {application.organisation_name}",
            original=application,
            form=form,
        )

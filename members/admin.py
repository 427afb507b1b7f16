"""The forum admins' console for members, keys, sharing groups and the audit log.

Every change goes through ``members.services`` with the actor ``admin:<username>``, so an
admin action is audited and reaches the change feed exactly like the same command
would. Nothing here edits a model directly; what no service changes is read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from forum.admin_helpers import admin_actor, confirm_then, run_each, staff_action
from forum.errors import DomainError

from . import services
from .checkpoints import audit_checkpoint_genuine
from .models import ApiKey, AuditCheckpoint, AuditEntry, Member, SharingGroup, SigningKey
from .selectors_admin import member_impact, member_overview

# -- members -------------------------------------------------------------------------------


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
            extra_context = {**(extra_context or {}), **member_overview(member=member)}
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


# -- API keys ------------------------------------------------------------------------------


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=services.ALL_SCOPES,
    )

    class Meta:
        model = ApiKey
        fields = ["member", "name", "scopes", "expires_at"]

    def clean_expires_at(self) -> datetime | None:
        expires_at: datetime | None = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at


_API_KEY_FIELDS = (
    "member",
    "name",
    "prefix",
    "scopes",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys: issued here with the secret shown once; never edited, only revoked."""

    list_display = [
        "prefix",
        "member",
        "name",
        "scopes",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "member"]
    search_fields = ["prefix", "name", "member__slug"]
    list_select_related = ["member"]
    # The digest is never shown: it is not secret by itself, but nobody needs it.
    fields = _API_KEY_FIELDS
    readonly_fields = _API_KEY_FIELDS
    actions = ["revoke"]

    def get_form(
        self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        return ("member", "name", "scopes", "expires_at") if obj is None else _API_KEY_FIELDS

    def get_readonly_fields(
        self, request: HttpRequest, obj: ApiKey | None = None
    ) -> tuple[str, ...]:
        return () if obj is None else _API_KEY_FIELDS

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: the audit log keeps referring to the prefix

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        key, secret = services.api_key_issue(
            member=obj.member,
            scopes=form.cleaned_data["scopes"],
            name=obj.name,
            expires_at=obj.expires_at,
            actor=admin_actor(request),
        )
        obj.pk, obj.prefix, obj.scopes, obj.created_at = (
            key.pk,
            key.prefix,
            key.scopes,
            key.created_at,
        )
        # Per request, not on the admin (one instance serves every thread).
        request.cordiale_issued_secret = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Show the secret on the page that answers the POST itself, not after a redirect:
        a message carried across a redirect would sit in the session or a cookie."""
        secret = getattr(request, "cordiale_issued_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        messages.warning(
            request,
            f"API key for {obj.member.slug}: {secret} — copy it now: it is stored only as a "
            "hash and will never be shown again.",
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"API key {obj.prefix} issued",
            "opts": self.model._meta,
            "original": obj,
        }
        response = TemplateResponse(request, "admin/members/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @staff_action(permissions=["change"], description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = admin_actor(request)
        run_each(
            self,
            request,
            queryset.select_related("member"),
            lambda key: services.api_key_revoke(api_key=key, actor=actor),
            "Revoked",
        )


# -- signing keys --------------------------------------------------------------------------


class SigningKeyCreateForm(forms.ModelForm):
    public_key = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 70}),
        help_text="The member's Ed25519 public key: a PEM block (-----BEGIN PUBLIC KEY-----) "
        "or the 43-character base64url JWK x. The kid is computed from it (RFC 7638).",
    )

    class Meta:
        model = SigningKey
        fields = ["member"]

    def clean_public_key(self) -> str:
        text: str = self.cleaned_data["public_key"]
        try:
            services.signing_key_check_registrable(public_key=text)
        except DomainError as exc:
            reason = exc.detail
            if exc.code == "invalid_key":
                reason = f"Not an Ed25519 public key: {reason}"
            raise forms.ValidationError(reason) from exc
        return text


class RevokeKeyForm(forms.Form):
    compromised_since = forms.DateTimeField(
        required=False,
        help_text="Optional (UTC, YYYY-MM-DD HH:MM:SS). Statements the forum received with "
        "these keys at or after this time are withdrawn from every member, whatever time "
        "they claim to be signed at. Leave empty to revoke from now on only.",
    )


_SIGNING_KEY_FIELDS = (
    "member",
    "kid",
    "x",
    "status",
    "created_at",
    "retired_at",
    "revoked_at",
    "compromised_since",
)


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """Signing keys: registered here (kid computed), then only retired or revoked."""

    list_display = [
        "kid",
        "member",
        "status",
        "created_at",
        "retired_at",
        "revoked_at",
        "compromised_since",
    ]
    list_filter = ["status"]
    search_fields = ["kid", "x", "member__slug"]
    list_select_related = ["member"]
    fields = _SIGNING_KEY_FIELDS
    readonly_fields = _SIGNING_KEY_FIELDS
    actions = ["retire", "revoke"]

    def get_form(
        self,
        request: HttpRequest,
        obj: SigningKey | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> Any:
        if obj is None:
            kwargs["form"] = SigningKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: SigningKey | None = None) -> tuple[str, ...]:
        return ("member", "public_key") if obj is None else _SIGNING_KEY_FIELDS

    def get_readonly_fields(
        self, request: HttpRequest, obj: SigningKey | None = None
    ) -> tuple[str, ...]:
        return () if obj is None else _SIGNING_KEY_FIELDS

    def has_change_permission(self, request: HttpRequest, obj: SigningKey | None = None) -> bool:
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: SigningKey | None = None) -> bool:
        return False  # recipients must still verify what the key signed

    def save_model(self, request: HttpRequest, obj: SigningKey, form: Any, change: bool) -> None:
        key = services.signing_key_register(
            member=obj.member,
            public_key=form.cleaned_data["public_key"],
            actor=admin_actor(request),
        )
        obj.pk, obj.kid, obj.x, obj.status, obj.created_at = (
            key.pk,
            key.kid,
            key.x,
            key.status,
            key.created_at,
        )

    @staff_action(
        permissions=["change"],
        description="Retire selected keys (no new statements; old ones stay valid)",
    )
    def retire(self, request: HttpRequest, queryset: QuerySet[SigningKey]) -> None:
        actor = admin_actor(request)
        run_each(
            self,
            request,
            queryset,
            lambda key: services.signing_key_retire(key=key, actor=actor),
            "Retired",
        )

    @staff_action(permissions=["change"], description="Revoke selected keys…")
    def revoke(
        self, request: HttpRequest, queryset: QuerySet[SigningKey]
    ) -> TemplateResponse | None:
        actor = admin_actor(request)

        def apply(key: SigningKey, data: dict[str, Any]) -> None:
            services.signing_key_revoke(
                key=key, compromised_since=data.get("compromised_since"), actor=actor
            )

        return confirm_then(
            self,
            request,
            queryset,
            title="Revoke signing keys",
            consequences=[
                "The keys sign nothing new: statements signed with them are rejected.",
                "With a compromise time, every statement received with them at or after it "
                "(whatever its signed iat) is withdrawn, and other members receive deletions.",
                "Revocation is final and published in the JWKS.",
            ],
            apply=apply,
            form_class=RevokeKeyForm,
        )


# -- sharing groups ------------------------------------------------------------------------


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


# -- audit log -----------------------------------------------------------------------------


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log, read-only: entries are written by the services, never by hand."""

    list_display = ["id", "created_at", "actor", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor", "action", "object_id"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(admin.ModelAdmin):
    """Signed heads of the audit log (members/checkpoints.py), read-only: the forum key
    signs them, periodically or with ``manage.py audit_checkpoint``."""

    list_display = ["head_id", "head_hash", "entries", "created_at", "genuine"]
    readonly_fields = ["head_id", "head_hash", "entries", "created_at", "jws"]
    date_hierarchy = "created_at"

    @admin.display(boolean=True, description="Signature verifies")
    def genuine(self, obj: AuditCheckpoint) -> bool:
        return audit_checkpoint_genuine(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: AuditCheckpoint | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: AuditCheckpoint | None = None
    ) -> bool:
        return False


from . import admin_applications, admin_staff  # noqa: E402, F401  (register their admins)

"""API keys and signing keys in the admin: issued or registered here, then only
approved (a member's pending key), revoked or retired, each through its audited service.

An API key's secret is shown once, on the answer to the POST that issued it. A signing
key's kid is computed from the public key (RFC 7638); revoking one may name the time
from which it is compromised.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from forum.admin_helpers import AddOnlyAdmin, admin_actor, confirm_then, run_each, staff_action
from forum.errors import DomainError

from .. import services
from ..models import ApiKey, SigningKey


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
class ApiKeyAdmin(AddOnlyAdmin):
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
    add_form = ApiKeyCreateForm
    add_fields = ("member", "name", "scopes", "expires_at")
    actions = ["revoke"]

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
class SigningKeyAdmin(AddOnlyAdmin):
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
    add_form = SigningKeyCreateForm
    add_fields = ("member", "public_key")
    actions = ["approve", "retire", "revoke"]

    def has_delete_permission(self, request: HttpRequest, obj: SigningKey | None = None) -> bool:
        return False  # recipients must still verify what the key signed

    @staff_action(permissions=["change"], description="Approve selected pending keys…")
    def approve(
        self, request: HttpRequest, queryset: QuerySet[SigningKey]
    ) -> TemplateResponse | None:
        actor = admin_actor(request)

        def apply(key: SigningKey, data: dict[str, Any]) -> None:
            services.signing_key_approve(key=key, actor=actor)

        return confirm_then(
            self,
            request,
            queryset.select_related("member"),
            title="Approve signing keys",
            consequences=[
                "Before approving, ask the member for the key's kid through a channel you "
                "trust (a call, a signed e-mail), not through the API: each key below is shown "
                "as member:kid, and the kid is the key's RFC 7638 thumbprint, so the same kid "
                "means the same key.",
                "An approved key is active at once: statements signed with it are accepted "
                "and it is published in the JWKS.",
            ],
            apply=apply,
        )

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

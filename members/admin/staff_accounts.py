"""Staff users, groups and TOTP devices in the admin, each change audited.

Django's own admin forms edit these (their validation is Django's); this layer only
records, in the same transaction as the change, what ``members.staff`` keeps of an
account: a superuser grant, a group or permission change, a second factor added for
someone, a new password, a deletion. Imported by ``members.admin`` after Django's and
django-otp's admins have registered the models, which it replaces.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_totp import admin as otp_totp_admin
from django_otp.plugins.otp_totp.models import TOTPDevice

from forum.admin_helpers import admin_actor

from ..staff import staff_account_record, staff_account_state

User = get_user_model()


def _states_before(request: HttpRequest) -> dict[tuple[str, Any], dict[str, Any]]:
    # Per request, not on the admin (one instance serves every thread).
    states: dict[tuple[str, Any], dict[str, Any]] | None = getattr(
        request, "cordiale_states_before", None
    )
    if states is None:
        states = {}
        request.cordiale_states_before = states  # type: ignore[attr-defined]
    return states


class AuditedAccountAdmin(admin.ModelAdmin):
    """Audits additions, changes and deletions through ``members.staff``.

    The state before a change is read when the admin loads the object (change form,
    password form), before the submitted form touches it; Django then logs the change
    after saving the object and its relations, which is when the state after is read.
    """

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            kind, _, state = staff_account_state(obj=obj)
            _states_before(request)[(kind, obj.pk)] = state
        return obj

    def _record(
        self, request: HttpRequest, obj: Model, change: str, before: dict[str, Any] | None
    ) -> None:
        kind, object_id, state = staff_account_state(obj=obj)
        staff_account_record(
            actor=admin_actor(request),
            kind=kind,
            object_id=object_id,
            change=change,
            before=before,
            after=None if change == "deleted" else state,
        )

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        self._record(request, obj, "created", None)
        return entry

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        kind, _, _ = staff_account_state(obj=obj)
        before = _states_before(request).get((kind, obj.pk))
        if before is not None:
            self._record(request, obj, "changed", before)
        return entry

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        with transaction.atomic():
            _, _, before = staff_account_state(obj=obj)
            self._record(request, obj, "deleted", before)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # "Delete selected" runs outside the change form's transaction: open our own, so
        # no account disappears without its entry.
        with transaction.atomic():
            for obj in queryset:
                _, _, before = staff_account_state(obj=obj)
                self._record(request, obj, "deleted", before)
            super().delete_queryset(request, queryset)


for _model in (User, Group, TOTPDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(User)
class StaffUserAdmin(AuditedAccountAdmin, UserAdmin):
    pass


@admin.register(Group)
class StaffGroupAdmin(AuditedAccountAdmin, GroupAdmin):
    pass


@admin.register(TOTPDevice)
class StaffTOTPDeviceAdmin(AuditedAccountAdmin, otp_totp_admin.TOTPDeviceAdmin):
    pass

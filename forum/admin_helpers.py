"""What every app's admin shares: the actor, checked actions, service errors shown.

- ``admin_actor``: who an admin change is audited as, ``admin:<username>``.
- ``staff_action``: an action that re-checks its permissions where it is applied.
- ``confirm_then`` / ``run_each``: apply an action to each selected object through its
  service, showing each ``DomainError`` as a message instead of failing the batch.
- ``ReadOnlyAdmin``: a model shown, never added, changed or deleted here.
- ``AddOnlyAdmin``: a model added here (a key, an incident), then only acted upon.
- ``service_errors``: admin forms check input shape only; the rules are the
  services'. A form that needs a rule before saving calls the service's own check and
  shows the ``DomainError`` it raises as a form error, never a 500.

No app is imported here: the apps' admins import this module, not the other way round.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from forum.actors import actor_for_user
from forum.errors import DomainError


def admin_actor(request: HttpRequest) -> str:
    return actor_for_user(request.user)


_Action = TypeVar("_Action", bound=Callable[..., Any])


def staff_action(*, permissions: Sequence[str], description: str) -> Callable[[_Action], _Action]:
    """An admin action that needs ``has_<permission>_permission`` for each permission.

    Django offers an action only to users with its ``allowed_permissions``; the wrapper
    checks them again where the action is applied, so a path that skips the offer (a
    crafted POST, a direct call) still changes nothing without them.
    """

    def decorate(func: _Action) -> _Action:
        @functools.wraps(func)
        def checked(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: Any) -> Any:
            for permission in permissions:
                if not getattr(modeladmin, f"has_{permission}_permission")(request):
                    raise PermissionDenied(f"This action needs the {permission} permission.")
            return func(modeladmin, request, queryset)

        marked = admin.action(permissions=list(permissions), description=description)(checked)
        return cast(_Action, marked)

    return decorate


def confirm_then(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    title: str,
    consequences: Sequence[str],
    apply: Callable[[Any, dict[str, Any]], None],
    form_class: type[forms.Form] | None = None,
) -> TemplateResponse | None:
    """Show what an action will do and run ``apply`` on each object once confirmed.

    The confirmation page (the template ``admin/members/confirm_action.html``) posts the
    same action back with ``confirm=yes``, like Django's own "delete selected" action.
    """
    form = form_class(request.POST if "confirm" in request.POST else None) if form_class else None
    if "confirm" in request.POST and (form is None or form.is_valid()):
        data = form.cleaned_data if form is not None else {}
        done = _apply_each(modeladmin, request, queryset, lambda obj: apply(obj, data))
        if done:
            modeladmin.message_user(request, f"{title}: done for {done}.", messages.SUCCESS)
        return None
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "objects": list(queryset),
        "consequences": consequences,
        "form": form,
        "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/members/confirm_action.html", context)


def run_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    apply: Callable[[Any], object],
    done_message: str,
) -> None:
    done = _apply_each(modeladmin, request, queryset, apply)
    if done:
        modeladmin.message_user(request, f"{done_message}: {done}.", messages.SUCCESS)


def _apply_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    apply: Callable[[Any], object],
) -> int:
    """Run ``apply`` on each object; a service's refusal is that object's error message,
    and the others still go ahead. Returns how many succeeded."""
    done = 0
    for obj in queryset:
        try:
            apply(obj)
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.detail}", messages.ERROR)
        else:
            done += 1
    return done


class ReadOnlyAdmin(admin.ModelAdmin):
    """A model shown to whoever may view it, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@contextmanager
def service_errors(field: str | None = None) -> Iterator[None]:
    """Raise a ``DomainError`` from the block as the form's ``ValidationError``, on
    ``field`` when raised from ``clean()`` (from ``clean_<field>()``: leave it out)."""
    try:
        yield
    except DomainError as exc:
        raise forms.ValidationError({field: exc.detail} if field else exc.detail) from exc


class AddOnlyAdmin(admin.ModelAdmin):
    """A model added here with ``add_form`` (its ``add_fields``), then never edited: its
    page shows its ``readonly_fields``, and only the admin's actions change it."""

    add_form: type[forms.ModelForm]
    add_fields: tuple[str, ...]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.add_fields if obj is None else tuple(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if obj is None else tuple(self.readonly_fields)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request)

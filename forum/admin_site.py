"""The forum admins' console: two factors unless ``DJANGO_DEBUG``, and the pages apps add.

Staff sign in with their password and a TOTP code (django-otp); a session without a
verified device is treated as not staff. A wrong code counts as a failed sign-in, so
django-axes throttles code guessing exactly like password guessing, and the audit log
records it. In debug mode (a laptop) the password alone is enough.

No app is imported here: the apps' admins register their models and their pages (the
transparency report, ``members.admin.reports``) with the site when autodiscover loads
them. The start page's template, ``admin/cordiale/index.html``, lists those reports; it
ships with them in ``members/templates``, since ``forum`` is not an installed app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


def admin_otp_required() -> bool:
    return not settings.DEBUG


class CordialeOTPLoginForm(OTPAdminAuthenticationForm):
    """The OTP admin login form; a wrong or missing code is a failed sign-in.

    A user with a single authenticator needs not pick it from a list: password and
    code go in one step. With several devices the form asks which one, as django-otp's
    own form does.
    """

    def _chosen_device(self, user: Any) -> Any:
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device

    def clean_otp(self, user: Any) -> None:
        try:
            super().clean_otp(user)
        except forms.ValidationError:
            if user is not None and self.cleaned_data.get("otp_token"):
                user_login_failed.send(
                    sender=__name__,
                    credentials={"username": user.get_username()},
                    request=self.request,
                    reason="otp",
                )
            raise


class CordialeAdminSite(OTPAdminSite):
    site_header = "Cordiale forum administration"
    site_title = "Cordiale admin"
    index_title = "Forum administration"
    index_template = "admin/cordiale/index.html"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self._views: list[URLPattern] = []

    @property
    def login_form(self) -> type[AdminAuthenticationForm]:
        return CordialeOTPLoginForm if admin_otp_required() else AdminAuthenticationForm

    @property
    def login_template(self) -> str | None:
        return "otp/admin111/login.html" if admin_otp_required() else None

    def has_permission(self, request: HttpRequest) -> bool:
        if admin_otp_required():
            return super().has_permission(request)
        return AdminSite.has_permission(self, request)

    def register_view(
        self, route: str, view: Callable[[HttpRequest], HttpResponse], *, name: str
    ) -> None:
        """Serve ``view`` at ``route`` under the console, behind its sign-in, as
        ``admin:<name>``: how an app adds a page (a report) without the site knowing it."""
        self._views.append(path(route, self.admin_view(view), name=name))

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [*self._views, *super().get_urls()]

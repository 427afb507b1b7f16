"""The forum admins' console: two factors unless ``DJANGO_DEBUG``, and the reports.

Staff sign in with their password and a TOTP code (django-otp); a session without a
verified device is treated as not staff. A wrong code counts as a failed sign-in, so
django-axes throttles code guessing exactly like password guessing, and the audit log
records it. In debug mode (a laptop) the password alone is enough.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils import timezone
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


class ReportPeriodForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    format = forms.ChoiceField(
        choices=[("page", "Show here"), ("json", "JSON"), ("csv", "CSV"), ("html", "HTML page")],
        initial="page",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise forms.ValidationError("The period ends before it starts.")
        return data


class CordialeAdminSite(OTPAdminSite):
    site_header = "Cordiale forum administration"
    site_title = "Cordiale admin"
    index_title = "Forum administration"
    index_template = "admin/cordiale/index.html"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

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

    def get_urls(self) -> list[URLPattern | URLResolver]:
        extra = [
            path(
                "reports/transparency/",
                self.admin_view(self.transparency_view),
                name="transparency_report",
            )
        ]
        return extra + super().get_urls()

    def transparency_view(self, request: HttpRequest) -> HttpResponse:
        """The transparency report for a period, shown here or downloaded."""
        import json

        from exchange.report_render import report_csv, report_html
        from exchange.reports import transparency_report

        today = timezone.now().date()
        initial = {"start": date(today.year, 1, 1), "end": today, "format": "page"}
        form = ReportPeriodForm(request.GET or None, initial=initial)
        if request.GET and form.is_valid():
            start, end, fmt = (form.cleaned_data[k] for k in ("start", "end", "format"))
        else:
            start, end, fmt = initial["start"], initial["end"], "page"
        report = transparency_report(start=start, end=end)
        name = f"cordiale-transparency-{start.isoformat()}-{end.isoformat()}"
        if fmt in ("json", "csv", "html"):
            body, content_type = {
                "json": (json.dumps(report, indent=2, sort_keys=True), "application/json"),
                "csv": (report_csv(report), "text/csv"),
                "html": (report_html(report), "text/html"),
            }[fmt]
            response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
            return response
        context = {
            **self.each_context(request),
            "title": "Transparency report",
            "form": form,
            "report_html": report_html(report, standalone=False),
        }
        return TemplateResponse(request, "admin/cordiale/transparency.html", context)

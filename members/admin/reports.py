"""Reports in the admin: the transparency report for a period, shown on a page of the
console or downloaded as JSON, CSV or a standalone HTML page.

The figures are ``exchange.reports``'; this module adds the page to the console's site
(``admin:transparency_report``), which links to it from its start page.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from exchange.report_render import report_csv, report_html
from exchange.reports import transparency_report
from forum.admin_site import CordialeAdminSite


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


def transparency_view(request: HttpRequest) -> HttpResponse:
    """The transparency report for a period, shown here or downloaded."""
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
        **admin.site.each_context(request),
        "title": "Transparency report",
        "form": form,
        "report_html": report_html(report, standalone=False),
    }
    return TemplateResponse(request, "admin/cordiale/transparency.html", context)


cast(CordialeAdminSite, admin.site).register_view(
    "reports/transparency/", transparency_view, name="transparency_report"
)

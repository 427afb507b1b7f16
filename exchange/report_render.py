"""The transparency report as CSV and as HTML with server-rendered SVG bar charts.

The charts are plain SVG in the page (no script, no external asset), in greys that
survive black-and-white printing, each with a text table beside it for screen readers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

_SECTIONS = ("by_signal_type", "by_label", "by_member", "by_month")
_KEYS = {
    "by_signal_type": "signal_type",
    "by_label": "label",
    "by_member": "member",
    "by_month": "month",
}


def _csv_rows(report: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    yield ("period", "", "from", report["period"]["from"])
    yield ("period", "", "to", report["period"]["to"])
    for metric, value in report["totals"].items():
        yield ("totals", "", metric, value)
    for section in _SECTIONS:
        for row in report[section]:
            key = _KEYS[section]
            for metric, value in row.items():
                if metric != key:
                    yield (section, str(row[key]), metric, value)
    for reason, value in report["withdrawals"].items():
        yield ("withdrawals", reason, "statements", value)
    for part in ("opinions", "membership", "webhooks", "audit_checkpoint", "benign_list"):
        for metric, value in (report[part] or {}).items():
            yield (part, "", metric, "" if value is None else value)
    yield from _sightings_rows(report["sightings"])
    yield from _dispute_csv_rows(report.get("disputes"))


def _sightings_rows(sightings: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    for metric, value in sightings.items():
        if not isinstance(value, list):
            yield ("sightings", "", metric, "" if value is None else value)
    for section, key in (("by_signal_type", "signal_type"), ("by_label", "label")):
        for row in sightings[section]:
            for metric, value in row.items():
                if metric != key:
                    yield (f"sightings_{section}", str(row[key]), metric, value)


def _dispute_csv_rows(disputes: dict[str, Any] | None) -> Iterator[tuple[str, str, str, Any]]:
    """``disputes`` figures, then ``disputes_by_grounds`` / ``_by_label`` / ``_by_member``
    rows keyed by the grounds, label or member."""
    if not disputes:
        return
    for metric, value in disputes.items():
        if not isinstance(value, list):
            yield ("disputes", "", metric, "" if value is None else value)
    for part, key in (("by_grounds", "grounds"), ("by_label", "label"), ("by_member", "member")):
        for row in disputes[part]:
            for metric, value in row.items():
                if metric != key:
                    yield (f"disputes_{part}", str(row[key]), metric, value)


def report_csv(report: dict[str, Any]) -> str:
    """One figure per row: ``section,key,metric,value`` (key empty for totals)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "metric", "value"])
    writer.writerows(_csv_rows(report))
    return out.getvalue()


BAR_HEIGHT = 18
GAP = 6
LABEL_WIDTH = 170
BAR_WIDTH = 380
VALUE_WIDTH = 70


def svg_bar_chart(rows: list[tuple[str, int]], *, title: str) -> SafeString:
    """A horizontal bar chart, one bar per (label, value), scaled to the largest value."""
    if not rows:
        return format_html('<p class="empty">No data for {}.</p>', title)
    top = max(value for _, value in rows) or 1
    height = len(rows) * (BAR_HEIGHT + GAP) + GAP
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    bars = format_html_join(
        "",
        '<g transform="translate(0,{})"><text x="{}" y="{}" text-anchor="end">{}</text>'
        '<rect x="{}" y="0" width="{}" height="{}" fill="#555" stroke="#000" '
        'stroke-width="0.5"/><text x="{}" y="{}">{}</text></g>',
        (
            (
                GAP + i * (BAR_HEIGHT + GAP),
                LABEL_WIDTH - 8,
                BAR_HEIGHT - 5,
                label,
                LABEL_WIDTH,
                max(1, round(BAR_WIDTH * value / top)) if value else 0,
                BAR_HEIGHT,
                LABEL_WIDTH + round(BAR_WIDTH * value / top) + 6,
                BAR_HEIGHT - 5,
                value,
            )
            for i, (label, value) in enumerate(rows)
        ),
    )
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg" '
        'viewBox="0 0 {} {}" width="{}" height="{}" font-family="sans-serif" font-size="12">'
        "<title>{}</title>{}</svg>",
        title,
        width,
        height,
        width,
        height,
        title,
        bars,
    )


def report_charts(report: dict[str, Any]) -> dict[str, SafeString]:
    opinions = report["opinions"]
    return {
        "by_month": svg_bar_chart(
            [(r["month"], r["statements"]) for r in report["by_month"]],
            title="Statements by month",
        ),
        "by_signal_type": svg_bar_chart(
            [(r["signal_type"], r["statements"]) for r in report["by_signal_type"]],
            title="Statements by signal type",
        ),
        "by_label": svg_bar_chart(
            [(r["label"], r["assertions"]) for r in report["by_label"]],
            title="Assertions by label",
        ),
        "by_member": svg_bar_chart(
            [(r["member"], r["statements"]) for r in report["by_member"]],
            title="Statements by member",
        ),
        "opinions": svg_bar_chart(
            [(c, opinions[c]) for c in ("positive", "negative", "investigation")],
            title="Opinions by category",
        ),
        "actions_by_label": svg_bar_chart(
            [(r["label"], r["actioned"]) for r in report["sightings"]["by_label"]],
            title="Actions reported by label",
        ),
    }


def report_html(report: dict[str, Any], *, standalone: bool = True) -> str:
    """The report as an HTML page (``standalone``) or as a fragment for the admin."""
    context = {
        "report": report,
        "charts": report_charts(report),
        "standalone": standalone,
        "styles": mark_safe(_STYLES),  # noqa: S308 - a constant of this module
        "membership_rows": [
            (name.replace("_", " ").capitalize(), n) for name, n in report["membership"].items()
        ],
        "dispute_tables": _dispute_tables(report.get("disputes")),
    }
    return render_to_string("exchange/transparency_report.html", context)


def _dispute_tables(disputes: dict[str, Any] | None) -> list[tuple[str, list[Any], str]]:
    if not disputes:
        return []
    return [
        (title, [{**row, "name": row[key]} for row in disputes[part]], key)
        for title, part, key in (
            ("grounds", "by_grounds", "grounds"),
            ("label", "by_label", "label"),
            ("member", "by_member", "member"),
        )
    ]


_STYLES = """
.cordiale-report { font-family: sans-serif; color: #000; max-width: 960px; }
.cordiale-report table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
.cordiale-report th, .cordiale-report td { border: 1px solid #999; padding: 2px 8px;
  text-align: right; }
.cordiale-report th:first-child, .cordiale-report td:first-child { text-align: left; }
.cordiale-report section { break-inside: avoid; page-break-inside: avoid; }
.cordiale-report svg.chart { max-width: 100%; height: auto; }
@media print {
  #header, #nav-sidebar, .breadcrumbs, #footer, .no-print { display: none !important; }
  .cordiale-report { max-width: none; }
  .cordiale-report h2 { break-after: avoid; page-break-after: avoid; }
}
"""

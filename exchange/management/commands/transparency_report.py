import argparse
import json
from datetime import date
from typing import Any

from django.core.management.base import CommandParser

from exchange.report_render import report_csv, report_html
from exchange.reports import transparency_report
from members.management.commands._base import CommandFailure, ToolCommand


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        # An argument type's error: argparse reports it as a usage error.
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD).") from None


class Command(ToolCommand):
    help = (
        "The transparency report for whole UTC days FROM to TO (both included): JSON (one "
        "object on the last line), CSV (section,key,metric,value) or a printable HTML page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, type=_date)
        parser.add_argument("--to", dest="end", required=True, type=_date)
        parser.add_argument("--format", choices=["json", "csv", "html"], default="json")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["end"] < options["start"]:
            raise CommandFailure("--to is before --from.", code="invalid_argument")
        report = transparency_report(start=options["start"], end=options["end"])
        if options["format"] == "csv":
            self.stdout.write(report_csv(report), ending="")
        elif options["format"] == "html":
            self.stdout.write(report_html(report))
        else:
            self.stdout.write(json.dumps(report, sort_keys=True))

import json
from datetime import datetime, time
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from members.audit import entry_document
from members.models import AuditEntry

from ._base import CommandFailure, ToolCommand


def parse_since(value: str) -> datetime:
    """An RFC 3339 date-time, or a date meaning its midnight UTC."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandFailure(
                f"--since {value!r} is neither a date nor a date-time.", code="invalid_argument"
            )
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_fixed_timezone(0))
    return moment


class Command(ToolCommand):
    help = (
        "Write the audit log as JSON lines (one entry each, with its hash fields) for "
        "external archiving; verify an archive with `verify_audit --jsonl FILE`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            help="Only entries created at or after this date or RFC 3339 date-time. The "
            "first line's prev is then the hash of the last entry before it.",
        )
        parser.add_argument(
            "--after-id", type=int, help="Only entries with a greater id (incremental archives)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        entries = AuditEntry.objects.order_by("id")
        if options["since"]:
            entries = entries.filter(created_at__gte=parse_since(options["since"]))
        if options["after_id"] is not None:
            entries = entries.filter(id__gt=options["after_id"])
        for entry in entries.iterator(chunk_size=2000):
            line = json.dumps(entry_document(entry), sort_keys=True, ensure_ascii=False)
            self.stdout.write(line)

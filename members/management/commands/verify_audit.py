import json
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from members.audit import GENESIS, AuditVerification, audit_verify, audit_verify_documents

from ._base import JsonCommand


class Command(JsonCommand):
    help = (
        "Check the audit log's hash chain; exit 1 and name the first bad entry if broken. "
        "With --jsonl, check an archive written by export_audit instead of the database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jsonl", help="An export_audit archive to check offline.")
        parser.add_argument(
            "--anchor",
            help="The prev hash the archive's first entry must carry (default: the genesis "
            "hash if its first entry has no predecessor, else trusted as written).",
        )

    def run(self, **options: Any) -> dict[str, Any]:
        result = self._verify_file(options) if options["jsonl"] else audit_verify()
        if result.ok:
            return {"ok": True, "entries": result.entries}
        self.emit(
            {
                "ok": False,
                "entries": result.entries,
                "bad_entry": result.bad_entry,
                "reason": result.reason,
            }
        )
        sys.exit(1)

    def _verify_file(self, options: dict[str, Any]) -> AuditVerification:
        try:
            with open(options["jsonl"], encoding="utf-8") as archive:
                documents = [json.loads(line) for line in archive if line.strip()]
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {options['jsonl']}: {exc}") from exc
        anchor = options["anchor"]
        if anchor is None and documents and documents[0].get("prev") == GENESIS:
            anchor = GENESIS
        return audit_verify_documents(documents, anchor=anchor)

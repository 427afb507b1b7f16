import argparse
import json
import sys
from typing import Any

from django.core.management.base import CommandParser

from members.audit import GENESIS, AuditVerification, audit_verify_documents
from members.checkpoints import audit_verify_heads

from ._base import CommandFailure, JsonCommand


class Command(JsonCommand):
    help = (
        "Check the audit log's hash chain and that it still holds the head of the latest "
        "signed checkpoint; exit 1 and name the first bad entry if not. With --jsonl, "
        "check an archive written by export_audit instead of the database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jsonl", help="An export_audit archive to check offline.")
        parser.add_argument(
            "--anchor",
            help="The prev hash the archive's first entry must carry (default: the genesis "
            "hash if its first entry has no predecessor, else trusted as written).",
        )

        parser.add_argument(
            "--expect-head",
            type=_head,
            metavar="ID:HASH",
            help="An entry the log must still hold with this hash (a head kept elsewhere, "
            "e.g. from GET /api/v1/audit/checkpoints): a cut or rewritten log fails.",
        )
        parser.add_argument(
            "--latest-checkpoint",
            action="store_true",
            help="Fail if there is no signed checkpoint to check against (by default the "
            "latest one is checked when there is one).",
        )

    def run(self, **options: Any) -> dict[str, Any]:
        if options["jsonl"]:
            result = self._verify_file(options)
        else:
            result = audit_verify_heads(
                expect_head=options["expect_head"],
                require_checkpoint=options["latest_checkpoint"],
            )
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
            raise CommandFailure(
                f"Cannot read {options['jsonl']}: {exc}", code="unreadable_archive"
            ) from exc
        anchor = options["anchor"]
        if anchor is None and documents and documents[0].get("prev") == GENESIS:
            anchor = GENESIS
        return audit_verify_documents(documents, anchor=anchor)


def _head(text: str) -> tuple[int, str]:
    entry_id, _, digest = text.partition(":")
    if not entry_id.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError("expected ID:HASH, e.g. 812:9f2c... (64 hex digits)")
    return int(entry_id), digest.lower()

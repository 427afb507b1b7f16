import sys
from typing import Any

from members.audit import audit_verify

from ._base import JsonCommand


class Command(JsonCommand):
    help = "Check the audit log's hash chain; exit 1 and name the first bad entry if broken."

    def run(self, **options: Any) -> dict[str, Any]:
        result = audit_verify()
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

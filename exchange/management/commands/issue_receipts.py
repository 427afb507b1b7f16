from typing import Any

from exchange.services.receipts import statements_issue_receipts
from members.management.commands._base import JsonCommand


class Command(JsonCommand):
    help = (
        "Sign the forum's receipt for every statement that has none (rows restored from "
        "a backup older than receipts); idempotent."
    )

    def run(self, **options: Any) -> dict[str, Any]:
        return {"receipts_issued": statements_issue_receipts()}

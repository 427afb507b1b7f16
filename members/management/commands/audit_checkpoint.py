from typing import Any

from members.checkpoints import audit_checkpoint_take, checkpoint_document

from ._base import JsonCommand


class Command(JsonCommand):
    help = (
        "Sign the audit chain's current head with the forum key now (celery beat does it "
        "periodically); prints the checkpoint. Refuses if the chain is broken."
    )

    def run(self, **options: Any) -> dict[str, Any]:
        checkpoint = audit_checkpoint_take()
        return {"checkpoint": None if checkpoint is None else checkpoint_document(checkpoint)}

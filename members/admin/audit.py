"""The audit log and its signed checkpoints in the admin, read-only: entries are written
by the services, checkpoints signed by the forum key, never either by hand.
"""

from __future__ import annotations

from django.contrib import admin

from forum.admin_helpers import ReadOnlyAdmin

from ..checkpoints import audit_checkpoint_genuine
from ..models import AuditCheckpoint, AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The audit log, read-only: entries are written by the services, never by hand."""

    list_display = ["id", "created_at", "actor", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor", "action", "object_id"]
    date_hierarchy = "created_at"


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    """Signed heads of the audit log (members/checkpoints.py), read-only: the forum key
    signs them, periodically or with ``manage.py audit_checkpoint``."""

    list_display = ["head_id", "head_hash", "entries", "created_at", "genuine"]
    readonly_fields = ["head_id", "head_hash", "entries", "created_at", "jws"]
    date_hierarchy = "created_at"

    @admin.display(boolean=True, description="Signature verifies")
    def genuine(self, obj: AuditCheckpoint) -> bool:
        return audit_checkpoint_genuine(obj)

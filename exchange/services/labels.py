"""Changes to the label taxonomy, audited like every other administrative change."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from exchange.models import Label
from members.audit import audit_record

_FIELDS = ("slug", "name", "kind", "description", "active")


def _state(label: Label) -> dict[str, Any]:
    return {f: getattr(label, f) for f in _FIELDS}


def label_save(*, label: Label, actor: str) -> Label:
    """Create or update a label. A label is deactivated, never deleted: statements that
    already carry its slug keep it, and new statements may no longer use it."""
    with transaction.atomic():
        before = None
        if label.pk is not None:
            before = _state(Label.objects.select_for_update().get(pk=label.pk))
        label.full_clean()
        label.save()
        after = _state(label)
        if before != after:
            audit_record(
                actor=actor,
                action="label.created" if before is None else "label.updated",
                object_type="label",
                object_id=label.slug,
                before=before,
                after=after,
            )
    return label

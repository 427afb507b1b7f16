"""Changes to the label taxonomy, audited like every other administrative change."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from exchange.models import Label
from forum.errors import DomainError
from members.audit import audit_record

_FIELDS = ("slug", "name", "kind", "description", "active")


def _state(label: Label) -> dict[str, Any]:
    return {f: getattr(label, f) for f in _FIELDS}


def label_check_kind(*, label: Label, kind: str) -> None:
    """A label never moves between ``benign`` and the TVEC kinds once it exists: the
    statements that carry it were signed as one or the other (``Statement.benign`` is
    fixed at ingest), and a recipient must read them as signed. Make a new label instead."""
    if label.pk is None:
        return
    was = Label.objects.filter(pk=label.pk).values_list("kind", flat=True).first()
    if was is not None and (was == Label.Kind.BENIGN) != (kind == Label.Kind.BENIGN):
        raise DomainError(
            f"Label {label.slug!r} is of kind {was!r}: a label cannot move between 'benign' "
            "and the TVEC kinds. Deactivate it and create a new label instead.",
            code="label_kind_fixed",
        )


def label_save(*, label: Label, actor: str) -> Label:
    """Create or update a label. A label is deactivated, never deleted: statements that
    already carry its slug keep it, and new statements may no longer use it."""
    with transaction.atomic():
        before = None
        if label.pk is not None:
            before = _state(Label.objects.select_for_update().get(pk=label.pk))
        label_check_kind(label=label, kind=label.kind)
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

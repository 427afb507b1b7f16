"""The default label taxonomy put back: transactional tests flush every table, the rows
the data migration seeded included."""

from __future__ import annotations


def default_labels_restore() -> None:
    """Create the labels of ``exchange.default_labels`` that are missing, as the data
    migrations do."""
    from exchange.default_labels import BENIGN_LABELS, LABELS
    from exchange.models import Label

    for slug, name, kind, description in [*LABELS, *BENIGN_LABELS]:
        Label.objects.get_or_create(
            slug=slug, defaults={"name": name, "kind": kind, "description": description}
        )

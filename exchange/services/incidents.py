"""Incident mode: declaring and ending an incident, both audited.

Declaring an incident creates an active label of kind ``incident`` (slug
``incident-<slug>``) that members may put in statements; while the incident lasts,
feed changes for signals whose live statements carry it are fanned out on the
``priority`` queue (see ``exchange.webhooks.delivery``), and every active member's webhook
endpoints receive an ``incident.declared`` event. Ending it deactivates the label for
new statements; statements that already carry it keep it.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from exchange.models import Incident, Label
from exchange.webhooks.delivery import webhooks_announce_incident
from forum.errors import ConflictError, DomainError
from members.audit import audit_record


def _state(incident: Incident) -> dict[str, Any]:
    return {
        "name": incident.name,
        "slug": incident.slug,
        "label": incident.label.slug,
        "description": incident.description,
        "declared_at": incident.declared_at,
        "declared_by": incident.declared_by,
        "ended_at": incident.ended_at,
    }


def incident_check_declarable(*, name: str, slug: str | None = None) -> str:
    """The slug an incident declared with this name and slug would get; raises the
    reason it cannot be declared (no usable slug, the incident or its label exists)."""
    slug = slugify(slug or name)[:55].strip("-")
    if not slug:
        raise DomainError("An incident needs a name made of letters or digits.")
    label_slug = f"incident-{slug}"
    if Incident.objects.filter(slug=slug).exists() or Label.objects.filter(slug=label_slug):
        raise ConflictError(f"An incident or label {slug!r} exists already.", code="conflict")
    return slug


def incident_declare(
    *, name: str, description: str, actor: str, slug: str | None = None
) -> Incident:
    """Declare an incident: its label becomes usable and members' webhooks are told."""
    slug = incident_check_declarable(name=name, slug=slug)
    label_slug = f"incident-{slug}"
    try:
        with transaction.atomic():
            label = Label.objects.create(
                slug=label_slug,
                name=name,
                kind=Label.Kind.INCIDENT,
                description=description,
                active=True,
            )
            incident = Incident.objects.create(
                name=name,
                slug=slug,
                description=description,
                declared_by=actor,
                label=label,
            )
            audit_record(
                actor=actor,
                action="incident.declared",
                object_type="incident",
                object_id=slug,
                after=_state(incident),
            )
            transaction.on_commit(lambda: _announce(incident.pk), robust=True)
    except IntegrityError as exc:  # a concurrent declaration took the slug
        raise ConflictError(f"An incident {slug!r} exists already.", code="conflict") from exc
    return incident


def incident_end(*, incident: Incident, actor: str) -> Incident:
    """End an incident: its label is refused in new statements; ending twice is a no-op."""
    with transaction.atomic():
        incident = Incident.objects.select_for_update().select_related("label").get(pk=incident.pk)
        if incident.ended_at is not None:
            return incident
        before = _state(incident)
        incident.ended_at = timezone.now()
        incident.save(update_fields=["ended_at"])
        Label.objects.filter(pk=incident.label_id).update(active=False)
        incident.label.active = False
        audit_record(
            actor=actor,
            action="incident.ended",
            object_type="incident",
            object_id=incident.slug,
            before=before,
            after=_state(incident),
        )
    return incident


def _announce(incident_id: int) -> None:

    webhooks_announce_incident(incident_id=incident_id)

"""Services for membership applications: submit, update, approve, reject.

Approval is the one way an applicant becomes a member through the admin: in one
transaction it creates the member (active), issues its first API key and registers its
signing key, each through its own audited service, and audits the decision itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from exchange.client import jws
from forum.errors import ConflictError, DomainError

from . import services
from .audit import audit_record
from .models import ApiKey, Member, MembershipApplication, SigningKey

# What an applicant states and a reviewer may edit before deciding.
APPLICATION_FIELDS = (
    "organisation_name",
    "slug",
    "website",
    "contact_name",
    "contact_email",
    "bans_terrorist_content",
    "publishes_transparency_report",
    "human_rights_commitment",
    "public_key",
    "reviewer_notes",
)


def _state(application: MembershipApplication) -> dict[str, Any]:
    return {f: getattr(application, f) for f in (*APPLICATION_FIELDS, "status")}


def application_submit(*, application: MembershipApplication, actor: str) -> MembershipApplication:
    """Record a new application (still pending)."""
    with transaction.atomic():
        application.status = MembershipApplication.Status.PENDING
        application.full_clean(exclude=["member"])
        application.save()
        audit_record(
            actor=actor,
            action="application.created",
            object_type="membership_application",
            object_id=str(application.pk),
            after=_state(application),
        )
    return application


def application_update(*, application: MembershipApplication, actor: str) -> MembershipApplication:
    """Save edits to a pending application (details, commitments, reviewer notes)."""
    with transaction.atomic():
        current = MembershipApplication.objects.select_for_update().get(pk=application.pk)
        if current.status != MembershipApplication.Status.PENDING:
            raise ConflictError(
                f"The application is {current.status}; it can no longer be edited.",
                code="invalid_transition",
            )
        before = _state(current)
        application.status = current.status
        application.full_clean(exclude=["member"])
        application.save()
        after = _state(application)
        if before != after:
            audit_record(
                actor=actor,
                action="application.updated",
                object_type="membership_application",
                object_id=str(application.pk),
                before=before,
                after=after,
            )
    return application


@dataclass(frozen=True)
class Approval:
    member: Member
    api_key: ApiKey
    secret: str  # shown once to the admin, never stored
    signing_key: SigningKey


def application_check_approvable(application: MembershipApplication) -> None:
    """Raise the reason an application cannot be approved now, if there is one."""
    if application.status != MembershipApplication.Status.PENDING:
        raise ConflictError(f"The application is {application.status}.", code="invalid_transition")
    if not application.commitments_met:
        raise DomainError(
            "The organisation has not made all three commitments (terms of service, "
            "transparency report, human rights).",
            code="commitments_missing",
        )
    application_check_public_key(application.public_key)
    application_check_slug(application.slug)


def application_check_public_key(public_key: str) -> None:
    """Raise if the applicant's public key is not a usable Ed25519 key."""
    try:
        jws.load_public_key(public_key)
    except (jws.InvalidKey, ValueError) as exc:
        raise DomainError(f"The public key is not usable: {exc}", code="invalid_key") from exc


def application_check_slug(slug: str) -> None:
    """Raise if a member has the slug the applicant asks for already."""
    if Member.objects.filter(slug=slug).exists():
        raise ConflictError(f"The slug {slug!r} is taken.", code="member_exists")


def application_approve(*, application: MembershipApplication, actor: str) -> Approval:
    """Approve: an active member with an all-scope API key and the applicant's key."""
    with transaction.atomic():
        application = MembershipApplication.objects.select_for_update().get(pk=application.pk)
        application_check_approvable(application)
        member = services.member_create(
            slug=application.slug,
            name=application.organisation_name,
            contact_email=application.contact_email,
            status=Member.Status.ACTIVE,
            actor=actor,
        )
        api_key, secret = services.api_key_issue(member=member, name="first key", actor=actor)
        signing_key = services.signing_key_register(
            member=member, public_key=application.public_key, actor=actor
        )
        before = _state(application)
        application.status = MembershipApplication.Status.APPROVED
        application.decided_at = timezone.now()
        application.decided_by = actor
        application.member = member
        application.save(update_fields=["status", "decided_at", "decided_by", "member"])
        audit_record(
            actor=actor,
            action="application.approved",
            object_type="membership_application",
            object_id=str(application.pk),
            before=before,
            after={
                "status": application.status,
                "member": member.slug,
                "api_key": api_key.prefix,
                "kid": signing_key.kid,
            },
        )
    return Approval(member=member, api_key=api_key, secret=secret, signing_key=signing_key)


def application_reject(
    *, application: MembershipApplication, notes: str = "", actor: str
) -> MembershipApplication:
    with transaction.atomic():
        application = MembershipApplication.objects.select_for_update().get(pk=application.pk)
        if application.status != MembershipApplication.Status.PENDING:
            raise ConflictError(
                f"The application is {application.status}.", code="invalid_transition"
            )
        before = _state(application)
        application.status = MembershipApplication.Status.REJECTED
        application.decided_at = timezone.now()
        application.decided_by = actor
        if notes:
            application.reviewer_notes = "\n\n".join(
                part for part in (application.reviewer_notes, notes) if part
            )
        application.save(update_fields=["status", "decided_at", "decided_by", "reviewer_notes"])
        audit_record(
            actor=actor,
            action="application.rejected",
            object_type="membership_application",
            object_id=str(application.pk),
            before=before,
            after={"status": application.status, "reviewer_notes": application.reviewer_notes},
        )
    return application

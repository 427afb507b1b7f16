"""Identity: members, their API keys and signing keys, sharing groups, and the audit log."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Member(models.Model):
    """An organisation of the forum. Only active members authenticate."""

    class Status(models.TextChoices):
        APPLICANT = "applicant"
        ACTIVE = "active"
        SUSPENDED = "suspended"
        EXPELLED = "expelled"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    contact_email = models.EmailField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.APPLICANT)
    created_at = models.DateTimeField(default=timezone.now)
    status_changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ApiKey(models.Model):
    """A bearer secret of a member. Only a public prefix and a SHA-256 digest are stored."""

    class Scope(models.TextChoices):
        READ = "read"
        SUBMIT = "submit"
        FEEDBACK = "feedback"
        MANAGE = "manage"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.member.slug}:{self.prefix}"


class SigningKey(models.Model):
    """An Ed25519 public key of a member, identified by its RFC 7638 thumbprint."""

    class Status(models.TextChoices):
        # Registered by the member without a proof: signs nothing until an admin approves.
        PENDING = "pending"
        ACTIVE = "active"
        RETIRED = "retired"
        REVOKED = "revoked"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="signing_keys")
    kid = models.CharField(max_length=64, unique=True)
    x = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    # Statements signed with an ``iat`` at or after this instant are treated as forged.
    compromised_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # The target of exchange statements' (signing_key, member) foreign key.
            models.UniqueConstraint(fields=["id", "member"], name="signingkey_id_member")
        ]

    def __str__(self) -> str:
        return f"{self.member.slug}:{self.kid}"


class SharingGroup(models.Model):
    """A named set of members; statements addressed to it are seen only by them."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(Member, through="GroupMembership", related_name="groups")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class GroupMembership(models.Model):
    group = models.ForeignKey(SharingGroup, on_delete=models.CASCADE)
    member = models.ForeignKey(Member, on_delete=models.CASCADE)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "member"], name="unique_group_member")
        ]


class AuditEntry(models.Model):
    """One security-relevant action. Append-only; each entry hashes its predecessor."""

    created_at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.object_type}:{self.object_id}"


class AuditCheckpoint(models.Model):
    """The audit chain's head at a time, signed with the forum's key
    (``members/checkpoints.py``): once published, the log cannot be cut below it or
    rewritten up to it unnoticed."""

    head_id = models.BigIntegerField(unique=True)
    head_hash = models.CharField(max_length=64)
    entries = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    jws = models.TextField()

    class Meta:
        ordering = ["-head_id"]

    def __str__(self) -> str:
        return f"#{self.head_id} {self.head_hash[:12]}"


class MembershipApplication(models.Model):
    """An organisation asking to join, with the commitments the forum asks of members.

    Approval (``members.applications.application_approve``) creates the member, its
    first API key and its signing key; the application then points at the member.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    organisation_name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, help_text="The member slug the organisation wants.")
    website = models.URLField(blank=True)
    contact_name = models.CharField(max_length=200)
    contact_email = models.EmailField()
    bans_terrorist_content = models.BooleanField(
        "terms of service ban terrorist content", default=False
    )
    publishes_transparency_report = models.BooleanField(default=False)
    human_rights_commitment = models.BooleanField(default=False)
    public_key = models.TextField(
        help_text="Ed25519 public key for signing statements: PEM or base64url x."
    )
    reviewer_notes = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    submitted_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True)
    member = models.OneToOneField(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="application"
    )

    class Meta:
        ordering = ["-submitted_at"]

    def __str__(self) -> str:
        return f"{self.organisation_name} ({self.slug})"

    @property
    def commitments_met(self) -> bool:
        return (
            self.bans_terrorist_content
            and self.publishes_transparency_report
            and self.human_rights_commitment
        )

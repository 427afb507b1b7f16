"""Disputes and the forum's decisions on them (imported by ``exchange.models``).

A dispute challenges one signal. It is open until forum staff decide it; a decision is
final once the forum has signed it (``jws`` set). An overturn may need the approval of
several distinct staff users (``CORDIALE_DISPUTE_OVERTURN_APPROVALS``): until then it is
a proposal, a decision row without ``jws``. See ``exchange/disputes/services.py``.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from members.models import Member

GROUNDS = ("not_tvec", "wrong_label", "benign_collision", "other")
DECISIONS = ("uphold", "overturn", "relabel")


class Dispute(models.Model):
    """A challenge of a signal by a member (``opener``), or by the forum itself when
    negative opinions reached the threshold (``opener`` NULL)."""

    class Grounds(models.TextChoices):
        NOT_TVEC = "not_tvec"
        WRONG_LABEL = "wrong_label"
        BENIGN_COLLISION = "benign_collision"
        OTHER = "other"

    class Status(models.TextChoices):
        OPEN = "open"
        DECIDED = "decided"

    signal = models.ForeignKey("exchange.Signal", on_delete=models.PROTECT, related_name="disputes")
    opener = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes_opened"
    )
    grounds = models.CharField(max_length=24, choices=Grounds.choices)
    reason = models.TextField(blank=True)
    proposed_labels = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "exchange"
        ordering = ["-opened_at", "-id"]
        permissions = [("decide_dispute", "Can decide disputes (uphold, overturn, relabel)")]
        constraints = [
            # One open dispute per signal: a second challenge joins the first.
            models.UniqueConstraint(
                fields=["signal"], condition=Q(status="open"), name="one_open_dispute_per_signal"
            )
        ]
        indexes = [models.Index(fields=["status", "opened_at"], name="dispute_status_opened")]

    def __str__(self) -> str:
        return f"dispute {self.pk} ({self.status})"


class DisputeParty(models.Model):
    """A member whose statement on the signal was disputed (live when the dispute opened)."""

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="parties")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")

    class Meta:
        app_label = "exchange"
        constraints = [
            models.UniqueConstraint(fields=["dispute", "member"], name="unique_dispute_party")
        ]


class DisputeResponse(models.Model):
    """A disputed member's answer, in its own words."""

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="responses")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "exchange"
        ordering = ["created_at", "id"]


class DisputeDecision(models.Model):
    """Staff's decision on a dispute: final once signed (``jws``), a proposal before.

    ``approvals`` lists the actors (``admin:<username>``, ``cli``) who approved it, the
    proposer first; ``superseded`` marks a proposal dropped because another decision
    became final first.
    """

    class Decision(models.TextChoices):
        UPHOLD = "uphold"
        OVERTURN = "overturn"
        RELABEL = "relabel"

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="decisions")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    labels = models.JSONField(default=list, blank=True)
    rationale = models.TextField()
    approvals = models.JSONField(default=list)
    superseded = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    jti = models.CharField(max_length=64, blank=True)
    jws = models.TextField(blank=True)

    class Meta:
        app_label = "exchange"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["dispute"], name="decision_dispute")]


class DisputeEvent(models.Model):
    """One webhook event (``dispute.opened``, ``dispute.decided``) owed to one endpoint:
    an outbox row, kept as the record; ``delivered_at`` is set once a 2xx answered,
    ``dropped`` once it may no longer be sent (the member lost sight of the signal).

    The body is built when it is sent, from the dispute's state then and only if the
    endpoint's member may still see the signal (``exchange/disputes/events.py``).
    """

    class Type(models.TextChoices):
        OPENED = "dispute.opened"
        DECIDED = "dispute.decided"

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="events")
    endpoint = models.ForeignKey(
        "exchange.WebhookEndpoint", on_delete=models.CASCADE, related_name="dispute_events"
    )
    type = models.CharField(max_length=24, choices=Type.choices)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    dropped = models.BooleanField(default=False)

    class Meta:
        app_label = "exchange"
        constraints = [
            models.UniqueConstraint(
                fields=["dispute", "endpoint", "type"], name="unique_dispute_event"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="dispute_event_pending",
                condition=Q(delivered_at__isnull=True, dropped=False),
            )
        ]

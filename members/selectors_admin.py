"""Reads for the admin console: what a lifecycle action would do, and a member's page."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from exchange.liveness import live_q
from exchange.models import (
    FORUM_AUDIENCE,
    CurrentStatement,
    Dispute,
    DisputeDecision,
    Opinion,
    Statement,
    WebhookEndpoint,
)

from .models import ApiKey, AuditEntry, GroupMembership, Member, SigningKey


def _webhook_endpoints(member: Member) -> QuerySet[Any]:

    return WebhookEndpoint.objects.filter(member=member)


@dataclass(frozen=True)
class MemberImpact:
    """What suspending or expelling the member would change, counted now."""

    api_keys: int
    signing_keys: int
    webhook_endpoints: int
    live_statements: int
    viewers: int


def member_impact(*, member: Member) -> MemberImpact:

    now = timezone.now()
    keys = ApiKey.objects.filter(member=member, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    live = CurrentStatement.objects.filter(member=member).filter(live_q(int(time.time())))
    audiences = set(live.values_list("audience", flat=True).distinct())
    others = Member.objects.filter(status=Member.Status.ACTIVE).exclude(pk=member.pk)
    if FORUM_AUDIENCE in audiences:
        viewers = others.count()
    else:
        viewers = (
            others.filter(
                pk__in=GroupMembership.objects.filter(group_id__in=audiences).values("member_id")
            )
            .distinct()
            .count()
        )
    endpoints = _webhook_endpoints(member)
    return MemberImpact(
        api_keys=keys.count(),
        signing_keys=SigningKey.objects.filter(member=member, status="active").count(),
        webhook_endpoints=endpoints.filter(active=True).count(),
        live_statements=live.count(),
        viewers=viewers,
    )


def member_overview(*, member: Member, limit: int = 20) -> dict[str, Any]:
    """Everything the member's admin page shows besides its own fields."""

    endpoints = _webhook_endpoints(member)
    api_keys = list(ApiKey.objects.filter(member=member).order_by("-created_at"))
    return {
        "impact": member_impact(member=member),
        "api_keys": api_keys,
        "signing_keys": list(SigningKey.objects.filter(member=member).order_by("-created_at")),
        "groups": list(member.groups.order_by("slug")),
        "webhooks": list(endpoints.order_by("-created_at")),
        "last_sync": max((k.last_used_at for k in api_keys if k.last_used_at), default=None),
        "statements": list(
            Statement.objects.filter(member=member)
            .select_related("signal")
            .order_by("-received_at")[:limit]
        ),
        "opinions": list(
            Opinion.objects.filter(member=member)
            .select_related("signal")
            .order_by("-updated_at")[:limit]
        ),
        "disputes": member_dispute_record(member=member, limit=limit),
        "audit": list(
            AuditEntry.objects.filter(
                Q(object_type="member", object_id=member.slug) | Q(after__member=member.slug)
            ).order_by("-id")[: limit * 2]
        ),
    }


def member_dispute_record(*, member: Member, limit: int = 20) -> dict[str, Any]:
    """The member's dispute record (issue #18): disputes it opened and disputes against
    its statements (it is a party), each with counts by outcome and the latest ones."""

    def record(disputes: QuerySet[Dispute]) -> dict[str, Any]:
        finals = dict(
            DisputeDecision.objects.filter(dispute__in=disputes)
            .exclude(jws="")
            .values_list("dispute_id", "decision")
        )
        outcomes = {d.value: 0 for d in DisputeDecision.Decision}
        for decision in finals.values():
            outcomes[decision] += 1
        latest = list(disputes.select_related("signal").order_by("-opened_at", "-id")[:limit])
        for dispute in latest:
            dispute.outcome = finals.get(dispute.pk, "")  # type: ignore[attr-defined]
        total = disputes.count()
        return {
            "total": total,
            "open": disputes.filter(status=Dispute.Status.OPEN).count(),
            "outcomes": outcomes,
            "overturned_share": round(outcomes["overturn"] / len(finals), 4) if finals else None,
            "latest": latest,
        }

    return {
        "opened": record(Dispute.objects.filter(opener=member)),
        "against": record(Dispute.objects.filter(parties__member=member).distinct()),
    }

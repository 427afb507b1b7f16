"""Documentation-only serializers: the dispute API's answers, for the OpenAPI schema.

The views render plain dicts (``exchange.disputes.selectors.dispute_view``); these say
what those hold, and the schemathesis run checks the answers against them.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .models import DECISIONS, GROUNDS

DISPUTE_STATUSES = ["open", "decided"]


class DisputeIn(serializers.Serializer[Any]):
    signal_type = serializers.CharField()
    value = serializers.CharField(help_text="In the canonical form of its type")
    grounds = serializers.CharField(help_text=f"One of `{'`, `'.join(GROUNDS)}`")
    reason = serializers.CharField(allow_blank=True, help_text="Why, in words (required)")
    proposed_labels = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="Label slugs"
    )


class DisputeResponseIn(serializers.Serializer[Any]):
    text = serializers.CharField(allow_blank=True, help_text="Your answer (required)")


class DisputeResponseOut(serializers.Serializer[Any]):
    member = serializers.CharField(help_text="The responding member's slug")
    text = serializers.CharField()
    created_at = serializers.CharField(help_text="RFC 3339, UTC")


class DisputeDecisionOut(serializers.Serializer[Any]):
    decision = serializers.ChoiceField(choices=list(DECISIONS))
    labels = serializers.ListField(child=serializers.CharField(), help_text="Relabel only")
    rationale = serializers.CharField()
    decided_at = serializers.CharField(help_text="RFC 3339, UTC")
    jws = serializers.CharField(help_text="The forum-signed decision (compact JWS)")


class DisputeOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=DISPUTE_STATUSES)
    signal_type = serializers.CharField()
    value = serializers.CharField()
    grounds = serializers.ChoiceField(choices=list(GROUNDS))
    reason = serializers.CharField(allow_blank=True)
    proposed_labels = serializers.ListField(child=serializers.CharField())
    opened_by = serializers.ChoiceField(
        choices=["member", "threshold"], help_text="A member (never named), or the threshold"
    )
    mine = serializers.BooleanField(help_text="You opened it")
    party = serializers.BooleanField(help_text="Your statement is disputed: you may respond")
    opened_at = serializers.CharField(help_text="RFC 3339, UTC")
    decided_at = serializers.CharField(allow_null=True)
    responses = DisputeResponseOut(many=True, help_text="Those of members whose statement you see")
    decision = DisputeDecisionOut(allow_null=True, help_text="Once decided")


class DisputeListOut(serializers.Serializer[Any]):
    disputes = DisputeOut(many=True, help_text="Newest first")
    next = serializers.IntegerField(
        allow_null=True, help_text="Pass as `before` for the next page; null on the last"
    )

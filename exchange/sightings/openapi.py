"""Documentation-only serializers of the sightings endpoints and the snapshot's
``sightings`` member, for the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from .models import Sighting
from .services import MAX_BATCH, MAX_COUNT

OUTCOMES = list(Sighting.Outcome.values)
STATUSES = ["accepted", "unchanged", "rejected"]
REJECTIONS = [
    "malformed",
    "unknown_signal_type",
    "invalid_value",
    "invalid_outcome",
    "invalid_count",
    "invalid_period",
    "period_overlap",
    "not_found",
]


class SightingIn(serializers.Serializer[Any]):
    signal_type = serializers.CharField()
    value = serializers.CharField(help_text="In the canonical form of its type")
    outcome = serializers.ChoiceField(
        choices=OUTCOMES, help_text="How the matches ended; each match under one outcome"
    )
    count = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    period_start = serializers.CharField(help_text="RFC 3339 timestamp, or a date (00:00 UTC)")
    period_end = serializers.CharField(
        help_text="Excluded; after period_start, at most 366 days later, not in the future"
    )
    named = serializers.BooleanField(
        required=False, default=False, help_text="Be named as a reporter of this signal"
    )


class SightingsIn(serializers.Serializer[Any]):
    sightings = SightingIn(many=True, help_text=f"1 to {MAX_BATCH:,} reports")


class SightingResultOut(serializers.Serializer[Any]):
    index = serializers.IntegerField(help_text="Position of the item in the request")
    status = serializers.ChoiceField(choices=STATUSES)
    signal_type = serializers.CharField(required=False, help_text="Unless rejected")
    value = serializers.CharField(required=False, help_text="Unless rejected")
    outcome = serializers.ChoiceField(choices=OUTCOMES, required=False, help_text="Unless rejected")
    code = serializers.ChoiceField(choices=REJECTIONS, required=False, help_text="If rejected")
    detail = serializers.CharField(required=False, help_text="If rejected, in words")


class SightingsOut(serializers.Serializer[Any]):
    results = SightingResultOut(many=True, help_text="One per item, in input order")
    accepted = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = serializers.IntegerField()


class SightingCountsOut(serializers.Serializer[Any]):
    matched = serializers.IntegerField()
    actioned = serializers.IntegerField()
    false_positive = serializers.IntegerField()


class SightingSummaryOut(SightingCountsOut):
    """Sums of the reports the caller may count (docs/api.md, Sightings)."""

    reporters = serializers.IntegerField(help_text="Members whose reports are counted")
    named = serializers.ListField(
        child=serializers.CharField(), help_text="Counted reporters that chose to be named"
    )
    mine = SightingCountsOut(allow_null=True, help_text="The caller's own totals, if any")


class OwnSightingOut(serializers.Serializer[Any]):
    outcome = serializers.ChoiceField(choices=OUTCOMES)
    count = serializers.IntegerField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    named = serializers.BooleanField()
    updated_at = serializers.DateTimeField()


class OwnSightingsOut(serializers.Serializer[Any]):
    signal_type = serializers.CharField()
    value = serializers.CharField()
    sightings = OwnSightingOut(many=True, help_text="Latest period first, at most 1,000")


SIGHTINGS_EXAMPLE = OpenApiExample(
    "A month of actions on one hash",
    value={
        "sightings": [
            {
                "signal_type": "pdq",
                "value": "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
                "outcome": "actioned",
                "count": 12,
                "period_start": "2026-11-01",
                "period_end": "2026-12-01",
            }
        ]
    },
    request_only=True,
)

"""Documentation-only serializers: the shapes of the exchange's JSON, for the OpenAPI
schema at ``/api/v1/schema/``.

The hot paths (submit, feed, lookup, match) build their JSON with orjson and never run
these; they exist so that the schema says what those endpoints answer, and the
schemathesis run (``tests/exchange/test_api_fuzz.py``) checks every answer against them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from .client.statement_format import MAX_BATCH
from .matching.selectors import MAX_QUERIES
from .models import Label
from .sightings.openapi import SightingSummaryOut

TLPS = ["clear", "green", "amber", "amber+strict", "red"]
CATEGORIES = ["positive", "negative", "investigation"]
SUBMIT_STATUSES = ["accepted", "duplicate", "stale", "rejected"]
SUBMIT_REJECTIONS = [
    "malformed",
    "bad_signature",
    "unknown_key",
    "revoked_key",
    "issuer_mismatch",
    "unknown_signal_type",
    "invalid_value",
    "unknown_label",
    "mixed_label_kinds",
    "invalid_audience",
    "clock_skew",
    "too_old",
    "jti_reused",
]
QUERY_ERRORS = ["invalid_query", "unknown_signal_type", "invalid_value"]


class SignalTypeOut(serializers.Serializer[Any]):
    name = serializers.CharField()
    description = serializers.CharField()
    content_types = serializers.ListField(child=serializers.CharField())
    examples = serializers.ListField(child=serializers.CharField())


class LabelOut(serializers.Serializer[Any]):
    slug = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=Label.Kind.values,
        help_text="`benign` labels assert a value known benign (the known-benign list); "
        "the others are TVEC labels. A statement carries labels of one side only.",
    )
    description = serializers.CharField(allow_blank=True)
    active = serializers.BooleanField()


class SubmitIn(serializers.Serializer[Any]):
    statements = serializers.ListField(
        child=serializers.CharField(),
        min_length=1,
        max_length=MAX_BATCH,
        help_text="1 to 10,000 compact JWS, one per statement",
    )


class SubmitResultOut(serializers.Serializer[Any]):
    index = serializers.IntegerField(help_text="Position of the item in the request")
    status = serializers.ChoiceField(choices=SUBMIT_STATUSES)
    jti = serializers.CharField(required=False, help_text="Unless rejected")
    signal_type = serializers.CharField(required=False, help_text="Unless rejected")
    value = serializers.CharField(required=False, help_text="Unless rejected")
    code = serializers.ChoiceField(
        choices=SUBMIT_REJECTIONS, required=False, help_text="Why it was rejected"
    )
    detail = serializers.CharField(required=False, help_text="Why it was rejected, in words")


class SubmitOut(serializers.Serializer[Any]):
    results = SubmitResultOut(many=True, help_text="One per item, in input order")
    accepted = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    stale = serializers.IntegerField()
    rejected = serializers.IntegerField()


class SnapshotStatementOut(serializers.Serializer[Any]):
    member = serializers.CharField(help_text="Slug of the submitting member")
    kid = serializers.CharField(help_text="Thumbprint of the signing key")
    iat = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField())
    benign = serializers.BooleanField(
        help_text="The labels are of kind `benign`: the member asserts the value known benign"
    )
    tlp = serializers.ChoiceField(choices=TLPS)
    audience = serializers.CharField(help_text="`forum` or `group:<slug>`")
    exp = serializers.IntegerField(allow_null=True)
    jws = serializers.CharField(help_text="The statement exactly as its member signed it")
    receipt = serializers.CharField(
        allow_blank=True, help_text="The forum's signed receipt (compact JWS)"
    )


class OpinionOut(serializers.Serializer[Any]):
    category = serializers.ChoiceField(choices=CATEGORIES)
    tags = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField(allow_blank=True)


class OpinionSummaryOut(serializers.Serializer[Any]):
    positive = serializers.IntegerField()
    negative = serializers.IntegerField()
    investigation = serializers.IntegerField()
    disputed = serializers.BooleanField(
        help_text="A dispute is open, or members' opinions are mixed (positive and negative)"
    )
    mine = OpinionOut(allow_null=True, help_text="The caller's own opinion, if any")


class SnapshotDecisionOut(serializers.Serializer[Any]):
    decision = serializers.ChoiceField(choices=["uphold", "overturn", "relabel"])
    labels = serializers.ListField(child=serializers.CharField(), help_text="Relabel only")
    jws = serializers.CharField(help_text="Compact JWS by the forum's key (docs/api.md)")


class SnapshotOut(serializers.Serializer[Any]):
    """A signal's current state as the caller may see it; ``deleted`` (with no
    statements) when it is gone for the caller."""

    signal_type = serializers.CharField()
    value = serializers.CharField()
    deleted = serializers.BooleanField()
    benign = serializers.BooleanField(
        help_text="Every statement the caller sees asserts the value known benign "
        "(false for a tombstone)"
    )
    updated_at = serializers.CharField(help_text="RFC 3339, UTC")
    statements = SnapshotStatementOut(many=True)
    opinions = OpinionSummaryOut()
    decisions = SnapshotDecisionOut(
        many=True, required=False, help_text="The forum's decisions on disputes, oldest first"
    )
    sightings = SightingSummaryOut()

    class Meta:
        ref_name = "SignalSnapshot"


class ChangesOut(serializers.Serializer[Any]):
    changes = SnapshotOut(many=True)
    cursor = serializers.CharField(help_text="Opaque: send it back to continue")
    has_more = serializers.BooleanField()


class MatchQueryIn(serializers.Serializer[Any]):
    signal_type = serializers.CharField()
    value = serializers.CharField(help_text="In the canonical form of its type")


class MatchIn(serializers.Serializer[Any]):
    queries = serializers.ListField(
        child=MatchQueryIn(), min_length=1, max_length=MAX_QUERIES, help_text="1 to 1,000 queries"
    )
    max_distance = serializers.IntegerField(
        required=False, default=31, min_value=0, max_value=64, help_text="PDQ bits"
    )
    limit = serializers.IntegerField(
        required=False, default=100, min_value=1, max_value=1000, help_text="Matches per query"
    )
    vpdq_query_match_percent = serializers.FloatField(
        required=False,
        default=80.0,
        min_value=0,
        max_value=100,
        help_text="vpdq queries: keep candidates with at least this query_match_percent "
        "(python-threatexchange's default)",
    )
    vpdq_compared_match_percent = serializers.FloatField(
        required=False,
        default=0.0,
        min_value=0,
        max_value=100,
        help_text="vpdq queries: keep candidates with at least this compared_match_percent",
    )


class BenignNeighbourOut(serializers.Serializer[Any]):
    distance = serializers.IntegerField(
        help_text="Hamming distance (vpdq queries: the closest pair of frames); 0 for exact types"
    )
    query_match_percent = serializers.FloatField(
        required=False,
        help_text="vpdq queries only: share (0-100) of the query's frames of quality >= 50 "
        "(deduplicated) within max_distance of a frame of this signal",
    )
    compared_match_percent = serializers.FloatField(
        required=False,
        help_text="vpdq queries only: share (0-100) of this signal's frames of quality >= 50 "
        "(deduplicated) within max_distance of a query frame; a pdq signal is one frame",
    )
    signal = SnapshotOut()


class MatchOut(BenignNeighbourOut):
    near_benign = serializers.BooleanField(
        help_text="A value in this result's `benign` list lies within `max_distance` of "
        "this match (or is this signal): look before acting"
    )


class QueryErrorOut(serializers.Serializer[Any]):
    code = serializers.ChoiceField(choices=QUERY_ERRORS)
    detail = serializers.CharField()


class MatchResultOut(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="More visible matches than `limit`")
    matches = MatchOut(
        many=True,
        help_text="Signals with a visible TVEC statement, closest first; for vpdq queries by "
        "query_match_percent, then compared_match_percent (descending), then distance",
    )
    benign = BenignNeighbourOut(
        many=True,
        help_text="Signals with a visible statement asserting them known benign, in the same order",
    )
    error = QueryErrorOut(required=False, help_text="This query was not answered")


class MatchResultsOut(serializers.Serializer[Any]):
    results = MatchResultOut(many=True, help_text="One per query, in input order")


class OpinionSetOut(OpinionOut):
    signal_type = serializers.CharField()
    value = serializers.CharField()


_PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
SUBMIT_EXAMPLE = OpenApiExample(
    "Two statements",
    value={"statements": ["eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJpc3MiOi4uLn0.c2ln", "..."]},
    request_only=True,
)
SUBMIT_RESULT_EXAMPLE = OpenApiExample(
    "One accepted, one rejected",
    value={
        "results": [
            {"index": 0, "status": "accepted", "jti": "7f3c", "signal_type": "pdq", "value": _PDQ},
            {"index": 1, "status": "rejected", "code": "bad_signature", "detail": "..."},
        ],
        "accepted": 1,
        "duplicate": 0,
        "stale": 0,
        "rejected": 1,
    },
    response_only=True,
)
MATCH_EXAMPLE = OpenApiExample(
    "A PDQ hash and a SHA-256",
    value={
        "queries": [
            {"signal_type": "pdq", "value": _PDQ},
            {
                "signal_type": "sha256",
                "value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            },
        ],
        "max_distance": 31,
    },
    request_only=True,
)

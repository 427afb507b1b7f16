"""What members share: signals, signed statements about them, opinions, and the feed.

Audience keys. Visibility and the change feed speak of audiences as integers: ``0`` is
the whole forum (every active member), a positive number is a sharing group's id, and a
negative number ``-m`` addresses member ``m`` alone (used for tombstones when it leaves
a group). See ``exchange/feed.py`` for how the feed uses them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import MD5
from django.utils import timezone

from members.models import Member, SharingGroup, SigningKey

from .client.statement_format import MAX_JTI_LENGTH, MAX_REF_LENGTH, OP_ASSERT, OP_RETRACT

FORUM_AUDIENCE = 0


class Label(models.Model):
    """Admin-managed taxonomy. Deactivated labels are refused in new statements.

    Labels of kind ``benign`` say the opposite of all others: a statement carrying them
    asserts a value as *known benign* (news reporting, counter-speech, satire), the
    forum's known-benign list. A statement carries labels of one side only
    (``mixed_label_kinds``), and a label never crosses sides once it exists
    (``exchange.services.labels``): what a signed statement means must not change.
    """

    class Kind(models.TextChoices):
        BEHAVIOUR = "behaviour"
        ENTITY = "entity"
        CONTENT = "content"
        INCIDENT = "incident"
        BENIGN = "benign"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["kind", "slug"]

    def __str__(self) -> str:
        return self.slug


class Incident(models.Model):
    """A declared crisis (an attack and its livestream, say). While it lasts its label
    may be used in statements, and statements carrying it are pushed ahead of routine
    traffic."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=55, unique=True)
    description = models.TextField(blank=True)
    declared_at = models.DateTimeField(default=timezone.now)
    declared_by = models.CharField(max_length=200)
    ended_at = models.DateTimeField(null=True, blank=True)
    label = models.OneToOneField(Label, on_delete=models.PROTECT, related_name="incident")

    class Meta:
        ordering = ["-declared_at"]

    def __str__(self) -> str:
        return self.slug

    @property
    def active(self) -> bool:
        return self.ended_at is None


class Signal(models.Model):
    """One (type, value), in the canonical form of its type."""

    signal_type = models.CharField(max_length=32)
    value = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # Set when forum staff overturned a dispute on it: withdrawn for every member on
    # every read path (``exchange.selectors``), whatever its statements say.
    overturned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # On a digest of the value, not the value: a b-tree entry holds at most ~2.7 kB
        # on PostgreSQL and a vpdq value reaches ~300 kB. Lookups name both the digest
        # and the value (``exchange.db.signal_value_in``), so they stay exact and indexed.
        constraints = [
            models.UniqueConstraint(F("signal_type"), MD5("value"), name="unique_signal_digest")
        ]

    def __str__(self) -> str:
        return f"{self.signal_type}:{self.value[:24]}"


class Statement(models.Model):
    """A member's signed claim, stored verbatim; every accepted one is kept."""

    class Op(models.TextChoices):
        ASSERT = OP_ASSERT
        RETRACT = OP_RETRACT

    # No single-column indexes where a composite one starts with the column
    # (unique_member_jti, statement_key_iat): every index costs each ingested row. On
    # PostgreSQL one composite foreign key (signing_key, member) -> signing key (id,
    # member) replaces the two single ones: a key of another member is refused, and
    # each ingested row pays one check instead of two (migration 0006).
    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="statements",
        db_index=False,
        db_constraint=False,
    )
    signing_key = models.ForeignKey(
        SigningKey, on_delete=models.PROTECT, db_index=False, db_constraint=False
    )
    signal = models.ForeignKey(Signal, on_delete=models.PROTECT, related_name="statements")
    # Denormalised from member and key (both immutable) so feed reads need no joins.
    member_slug = models.CharField(max_length=64)
    kid = models.CharField(max_length=64)
    jti = models.CharField(max_length=MAX_JTI_LENGTH)
    iat = models.BigIntegerField()
    op = models.CharField(max_length=8, choices=Op.choices)
    labels = models.JSONField(default=list)
    tlp = models.CharField(max_length=16, blank=True)
    audience = models.CharField(max_length=80, blank=True)
    group = models.ForeignKey(
        SharingGroup, null=True, blank=True, on_delete=models.PROTECT, db_index=False
    )
    exp = models.BigIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=16, blank=True)
    ref = models.CharField(max_length=MAX_REF_LENGTH, blank=True)
    jws = models.TextField()
    token_digest = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=timezone.now)
    # The forum's signed receipt (exchange/receipts.py), signed once at ingest.
    receipt = models.TextField(blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.CharField(max_length=32, blank=True)
    # An assertion whose labels are of kind ``benign`` (the known-benign list). Fixed at
    # ingest from the labels, which never change side, so reads need no label join.
    benign = models.BooleanField(default=False, db_default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "jti"], name="unique_member_jti"),
            # The target of current statements' (statement, member, signal) foreign key.
            models.UniqueConstraint(
                fields=["id", "member", "signal"], name="statement_id_member_signal"
            ),
        ]
        indexes = [
            models.Index(fields=["signing_key", "iat"], name="statement_key_iat"),
            # Most statements address the forum; only group ones need finding by group.
            models.Index(
                fields=["group"], name="statement_group", condition=Q(group__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_slug}:{self.jti}"


class CurrentStatement(models.Model):
    """The member's newest statement on a signal (newest ``iat`` wins).

    ``audience`` is the audience key while the statement is a live assertion, and NULL
    once it is a retraction or was withdrawn (key compromised, member expelled). An
    assertion past its ``exp`` is never served, whether or not the sweep has recorded
    the lapse (``lapsed``) yet; once recorded, the lapse is final whatever a host's clock
    says (``exchange/liveness.py``).
    """

    # member and signal are indexed by unique_current and current_signal. On PostgreSQL
    # one composite foreign key (statement, member, signal) -> statement (id, member,
    # signal) replaces the three single ones: the row's member and signal are its
    # statement's, and each ingested row pays one check instead of three (migration
    # 0006). SQLite, the embedded default, cannot add such a key to a table.
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, db_index=False, db_constraint=False
    )
    signal = models.ForeignKey(
        Signal, on_delete=models.PROTECT, db_index=False, db_constraint=False
    )
    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, db_constraint=False)
    iat = models.BigIntegerField()
    audience = models.BigIntegerField(null=True)
    exp = models.BigIntegerField(null=True)
    lapsed = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "signal"], name="unique_current")]
        indexes = [
            models.Index(fields=["signal"], name="current_signal"),
            # For the lapse sweep; most assertions never expire.
            models.Index(fields=["exp"], name="current_exp", condition=Q(exp__isnull=False)),
        ]


class Opinion(models.Model):
    """A member's feedback on a signal, in python-threatexchange's categories."""

    class Category(models.TextChoices):
        POSITIVE = "positive"
        NEGATIVE = "negative"
        INVESTIGATION = "investigation"

    member = models.ForeignKey(Member, on_delete=models.CASCADE)
    signal = models.ForeignKey(Signal, on_delete=models.PROTECT, related_name="opinions")
    category = models.CharField(max_length=16, choices=Category.choices)
    tags = models.JSONField(default=list)
    reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "signal"], name="unique_opinion")]
        indexes = [models.Index(fields=["signal"], name="opinion_signal")]


class FeedEntry(models.Model):
    """ "Signal S changed for audience A", at position ``seq`` of the change feed."""

    seq = models.BigAutoField(primary_key=True)
    audience = models.BigIntegerField()
    signal = models.ForeignKey(
        Signal, on_delete=models.DO_NOTHING, db_index=False, db_constraint=False
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Unix time at which the change took effect, when that is earlier than the row: a
    # lapse recorded by the sweep. Only readers in the audience since before then may
    # learn of it as a tombstone.
    effective_at = models.BigIntegerField(null=True, blank=True)
    # When the row was added, strictly increasing with ``seq`` (handed out under the feed
    # lock, ``exchange.feed.feed_append``): TAXII's ``date_added`` (exchange/taxii/).
    added_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["audience", "seq"], name="feed_audience_seq")]


class AudiencePeriod(models.Model):
    """A span of feed positions during which a member belonged to an audience.

    Feed rows with ``start_seq < seq <= end_seq`` (``end_seq`` NULL: still a member)
    were written while the member was in the audience, so a tombstone from such a row
    tells it nothing it was not allowed to see.
    """

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="periods")
    audience = models.BigIntegerField()
    start_seq = models.BigIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    end_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["member", "audience"], name="period_member")]


from .disputes.models import (  # noqa: E402, F401
    Dispute,
    DisputeDecision,
    DisputeEvent,
    DisputeParty,
    DisputeResponse,
)
from .sightings.models import Sighting  # noqa: E402, F401
from .webhooks.models import WebhookDelivery, WebhookEndpoint  # noqa: E402, F401

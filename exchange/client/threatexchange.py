"""
The Cordiale forum as a python-threatexchange extension, for the ``threatexchange`` CLI
and Meta's Hasher-Matcher-Actioner (HMA).

``TX_MANIFEST`` offers one exchange, ``cordiale``, and the signal types the forum shares
that python-threatexchange's core lacks: ``md5`` and ``sha256`` of any file, and ``vpdq``,
which is python-threatexchange's own ``VPDQSignal`` (its extension
``threatexchange.extensions.vpdq``, whose hashing and matching need the ``vpdq`` package:
the client's ``video`` extra). Without that package the manifest leaves ``vpdq`` out and
the forum's videos are skipped by the fetch, as any signal type the CLI does not know.
Adding ``threatexchange.extensions.vpdq`` as well is then neither needed nor possible (two
extensions may not both name a type). HMA takes its signal types from its own settings:
list ``VPDQSignal`` there, and the forum's ``vpdq`` signals arrive as that type. A
collaboration
names the forum's base URL; the API key comes from ``TX_CORDIALE_API_KEY`` or
``CORDIALE_API_KEY``, else from the file ``~/.tx_cordiale_api_key``::

    threatexchange config extensions add exchange.client.threatexchange
    threatexchange config collab edit cordiale forum --create --server-url https://forum.example
    TX_CORDIALE_API_KEY=... threatexchange fetch
    threatexchange match photo suspect.jpg

Fetching follows the change feed (``GET /api/v1/changes``). Each update is keyed by
``(signal type, value)``, the feed's own identity of a signal, so a later snapshot of the
same signal replaces the earlier one and a tombstone (``deleted``) becomes a deletion
(``None``). Every statement is verified against the members' published keys (JWKS) as it
arrives; one that does not verify is dropped, and a signal left with no verified statement
is deleted, as in the ``cordiale sync`` replica. A collaboration may also drop signals
that other members disputed or rated negative (``--drop DISPUTED`` or ``NEGATIVE``).
A signal the forum overturned on a dispute arrives as a tombstone, hence a deletion.

The checkpoint is the feed cursor plus the newest ``updated_at`` seen, in Unix seconds,
which only grows; it is a plain dataclass, so HMA can store it as JSON. The forum keeps a
cursor valid for at least 90 days; a checkpoint not used for longer is stale and the
fetch starts over. When the forum answers a cursor with ``resync_required`` (it was
restored from a backup taken before that cursor), the fetch stops with a checkpoint that
says so: it is stale, so the next fetch clears the collaboration's fetched signals, as
python-threatexchange does for any stale checkpoint, and reads the whole feed again.

Opinions become ``SignalOpinion``s: each member's statement is a ``POSITIVE_CLASS``
opinion tagged with its labels and ``member:<slug>``, except a statement on the forum's
known-benign list (labels of kind ``benign``, ``"benign": true`` in the snapshot), which
is a ``NEGATIVE_CLASS`` opinion with the same tags: a signal only asserted benign
aggregates to ``NEGATIVE_CLASS`` and one asserted both TVEC and benign to ``DISPUTED``,
so HMA does not act on either by default (``--drop NEGATIVE`` leaves both out of the
fetch, ``--drop DISPUTED`` the second). The other members' feedback counts
add a ``NEGATIVE_CLASS`` or ``INVESTIGATION_SEED`` opinion, so that python-threatexchange
aggregates positive and negative feedback to ``DISPUTED`` as the forum does. Your own
statements and feedback are the opinions marked ``is_mine``. ``report_opinion`` sets your
feedback with ``PUT /api/v1/opinions/<type>/<value>``.
"""

import hashlib
import os
import time
import typing as t
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from threatexchange.content_type.content_base import ContentType
from threatexchange.content_type.file import FileContent
from threatexchange.content_type.photo import PhotoContent
from threatexchange.content_type.video import VideoContent
from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPIWithSimpleUpdates
from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type import signal_base
from threatexchange.signal_type.signal_base import SignalType

from exchange.client.api import CordialeClient, CordialeError
from exchange.client.replica import RESYNC_REQUIRED
from exchange.client.signal_types import InvalidSignalValue, get_signal_type
from exchange.client.verify import index_jwks, kids_named, verify_snapshot

API_NAME = "cordiale"
FEED_PAGE_SIZE = 1000
# The forum promises that a cursor stays valid for 90 days; start over a little before.
CHECKPOINT_MAX_AGE = 80 * 24 * 3600

_CATEGORY_BY_OPINION = {
    "positive": state.SignalOpinionCategory.POSITIVE_CLASS,
    "negative": state.SignalOpinionCategory.NEGATIVE_CLASS,
    "investigation": state.SignalOpinionCategory.INVESTIGATION_SEED,
}
_OPINION_BY_CATEGORY = {category: name for name, category in _CATEGORY_BY_OPINION.items()}


# Signal types the forum shares that python-threatexchange has no type for.


class _ForumHashSignal(signal_base.SimpleSignalType, signal_base.BytesHasher):
    """An exact file hash, validated and normalised by the forum's own registry."""

    FORUM_TYPE: t.ClassVar[str] = ""

    @classmethod
    def get_name(cls) -> str:
        return cls.FORUM_TYPE

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [FileContent, PhotoContent, VideoContent]

    @classmethod
    def get_index_cls(cls) -> type[signal_base.TrivialSignalTypeIndex[t.Any]]:
        return signal_base.TrivialSignalTypeIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        try:
            return get_signal_type(cls.FORUM_TYPE).normalize(signal_str)
        except InvalidSignalValue as exc:
            raise ValueError(f"{signal_str!r} is not a valid {cls.FORUM_TYPE}: {exc}") from exc

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        return hashlib.new(cls.FORUM_TYPE, bytes_).hexdigest()

    @staticmethod
    def get_examples() -> list[str]:
        return []


class FileMD5Signal(_ForumHashSignal):
    """The MD5 of a file's bytes (the forum's ``md5``); pytx's ``video_md5`` is videos only."""

    FORUM_TYPE = "md5"

    @staticmethod
    def get_examples() -> list[str]:
        return list(get_signal_type("md5").examples)


class FileSHA256Signal(_ForumHashSignal):
    """The SHA-256 of a file's bytes (the forum's ``sha256``)."""

    FORUM_TYPE = "sha256"

    @staticmethod
    def get_examples() -> list[str]:
        return list(get_signal_type("sha256").examples)


# Configuration, credentials and checkpoint. No ``from __future__ import annotations`` in
# this module: the threatexchange CLI builds its collab flags from the runtime field types.


class DropPolicy(Enum):
    """Which signals a collaboration leaves out because of other members' feedback."""

    NONE = "none"
    DISPUTED = "disputed"  # an open dispute, or positive and negative feedback both
    NEGATIVE = "negative"  # any negative feedback, disputed included


@dataclass
class _CordialeCollabRequiredFields:
    server_url: str = field(
        metadata={"help": "base URL of the forum, e.g. https://forum.example", "metavar": "URL"}
    )


@dataclass
class CordialeCollabConfig(CollaborationConfigWithDefaults, _CordialeCollabRequiredFields):
    """A forum to fetch from: its URL and what to leave out."""

    api: str = field(init=False, default=API_NAME)
    drop: DropPolicy = field(
        default=DropPolicy.NONE,
        metadata={"help": "leave out signals with DISPUTED or any NEGATIVE member feedback"},
    )
    only_labels: set[str] = field(
        default_factory=set,
        metadata={"help": "only signals with a statement carrying one of these labels"},
    )


@dataclass
class CordialeCredentials(auth.CredentialHelper):
    """A forum API key with the ``read`` scope (and ``feedback`` to report opinions)."""

    ENV_VARIABLE: t.ClassVar[str] = "TX_CORDIALE_API_KEY"
    FALLBACK_ENV_VARIABLE: t.ClassVar[str] = "CORDIALE_API_KEY"
    FILE_NAME: t.ClassVar[str] = "~/.tx_cordiale_api_key"

    api_key: str = field(metadata={"help": "the member's API key for the forum"})

    @classmethod
    def _from_str(cls, s: str) -> "CordialeCredentials":
        return cls(api_key=s.strip())

    @classmethod
    def _from_env(cls) -> "CordialeCredentials | None":
        for name in (cls.ENV_VARIABLE, cls.FALLBACK_ENV_VARIABLE):
            value = os.environ.get(name, "").strip()
            if value:
                return cls._from_str(value)
        return None

    def _are_valid(self) -> bool:
        return bool(self.api_key)


@dataclass
class CordialeCheckpoint(state.FetchCheckpointBase):
    """Where the feed was left: its cursor, the newest change seen, and when we fetched."""

    cursor: str
    progress_timestamp: int
    last_fetch_time: int
    # The forum asked for a resync: the fetched state must be cleared and fetched again.
    resync: bool = False

    def is_stale(self) -> bool:
        return self.resync or time.time() - self.last_fetch_time > CHECKPOINT_MAX_AGE

    def get_progress_timestamp(self) -> int:
        return self.progress_timestamp


# Fetched records


@dataclass
class CordialeStatementInfo:
    """One member's current statement about the signal, as the forum showed it (verified)."""

    member: str
    labels: list[str]
    tlp: str
    audience: str
    iat: int
    is_mine: bool = False
    benign: bool = False  # on the known-benign list: labels of kind ``benign``


@dataclass
class CordialeSignalMetadata(state.FetchedSignalMetadata):
    """A signal's verified statements and the members' feedback counts."""

    statements: list[CordialeStatementInfo]
    positive: int = 0
    negative: int = 0
    investigation: int = 0
    disputed: bool = False
    mine: str | None = None  # the caller's own feedback category

    @property
    def labels(self) -> set[str]:
        return {label for statement in self.statements for label in statement.labels}

    @property
    def benign(self) -> bool:
        """Some member put the value on the known-benign list."""
        return any(statement.benign for statement in self.statements)

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        opinions = [
            state.SignalOpinion(
                s.is_mine,
                state.SignalOpinionCategory.NEGATIVE_CLASS
                if s.benign
                else state.SignalOpinionCategory.POSITIVE_CLASS,
                {*s.labels, f"member:{s.member}"},
            )
            for s in self.statements
        ]
        counts = {"positive": self.positive, "negative": self.negative}
        counts["investigation"] = self.investigation
        if self.mine in counts:
            counts[self.mine] -= 1
            opinions.append(state.SignalOpinion(True, _CATEGORY_BY_OPINION[self.mine], set()))
        if self.disputed and not (self.negative or counts["negative"]):
            counts["negative"] = 1  # the forum says disputed; keep pytx's aggregate in step
        for name, count in counts.items():
            if count > 0:
                opinions.append(state.SignalOpinion(False, _CATEGORY_BY_OPINION[name], set()))
        return opinions

    def __str__(self) -> str:
        aggregate = self.get_as_aggregate_opinion()
        members = ",".join(sorted({s.member for s in self.statements}))
        labels = ",".join(sorted(self.labels))
        feedback = f"+{self.positive}/-{self.negative}/?{self.investigation}"
        benign = " known-benign" if self.benign else ""
        return f"{aggregate.category.name}{benign} {labels} by {members} feedback {feedback}"


def _timestamp(text: t.Any) -> int:
    if not isinstance(text, str) or not text:
        return 0
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _category(mine: t.Any) -> str | None:
    """The caller's own feedback category: the forum sends the opinion object, or null."""
    category = mine.get("category") if isinstance(mine, dict) else mine
    return category if category in _CATEGORY_BY_OPINION else None


class CordialeSignalExchangeAPI(
    auth.SignalExchangeWithAuth[CordialeCollabConfig, CordialeCredentials],
    SignalExchangeAPIWithSimpleUpdates[
        CordialeCollabConfig, CordialeCheckpoint, CordialeSignalMetadata
    ],
):
    """Reads a Cordiale forum's change feed and reports feedback to it."""

    def __init__(
        self,
        collab: CordialeCollabConfig,
        client: CordialeClient,
        *,
        page_size: int = FEED_PAGE_SIZE,
    ) -> None:
        self.collab = collab
        self.client = client
        self.page_size = page_size

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> type[CordialeCollabConfig]:
        return CordialeCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[CordialeCheckpoint]:
        return CordialeCheckpoint

    @staticmethod
    def get_record_cls() -> type[CordialeSignalMetadata]:
        return CordialeSignalMetadata

    @staticmethod
    def get_credential_cls() -> type[CordialeCredentials]:
        return CordialeCredentials

    @classmethod
    def for_collab(
        cls,
        collab: CordialeCollabConfig,
        credentials: CordialeCredentials | None = None,
    ) -> "CordialeSignalExchangeAPI":
        credentials = credentials or CordialeCredentials.get(cls)
        return cls(collab, CordialeClient(collab.server_url, credentials.api_key))

    def fetch_iter(
        self,
        supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: CordialeCheckpoint | None,
    ) -> t.Iterator[state.FetchDelta[tuple[str, str], CordialeSignalMetadata, CordialeCheckpoint]]:
        progress = checkpoint.progress_timestamp if checkpoint else 0
        me = self._my_slug()
        keys = index_jwks(self.client.jwks())
        cursor = checkpoint.cursor if checkpoint else None
        try:
            yield from self._fetch_pages(cursor, progress, keys, me)
        except CordialeError as exc:
            if exc.code != RESYNC_REQUIRED:
                raise
            # Only a fetch from a cleared state can drop what the restored forum lost.
            yield state.FetchDelta({}, CordialeCheckpoint("", progress, int(time.time()), True))

    def _fetch_pages(
        self,
        cursor: str | None,
        progress: int,
        keys: dict[str, dict[str, t.Any]],
        me: str,
    ) -> t.Iterator[state.FetchDelta[tuple[str, str], CordialeSignalMetadata, CordialeCheckpoint]]:
        for page in self.client.iter_changes(cursor, self.page_size):
            snapshots = page.get("changes") or []
            if not kids_named(snapshots) <= set(keys):
                keys = index_jwks(self.client.jwks())  # a key registered since we started
            updates: dict[tuple[str, str], CordialeSignalMetadata | None] = {}
            for snapshot in snapshots:
                key = (str(snapshot["signal_type"]), str(snapshot["value"]))
                updates[key] = self._metadata(snapshot, keys, me)
                progress = max(progress, _timestamp(snapshot.get("updated_at")))
            cursor = str(page.get("cursor") or cursor or "")
            yield state.FetchDelta(updates, CordialeCheckpoint(cursor, progress, int(time.time())))

    def _my_slug(self) -> str:
        member = self.client.me().get("member")
        return str(member.get("slug", "")) if isinstance(member, dict) else str(member or "")

    def _metadata(
        self, snapshot: dict[str, t.Any], keys: dict[str, dict[str, t.Any]], me: str
    ) -> CordialeSignalMetadata | None:
        """The record for a snapshot, or None when the signal is gone (or left out) for us."""
        if snapshot.get("deleted"):
            return None
        statements = [
            CordialeStatementInfo(
                member=str(s.get("member")),
                labels=[str(label) for label in s.get("labels") or []],
                tlp=str(s.get("tlp")),
                audience=str(s.get("audience")),
                iat=int(s.get("iat") or 0),
                is_mine=s.get("member") == me,
                benign=s.get("benign") is True,
            )
            for s, verdict in zip(
                snapshot.get("statements") or [], verify_snapshot(snapshot, keys), strict=True
            )
            if verdict.ok
        ]
        if not statements:
            return None
        opinions = snapshot.get("opinions") or {}
        metadata = CordialeSignalMetadata(
            statements=statements,
            positive=int(opinions.get("positive") or 0),
            negative=int(opinions.get("negative") or 0),
            investigation=int(opinions.get("investigation") or 0),
            disputed=bool(opinions.get("disputed")),
            mine=_category(opinions.get("mine")),
        )
        return metadata if self._wanted(metadata) else None

    def _wanted(self, metadata: CordialeSignalMetadata) -> bool:
        drop = self.collab.drop
        benign = metadata.benign  # a member's statement says known benign: negative
        if drop is DropPolicy.NEGATIVE and (metadata.negative or metadata.disputed or benign):
            return False
        # Benign and TVEC statements on one signal dispute each other.
        disputed = benign and not all(s.benign for s in metadata.statements)
        if drop is DropPolicy.DISPUTED and (metadata.disputed or disputed):
            return False
        return not self.collab.only_labels or bool(self.collab.only_labels & metadata.labels)

    def report_opinion(
        self,
        s_type: type[SignalType],
        signal: str,
        opinion: state.SignalOpinion,
    ) -> None:
        """Set our feedback on a signal: positive, negative or investigation, with tags."""
        self.client.set_opinion(
            s_type.get_name(),
            signal,
            category=_OPINION_BY_CATEGORY[opinion.category],
            tags=sorted(opinion.tags),
        )


def _video_signal_types() -> tuple[type[SignalType], ...]:
    """python-threatexchange's vPDQ type, when the ``vpdq`` package it needs is installed."""
    try:
        from threatexchange.extensions.vpdq.vpdq import VPDQSignal
    except ImportError:  # the optional extra 'video' is not installed
        return ()
    # The feed names the type ``vpdq``, as VPDQSignal.get_name() does: pytx's
    # naive_convert_to_signal_type pairs them by that name.
    return (VPDQSignal,)


TX_MANIFEST = ThreatExchangeExtensionManifest(
    signal_types=(FileMD5Signal, FileSHA256Signal, *_video_signal_types()),
    apis=(CordialeSignalExchangeAPI,),
)

"""The change feed converges and never leaks (DESIGN.md invariants 3, 4 and 5).

Random histories of asserts (forum and group audiences, some already lapsed),
retractions, opinions, sighting reports, group membership changes, key compromises,
suspensions, expulsions and lapse sweeps, by several members, while every member follows the feed at
random points with random page sizes. A small reference model says what each member may
see. Checked on every page, not only at the end:

- a snapshot's statements are exactly those the model says the reader may see now;
- a tombstone names only a value the reader could see at some point (else it leaks);
- after a final sync, each reader's replica equals the model's view, opinions included,
  and each signal's sightings summary is the one a lookup answers now.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.client import jws
from exchange.models import Statement
from exchange.selectors import feed_page, signal_snapshot_for
from exchange.services.lapse import statements_lapse_sweep
from exchange.services.opinions import opinion_delete, opinion_set
from exchange.services.statements import statement_submit
from exchange.sightings.services import sightings_report
from forum.errors import NotFoundError
from members.models import Member, SharingGroup, SigningKey
from members.services import (
    member_set_status,
    sharing_group_set_members,
    signing_key_register,
    signing_key_revoke,
)
from tests.factories import ACTOR, Party, make_group, make_party, pdq

pytestmark = pytest.mark.django_db

N_MEMBERS = 4
N_SIGNALS = 5
N_GROUPS = 2
KINDS = (
    "assert",
    "assert",
    "assert",
    "retract",
    "opinion",
    "unopinion",
    "sighting",
    "sighting",
    "join",
    "leave",
    "compromise",
    "suspend",
    "reinstate",
    "expel",
    "sweep",
    "sync",
    "sync",
)


@dataclass
class Said:
    """One accepted statement, as the model knows it."""

    iat: int
    op: str
    audience: str
    exp: int | None
    kid: str
    jws: str
    received: float  # the server's receipt time, Unix seconds
    withdrawn: bool = False


@dataclass
class Model:
    now: int
    parties: list[Party]
    groups: list[SharingGroup]
    values: list[str]
    status: dict[int, str] = field(default_factory=dict)
    in_group: dict[int, set[int]] = field(default_factory=dict)  # group index -> members
    said: dict[tuple[int, int], list[Said]] = field(default_factory=dict)
    opinions: dict[tuple[int, int], str] = field(default_factory=dict)

    def current(self, m: int, v: int) -> Said | None:
        """The newest statement that stands; only when none does, the newest withdrawn
        one (invisible, but still what a new statement must be newer than)."""
        history = self.said.get((m, v))
        if not history:
            return None
        standing = [s for s in history if not s.withdrawn] or history
        return max(standing, key=lambda s: s.iat)

    def visible_statements(self, reader: int, v: int) -> set[str]:
        out = set()
        for m in range(len(self.parties)):
            cur = self.current(m, v)
            if cur is None or cur.op != "assert" or cur.withdrawn:
                continue
            if cur.exp is not None and cur.exp <= self.now:
                continue
            if cur.audience == "forum" or (
                cur.audience.startswith("group:")
                and reader in self.in_group[self.group_index(cur.audience)]
            ):
                out.add(cur.jws)
        return out

    def group_index(self, audience: str) -> int:
        slug = audience.removeprefix("group:")
        return next(i for i, g in enumerate(self.groups) if g.slug == slug)

    def opinion_counts(self, v: int) -> dict[str, int]:
        counts = {"positive": 0, "negative": 0, "investigation": 0}
        for (_m, vv), category in self.opinions.items():
            if vv == v:
                counts[category] += 1
        return counts


@dataclass
class Follower:
    cursor: str | None = None
    replica: dict[str, dict[str, Any]] = field(default_factory=dict)
    ever_visible: set[int] = field(default_factory=set)


def _check_page(model: Model, reader: int, follower: Follower, changes: list[dict]) -> None:
    index = {value: i for i, value in enumerate(model.values)}
    for change in changes:
        v = index.get(change["value"])
        if v is None:
            continue  # another test's signal, outside this history
        if change["deleted"]:
            assert v in follower.ever_visible, f"tombstone leaked {change['value']} to {reader}"
            assert not model.visible_statements(reader, v)
            follower.replica.pop(change["value"], None)
        else:
            got = {s["jws"] for s in change["statements"]}
            assert got == model.visible_statements(reader, v), "snapshot differs from model"
            follower.replica[change["value"]] = change


def _sync(model: Model, reader: int, follower: Follower, limit: int, pages: int | None) -> None:
    party = model.parties[reader]
    count = 0
    while True:
        changes, cursor, has_more = feed_page(
            member_id=party.member.pk, cursor=follower.cursor, limit=limit
        )
        _check_page(model, reader, follower, changes)
        follower.cursor = cursor
        count += 1
        if not has_more or (pages is not None and count >= pages):
            return


def _submit(model: Model, m: int, v: int, claims_kw: dict[str, Any]) -> None:
    party = model.parties[m]
    claims = party.claims("pdq", model.values[v], **claims_kw)
    token = party.sign(claims)
    result = statement_submit(member=party.member, tokens=[token])["results"][0]
    if result["status"] == "accepted":
        model.said.setdefault((m, v), []).append(
            Said(
                iat=claims["iat"],
                op=claims["op"],
                audience=claims.get("audience", ""),
                exp=claims.get("exp"),
                kid=party.kid,
                jws=token,
                received=Statement.objects.get(
                    member=party.member, jti=claims["jti"]
                ).received_at.timestamp(),
            )
        )
    else:
        cur = model.current(m, v)
        assert result["status"] == "stale", result
        assert cur is not None and cur.iat >= claims["iat"]


def _apply(model: Model, followers: list[Follower], op: tuple[str, int, int, int, int]) -> None:
    kind, a, b, c, d = op
    m, v, g = a % len(model.parties), b % len(model.values), c % len(model.groups)
    party = model.parties[m]
    active = model.status[m] == Member.Status.ACTIVE
    iat = model.now - 1000 + (c * 7 + d * 3) % 40
    if kind == "assert" and active:
        audience = "forum" if d % 2 else f"group:{model.groups[g].slug}"
        if audience != "forum" and m not in model.in_group[g]:
            audience = "forum"
        exp = None if d % 4 else (model.now - 5 if c % 2 else model.now + 3600)
        kw: dict[str, Any] = {"iat": iat, "audience": audience}
        if exp is not None:
            kw["exp"] = exp
        _submit(model, m, v, kw)
    elif kind == "retract" and active:
        _submit(model, m, v, {"iat": iat, "op": "retract"})
    elif kind in ("opinion", "unopinion") and model.status[m] != Member.Status.EXPELLED:
        if not model.visible_statements(m, v):
            return
        if kind == "opinion":
            category = ("positive", "negative", "investigation")[d % 3]
            opinion_set(
                member=party.member,
                signal_type="pdq",
                value=model.values[v],
                category=category,
                tags=[],
                reason="",
            )
            model.opinions[(m, v)] = category
        elif (m, v) in model.opinions:
            opinion_delete(member=party.member, signal_type="pdq", value=model.values[v])
            del model.opinions[(m, v)]
        else:
            # Nothing to withdraw: the same 404 whatever the signal's state.
            with pytest.raises(NotFoundError):
                opinion_delete(member=party.member, signal_type="pdq", value=model.values[v])
    elif kind == "sighting" and active:
        # Whatever the reporter sees now: an invisible signal is rejected, changing nothing.
        day = _utc(model.now - 86400 * (2 + d) - model.now % 86400).date()
        item = {
            "signal_type": "pdq",
            "value": model.values[v],
            "outcome": ("matched", "actioned", "false_positive")[c % 3],
            "count": 1 + c,
            "period_start": day.isoformat(),
            "period_end": (day + (_utc(86400) - _utc(0))).isoformat(),
        }
        result = sightings_report(member=party.member, items=[item])["results"][0]
        assert (result["status"] == "rejected") == (not model.visible_statements(m, v)), result
    elif kind in ("join", "leave") and model.status[m] != Member.Status.EXPELLED:
        members = set(model.in_group[g])
        if kind == "join":
            members.add(m)
        else:
            members.discard(m)
        sharing_group_set_members(
            group=model.groups[g],
            members=[model.parties[i].member for i in sorted(members)],
            actor=ACTOR,
        )
        model.in_group[g] = members
    elif kind == "compromise" and model.status[m] != Member.Status.EXPELLED:
        # What counts is when the server received a statement, never its iat; the
        # compromise time is whole seconds (as the server stores it).
        received = sorted(
            int(said.received)
            for (mm, _), history in model.said.items()
            for said in history
            if mm == m and said.kid == party.kid
        )
        since = received[d % len(received)] if received else int(time.time())
        signing_key_revoke(
            key=SigningKey.objects.get(kid=party.kid),
            compromised_since=_utc(since),
            actor=ACTOR,
        )
        for (mm, _), history in model.said.items():
            for said in history:
                if mm == m and said.kid == party.kid and said.received >= since:
                    said.withdrawn = True
        new_key = Ed25519PrivateKey.generate()
        key = signing_key_register(
            member=party.member, public_key=jws.public_key_x(new_key.public_key()), actor=ACTOR
        )
        party.private_key, party.kid = new_key, key.kid
    elif kind == "suspend" and active:
        member_set_status(member=party.member, status=Member.Status.SUSPENDED, actor=ACTOR)
        model.status[m] = Member.Status.SUSPENDED
    elif kind == "reinstate" and model.status[m] == Member.Status.SUSPENDED:
        member_set_status(member=party.member, status=Member.Status.ACTIVE, actor=ACTOR)
        model.status[m] = Member.Status.ACTIVE
    elif kind == "expel" and model.status[m] != Member.Status.EXPELLED and d == 1:
        member_set_status(member=party.member, status=Member.Status.EXPELLED, actor=ACTOR)
        model.status[m] = Member.Status.EXPELLED
        for (mm, _), history in model.said.items():
            if mm == m:
                for said in history:
                    said.withdrawn = True
        for key in [k for k in model.opinions if k[0] == m]:
            del model.opinions[key]
    elif kind == "sweep":
        statements_lapse_sweep()
    elif kind == "sync" and model.status[m] != Member.Status.EXPELLED:
        _sync(model, m, followers[m], limit=(1, 2, 3, 7, 1000)[d % 5], pages=1 + c)
    _note_visibility(model, followers)


def _note_visibility(model: Model, followers: list[Follower]) -> None:
    for reader, follower in enumerate(followers):
        for v in range(len(model.values)):
            if model.visible_statements(reader, v):
                follower.ever_visible.add(v)


def _utc(ts: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, N_MEMBERS - 1),
        st.integers(0, N_SIGNALS - 1),
        st.integers(0, 5),
        st.integers(0, 5),
    ),
    min_size=5,
    max_size=45,
)


@settings(
    max_examples=int(os.environ.get("CORDIALE_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(ops=ops_strategy, initial_groups=st.lists(st.booleans(), min_size=8, max_size=8))
def test_random_histories_converge_without_leaks(
    ops: list[tuple[str, int, int, int, int]], initial_groups: list[bool]
) -> None:
    """After any history, every follower holds exactly what it may see; no page leaks."""
    with transaction.atomic():
        parties = [make_party() for _ in range(N_MEMBERS)]
        in_group: dict[int, set[int]] = {}
        groups = []
        for g in range(N_GROUPS):
            members = {i for i in range(N_MEMBERS) if initial_groups[g * N_MEMBERS + i]}
            in_group[g] = members
            groups.append(make_group(f"g{g}-{pdq()[:10]}", *[parties[i] for i in members]))
        model = Model(
            now=int(time.time()),
            parties=parties,
            groups=groups,
            values=[pdq() for _ in range(N_SIGNALS)],
            status=dict.fromkeys(range(N_MEMBERS), Member.Status.ACTIVE),
            in_group=in_group,
        )
        followers = [Follower() for _ in range(N_MEMBERS)]
        for op in ops:
            _apply(model, followers, op)
        # Reports last of all: only the feed can bring their figures to the replicas.
        for m in range(N_MEMBERS):
            for v in range(N_SIGNALS):
                _apply(model, followers, ("sighting", m, v, m + v, 5))
        for reader, follower in enumerate(followers):
            if model.status[reader] == Member.Status.EXPELLED:
                continue
            _sync(model, reader, follower, limit=(1, 4, 1000)[reader % 3], pages=None)
            expected = {
                model.values[v] for v in range(N_SIGNALS) if model.visible_statements(reader, v)
            }
            assert set(follower.replica) == expected
            for value, snapshot in follower.replica.items():
                v = model.values.index(value)
                counts = model.opinion_counts(v)
                got = snapshot["opinions"]
                assert {k: got[k] for k in counts} == counts
                assert got["disputed"] == (counts["positive"] > 0 and counts["negative"] > 0)
                mine = model.opinions.get((reader, v))
                assert (got["mine"] or {}).get("category") == mine
                now = signal_snapshot_for(
                    member_id=model.parties[reader].member.pk, signal_type="pdq", value=value
                )
                assert now is not None and snapshot["sightings"] == now["sightings"]
        transaction.set_rollback(True)

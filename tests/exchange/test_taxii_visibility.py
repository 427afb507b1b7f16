"""The feed's visibility scenarios, read through TAXII 2.1 (issue #17, acceptance).

TAXII reads are feed reads (CONTRACT.md, "TAXII 2.1 and STIX 2.1"): a group's
statements are objects of that group's collection only, served only to its members; a
retraction, lapse, key withdrawal, expulsion or a signal leaving the caller's audience
is a last version with ``revoked: true`` for the callers who could see the object, and
nothing at all for the others; opinions carry no ``created_by_ref`` but the caller's
own. Each scenario is driven through the HTTP API and read like a threat-intelligence
platform reads: the collection list, ``added_after`` polling, every object by id, its
versions, the manifest and ``match[id]``.

The hostile reader. Indicator ids are deterministic (member, signal type, value), so a
competitor holding a stolen key can compute the id of an indicator for a value it
guesses and ask for it. Every path must then answer exactly as for an id nobody ever
served: the same status, the same body (with the id itself masked), the same TAXII
headers. Each scenario ends by walking every path as each outsider, with the ids and
collection ids it should not know taken from what the insiders were served.

A former group member. Once a member leaves a group, the group's collection is no
longer its to read: it disappears from the member's collection list, and its URL and
every object in it answer the same 404 as a collection that never existed. What the
member saw only through the group reaches it as nothing more: a TAXII client keeps the
last versions it polled, up to their ``valid_until``. (The pull feed, which has a
per-member audience, tombstones them; a TAXII collection is per group, and serving a
group's revocations to a non-member would tell it which values the group retracted
after it left.)
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.services.lapse import statements_lapse_sweep
from members.models import Member, SigningKey
from members.services import member_set_status, sharing_group_set_members, signing_key_revoke
from tests.factories import ACTOR, Party, make_group, make_party, pdq

pytestmark = pytest.mark.django_db

TAXII = "application/taxii+json;version=2.1"
ROOT = "/taxii2/forum/"
# Headers that describe what a response holds; each must match between an answer about
# a hidden object and one about an object nobody served.
TAXII_HEADERS = ("Content-Type", "X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last")


def now() -> int:
    return int(time.time())


class Tip:
    """A member's threat-intelligence platform polling the forum through TAXII.

    It lists its collections, polls each with ``added_after`` set to the last
    ``X-TAXII-Date-Added-Last`` it got (as MISP and OpenCTI do), and keeps the latest
    version of each object per collection. Every body it receives is kept for the leak
    scans.
    """

    def __init__(self, party: Party) -> None:
        self.party = party
        self.marks: dict[str, str | None] = {}
        self.store: dict[str, dict[str, dict[str, Any]]] = {}  # alias -> id -> object
        self.received: dict[str, list[dict[str, Any]]] = {}  # alias -> every object polled
        self.bodies: list[bytes] = []

    def get(self, path: str, **params: Any) -> Any:
        response = self.party.client.get(path, params, HTTP_ACCEPT=TAXII)
        self.bodies.append(response.content)
        return response

    def collections(self) -> dict[str, str]:
        """Collection id by alias, as listed for this member."""
        response = self.get(f"{ROOT}collections/")
        assert response.status_code == 200, response.content
        listed = response.json().get("collections", [])
        for c in listed:
            assert (c["can_read"], c["can_write"]) == (True, False), c
        return {c["alias"]: c["id"] for c in listed}

    def poll(self, alias: str, limit: int = 2) -> list[dict[str, Any]]:
        """Poll one collection until nothing is new; the objects received."""
        collection = self.collections()[alias]
        got: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": limit}
            if self.marks.get(alias):
                params["added_after"] = self.marks[alias]
            response = self.get(f"{ROOT}collections/{collection}/objects/", **params)
            assert response.status_code == 200, response.content
            objects = response.json().get("objects", [])
            if not objects:
                return got
            last = response["X-TAXII-Date-Added-Last"]
            assert last, "a page with objects names its last date_added"
            self.marks[alias] = last
            got.extend(objects)
            store = self.store.setdefault(alias, {})
            for obj in objects:
                self.received.setdefault(alias, []).append(obj)
                held = store.get(obj["id"])
                if held is None or _version(obj) >= _version(held):
                    store[obj["id"]] = obj

    def poll_all(self) -> None:
        for alias in self.collections():
            self.poll(alias)

    def indicator(self, alias: str, value: str, member: Party | None = None) -> dict[str, Any]:
        """The latest version held of the indicator for ``value`` (by ``member``)."""
        found = [
            o
            for o in self.store.get(alias, {}).values()
            if o["type"] == "indicator"
            and value in o.get("pattern", "")
            and (member is None or o.get("created_by_ref") == identity_of(self, member))
        ]
        assert len(found) == 1, (alias, value, found)
        return found[0]

    def indicators_for(self, value: str) -> dict[str, dict[str, Any]]:
        """Alias -> latest indicator held for ``value``, in every collection."""
        return {
            alias: o
            for alias, objects in self.store.items()
            for o in objects.values()
            if o["type"] == "indicator" and value in o.get("pattern", "")
        }

    def merged(self) -> dict[str, dict[str, Any]]:
        """The latest version of each object across collections, as a platform that
        merges objects by id (OpenCTI) holds it; two different versions with the same
        ``modified`` would leave it guessing, so there must be none."""
        out: dict[str, dict[str, Any]] = {}
        for objects in self.store.values():
            for obj in objects.values():
                held = out.get(obj["id"])
                if held is not None and _version(held) == _version(obj):
                    assert held == obj, ("two versions, one modified", held, obj)
                if held is None or _version(obj) > _version(held):
                    out[obj["id"]] = obj
        return out

    def live(self, alias: str) -> set[str]:
        """Values of the indicators held un-revoked in a collection."""
        return {
            _pattern_value(o)
            for o in self.store.get(alias, {}).values()
            if o["type"] == "indicator" and not o.get("revoked")
        }

    def versions(self, alias: str, object_id: str) -> list[dict[str, Any]]:
        """Every version of an object, from the object endpoint with match[version]=all."""
        collection = self.collections()[alias]
        response = self.get(
            f"{ROOT}collections/{collection}/objects/{object_id}/", **{"match[version]": "all"}
        )
        assert response.status_code == 200, response.content
        objects = response.json()["objects"]
        listed = self.get(f"{ROOT}collections/{collection}/objects/{object_id}/versions/")
        assert listed.status_code == 200, listed.content
        assert sorted(listed.json()["versions"]) == sorted(o["modified"] for o in objects)
        return sorted(objects, key=lambda o: o["modified"])


def _version(obj: dict[str, Any]) -> str:
    """An object's version: ``modified``, or ``created`` for objects that have none
    (marking definitions)."""
    return str(obj.get("modified") or obj["created"])


def _pattern_value(indicator: dict[str, Any]) -> str:
    match = re.search(r"= '(.*)'\]$", indicator["pattern"])
    assert match, indicator["pattern"]
    return match.group(1).replace("\\'", "'").replace("\\\\", "\\")


def identity_of(tip: Tip, party: Party) -> str:
    """The identity id of ``party``, which ``tip`` must have been served."""
    from exchange.client import stix

    wanted = stix.identity_id(party.slug)
    served = {o["id"] for objects in tip.store.values() for o in objects.values()}
    assert wanted in served, (party.slug, tip.party.slug)
    return wanted


def _mask(body: bytes, *secrets_: str) -> bytes:
    for s in secrets_:
        body = body.replace(s.encode(), b"<masked>")
    return body


def _answer(response: Any, *mask: str) -> tuple[int, bytes, tuple[str | None, ...]]:
    return (
        response.status_code,
        _mask(response.content, *mask),
        tuple(response.get(h) for h in TAXII_HEADERS),
    )


def assert_no_leak(
    tip: Tip,
    *,
    secrets_: Iterable[str],
    hidden_ids: Iterable[str] = (),
    hidden_collections: Iterable[str] = (),
) -> None:
    """Walk every TAXII path as ``tip``'s member: no body holds a secret string (a value
    or a JWS), and a hidden object or collection id is answered exactly like one nobody
    ever served."""
    secrets_ = [s for s in secrets_ if s]
    hidden_ids = list(hidden_ids)
    collections = tip.collections()
    before = len(tip.bodies)
    for alias, collection in collections.items():
        base = f"{ROOT}collections/{collection}/"
        assert tip.get(base).status_code == 200
        for params in ({}, {"match[version]": "all"}, {"match[version]": "first"}):
            assert tip.get(f"{base}objects/", **params).status_code == 200
            assert tip.get(f"{base}manifest/", **params).status_code == 200
        listed = tip.get(f"{base}objects/", **{"match[version]": "all"}).json()
        for obj_id in {o["id"] for o in listed.get("objects", [])}:
            assert tip.get(f"{base}objects/{obj_id}/").status_code == 200
            assert tip.get(f"{base}objects/{obj_id}/versions/").status_code == 200
        for obj_id in hidden_ids:
            kind = obj_id.split("--")[0]
            nobody = f"{kind}--{uuid.uuid4()}"
            for suffix, params in (
                ("objects/{}/", {}),
                ("objects/{}/", {"match[version]": "all"}),
                ("objects/{}/versions/", {}),
                ("objects/", {"match[id]": "{}"}),
                ("objects/", {"match[id]": "{}", "match[version]": "all"}),
                ("manifest/", {"match[id]": "{}"}),
            ):
                answers = []
                for oid in (obj_id, nobody):
                    path = base + suffix.format(oid)
                    filled = {k: v.format(oid) for k, v in params.items()}
                    answers.append(_answer(tip.get(path, **filled), oid))
                assert answers[0] == answers[1], (alias, suffix, params, answers)
                if suffix.startswith("objects/{}"):
                    assert answers[0][0] == 404, (alias, suffix, answers[0])
    for collection in hidden_collections:
        nobody = str(uuid.uuid4())
        for suffix in ("", "objects/", "manifest/", f"objects/indicator--{uuid.uuid4()}/"):
            answers = [
                _answer(tip.get(f"{ROOT}collections/{c}/{suffix}"), c) for c in (collection, nobody)
            ]
            assert answers[0] == answers[1], (suffix, answers)
            assert answers[0][0] == 404
    for body in [*tip.bodies[:before], *tip.bodies[before:]]:
        for s in secrets_:
            assert s.encode() not in body, (tip.party.slug, s[:20])


# --- scenarios ------------------------------------------------------------------------


def test_group_statements_only_in_the_group_collection_and_only_for_members() -> None:
    """A group statement is an indicator in the group's collection for its members, not
    in their forum collection; an outsider lists no such collection, and its id, the
    indicator's id and the value answer as if they did not exist."""
    a, b, c = make_party(), make_party(), make_party()
    make_group("gtx", a, b)
    secret, open_ = pdq(), pdq()
    token = a.statement("pdq", secret, audience="group:gtx")
    a.submit(token, a.statement("pdq", open_))
    tb, tc = Tip(b), Tip(c)
    assert set(tb.collections()) == {"forum", "group-gtx"}
    assert set(tc.collections()) == {"forum"}
    tb.poll_all()
    tc.poll_all()
    assert tb.live("group-gtx") == {secret}
    assert tb.live("forum") == tc.live("forum") == {open_}
    indicator = tb.indicator("group-gtx", secret)
    assert indicator["created_by_ref"] == identity_of(tb, a)
    assert_no_leak(
        tc,
        secrets_=[secret, token],
        hidden_ids=[indicator["id"]],
        hidden_collections=[tb.collections()["group-gtx"]],
    )
    # Nor is the group's indicator reachable through the forum collection by a member.
    assert_no_leak(tb, secrets_=[], hidden_ids=[])
    forum = tb.collections()["forum"]
    for suffix in ("", "versions/"):
        r = tb.get(f"{ROOT}collections/{forum}/objects/{indicator['id']}/{suffix}")
        assert r.status_code == 404, r.content


def test_retraction_is_a_revoked_last_version_for_those_who_saw_it() -> None:
    """Retracting a group statement gives its members a last version with revoked true
    (and older versions before it); an outsider, before and after, gets nothing; a
    member that joins after the retraction gets nothing either."""
    a, b, c = make_party(), make_party(), make_party()
    group = make_group("rtx", a, b)
    secret, forum_value = pdq(), pdq()
    token = a.statement("pdq", secret, audience="group:rtx", iat=now() - 10)
    a.submit(token, a.statement("pdq", forum_value, iat=now() - 10))
    tb, tc = Tip(b), Tip(c)
    tb.poll_all()
    tc.poll_all()
    first = tb.indicator("group-rtx", secret)
    forum_first = tc.indicator("forum", forum_value)
    a.submit(
        a.statement("pdq", secret, op="retract"),
        a.statement("pdq", forum_value, op="retract"),
    )
    tb.poll_all()
    tc.poll_all()
    last = tb.indicator("group-rtx", secret)
    assert last["id"] == first["id"]
    assert last.get("revoked") is True and last["modified"] > first["modified"]
    versions = tb.versions("group-rtx", first["id"])
    assert [v.get("revoked", False) for v in versions][-1] is True
    assert not any(v.get("revoked") for v in versions[:-1])
    # The forum retraction reaches the outsider as a revoked version too.
    assert tc.indicator("forum", forum_value).get("revoked") is True
    assert tc.indicator("forum", forum_value)["id"] == forum_first["id"]
    assert_no_leak(
        tc,
        secrets_=[secret, token],
        hidden_ids=[first["id"]],
        hidden_collections=[tb.collections()["group-rtx"]],
    )
    late = make_party()
    sharing_group_set_members(group=group, members=[a.member, b.member, late.member], actor=ACTOR)
    tl = Tip(late)
    tl.poll_all()
    assert tl.indicators_for(secret) == {} and tl.indicators_for(forum_value) == {}
    assert_no_leak(tl, secrets_=[secret, token, forum_value], hidden_ids=[first["id"]])


def test_lapse_is_revoked_for_early_readers_and_nothing_for_late_ones() -> None:
    """An assertion that lapses is a revoked version for a reader who polled it before,
    and nothing for a member activated after the lapse."""
    a, early = make_party(), make_party()
    value = pdq()
    exp = now() + 3
    a.submit(a.statement("pdq", value, iat=now() - 30, exp=exp))
    te = Tip(early)
    te.poll_all()
    indicator = te.indicator("forum", value)
    assert indicator["valid_until"].startswith(
        datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    )
    time.sleep(max(0.0, exp - time.time()) + 1.1)
    late = Tip(make_party())
    late.poll_all()
    assert late.indicators_for(value) == {}
    statements_lapse_sweep()
    te.poll_all()
    late.poll_all()
    assert te.indicator("forum", value).get("revoked") is True
    assert late.indicators_for(value) == {}
    assert_no_leak(late, secrets_=[value], hidden_ids=[indicator["id"]])


def test_leaving_a_group_removes_its_collection() -> None:
    """After leaving, the group's collection is gone from the member's list and its URL,
    objects, versions and manifest answer the same 404 as a collection that never
    existed; what the member still sees through the forum stays in its forum
    collection. Rejoining lists the collection again with the group's current objects."""
    a, b = make_party(), make_party()
    group = make_group("ltx", a, b)
    only_group, also_forum = pdq(), pdq()
    a.submit(
        a.statement("pdq", only_group, audience="group:ltx"),
        a.statement("pdq", also_forum, audience="group:ltx"),
    )
    c = make_party()
    c.submit(c.statement("pdq", also_forum))
    tb = Tip(b)
    tb.poll_all()
    group_collection = tb.collections()["group-ltx"]
    group_indicator = tb.indicator("group-ltx", only_group)
    assert tb.live("group-ltx") == {only_group, also_forum}
    assert tb.live("forum") == {also_forum}

    sharing_group_set_members(group=group, members=[a.member], actor=ACTOR)
    assert set(tb.collections()) == {"forum"}
    tb.poll_all()
    assert tb.live("forum") == {also_forum}
    assert tb.indicator("forum", also_forum, c)["created_by_ref"] == identity_of(tb, c)
    assert_no_leak(
        tb,
        secrets_=[],
        hidden_ids=[group_indicator["id"]],
        hidden_collections=[group_collection],
    )

    later = pdq()
    a.submit(a.statement("pdq", later, audience="group:ltx"))
    sharing_group_set_members(group=group, members=[a.member, b.member], actor=ACTOR)
    assert tb.collections()["group-ltx"] == group_collection
    tb.marks.pop("group-ltx")
    tb.store.pop("group-ltx")
    tb.poll("group-ltx")
    assert tb.live("group-ltx") == {only_group, also_forum, later}


def test_expelling_a_submitter_revokes_its_indicators() -> None:
    """Expulsion withdraws the member's statements: a revoked last version for every
    reader who saw them, in each collection they were in; the expelled member's key no
    longer reads TAXII."""
    a, b, c = make_party(), make_party(), make_party()
    make_group("etx", a, b)
    forum_value, group_value = pdq(), pdq()
    a.submit(a.statement("pdq", forum_value), a.statement("pdq", group_value, audience="group:etx"))
    tb, tc = Tip(b), Tip(c)
    tb.poll_all()
    tc.poll_all()
    group_indicator = tb.indicator("group-etx", group_value)
    member_set_status(member=a.member, status=Member.Status.EXPELLED, actor=ACTOR)
    tb.poll_all()
    tc.poll_all()
    assert tb.indicator("forum", forum_value).get("revoked") is True
    assert tb.indicator("group-etx", group_value).get("revoked") is True
    assert tc.indicator("forum", forum_value).get("revoked") is True
    assert tb.live("forum") == tb.live("group-etx") == tc.live("forum") == set()
    assert_no_leak(
        tc,
        secrets_=[group_value],
        hidden_ids=[group_indicator["id"]],
        hidden_collections=[tb.collections()["group-etx"]],
    )
    assert Tip(a).get(ROOT).status_code == 403


def test_key_compromise_revokes_what_the_thief_sent_and_brings_back_the_original() -> None:
    """Revoking a key as compromised since T: the thief's backdated statement (received
    after T) becomes a revoked version; the member's statement from before T stays; where
    the thief replaced the member's own statement, the original comes back as a later
    version carrying the original JWS."""
    acme, globex = make_party(), make_party()
    kept, stolen, relabelled = pdq(), pdq(), pdq()
    t = now()
    original = acme.statement("pdq", relabelled, iat=t - 20)
    acme.submit(acme.statement("pdq", kept, iat=t - 20), original)
    compromise = now() + 1
    while time.time() < compromise:
        time.sleep(0.02)
    acme.submit(
        acme.statement("pdq", stolen, iat=compromise - 3600),
        acme.statement("pdq", relabelled, labels=["incitement"], iat=t - 10),
    )
    tg = Tip(globex)
    tg.poll_all()
    assert tg.live("forum") == {kept, stolen, relabelled}
    assert tg.indicator("forum", relabelled)["labels"] == ["incitement"]
    signing_key_revoke(
        key=SigningKey.objects.get(kid=acme.kid),
        compromised_since=datetime.fromtimestamp(compromise, UTC),
        actor=ACTOR,
    )
    tg.poll_all()
    assert tg.indicator("forum", stolen).get("revoked") is True
    assert tg.live("forum") == {kept, relabelled}
    back = tg.indicator("forum", relabelled)
    assert back["labels"] == ["recruitment"]
    assert original in str(back)
    late = Tip(make_party())
    late.poll_all()
    assert late.live("forum") == {kept, relabelled}
    assert late.indicators_for(stolen) == {}


def test_statement_moving_from_group_to_forum_and_back() -> None:
    """A statement re-addressed from a group to the forum reaches outsiders in the forum
    collection; moved back, outsiders get a revoked version and the group collection
    has it again. A member that sees it in both collections gets no revocation from the
    one it left (the same object is live in the other, and STIX revocation is final), so
    merging objects by id across its collections (as OpenCTI does) it holds the latest
    version live throughout. At no point does an outsider see the group's JWS."""
    a, b, c = make_party(), make_party(), make_party()
    make_group("mtx", a, b)
    value = pdq()
    t = now()
    in_group = a.statement("pdq", value, audience="group:mtx", iat=t - 30)
    a.submit(in_group)
    tb, tc = Tip(b), Tip(c)
    tb.poll_all()
    tc.poll_all()
    assert tb.live("group-mtx") == {value} and tc.indicators_for(value) == {}
    indicator_id = tb.indicator("group-mtx", value)["id"]
    assert_no_leak(tc, secrets_=[value, in_group], hidden_ids=[indicator_id])

    to_forum = a.statement("pdq", value, audience="forum", iat=t - 20)
    a.submit(to_forum)
    tb.poll_all()
    tc.poll_all()
    assert tc.live("forum") == {value} and tb.live("forum") == {value}
    assert not tb.merged()[indicator_id].get("revoked")
    assert to_forum in str(tb.merged()[indicator_id])

    back = a.statement("pdq", value, audience="group:mtx", iat=t - 10)
    a.submit(back)
    tb.poll_all()
    tc.poll_all()
    assert tc.indicator("forum", value).get("revoked") is True
    assert tc.live("forum") == set()
    assert tb.live("group-mtx") == {value}
    assert not tb.merged()[indicator_id].get("revoked")
    assert back in str(tb.merged()[indicator_id])
    assert_no_leak(tc, secrets_=[in_group, back])


def _put_opinion(party: Party, value: str, category: str) -> None:
    response = party.client.put(
        f"/api/v1/opinions/pdq/{value}", {"category": category}, format="json"
    )
    assert response.status_code == 200, response.content


def _opinions(tip: Tip, alias: str) -> list[dict[str, Any]]:
    return [o for o in tip.store.get(alias, {}).values() if o["type"] == "opinion"]


def test_opinions_are_anonymous_but_the_callers_own() -> None:
    """Opinion objects carry no created_by_ref, except the caller's own opinion; they
    follow the opinion's changes as new versions (the caller's own with its identity
    served beside it, so the reference resolves); opinions of members outside the
    reader's audiences on a signal are not served to it; an opinion on a group signal
    never reaches an outsider."""
    a, b, c, d = (make_party() for _ in range(4))
    make_group("otx", a, b)
    make_group("other", c, d)
    shared, secret = pdq(), pdq()
    a.submit(
        a.statement("pdq", shared, audience="group:otx"),
        a.statement("pdq", secret, audience="group:otx"),
    )
    c.submit(c.statement("pdq", shared, audience="group:other"))
    _put_opinion(b, shared, "negative")
    _put_opinion(b, secret, "positive")
    _put_opinion(d, shared, "investigation")

    ta, tb, td = Tip(a), Tip(b), Tip(d)
    for t in (ta, tb, td):
        t.poll_all()
    a_ops = _opinions(ta, "group-otx")
    b_ops = _opinions(tb, "group-otx")
    assert sorted(o["opinion"] for o in a_ops) == ["agree", "disagree"]
    assert all("created_by_ref" not in o for o in a_ops), a_ops
    assert sorted(o["opinion"] for o in b_ops) == ["agree", "disagree"]
    assert {o.get("created_by_ref") for o in b_ops} == {identity_of(tb, b)}
    indicator = ta.indicator("group-otx", shared)
    assert any(indicator["id"] in o["object_refs"] for o in a_ops)
    # d (group "other") sees its own opinion on c's indicator, none of b's.
    d_ops = _opinions(td, "group-other")
    assert [(o["opinion"], o.get("created_by_ref")) for o in d_ops] == [
        ("neutral", identity_of(td, d))
    ]
    b_opinion_ids = {o["id"] for o in b_ops}
    assert_no_leak(
        td,
        secrets_=[secret],
        hidden_ids=[*b_opinion_ids, tb.indicator("group-otx", secret)["id"], indicator["id"]],
    )

    _put_opinion(b, shared, "positive")
    ta.poll_all()
    changed = [o for o in _opinions(ta, "group-otx") if indicator["id"] in o["object_refs"]]
    assert [o["opinion"] for o in changed] == ["agree"]
    assert (
        changed[0]["modified"] > next(o for o in a_ops if o["id"] == changed[0]["id"])["modified"]
    )
    versions = ta.versions("group-otx", changed[0]["id"])
    assert versions[-1]["opinion"] == "agree"
    assert all("created_by_ref" not in v for v in versions)


@pytest.mark.parametrize("guess", ["indicator", "opinion"])
def test_a_competitor_computing_ids_gets_the_plain_404(guess: str) -> None:
    """Ids are deterministic: a competitor computes the indicator id (or an opinion id)
    of a value it guesses, for a member of a group it is not in. Object, versions,
    match[id] and manifest answer it exactly as for an id nobody served, in every
    collection of the competitor, before and after the value is retracted."""
    from exchange.client import stix

    a, b, competitor = make_party(), make_party(), make_party()
    make_group("ctx", a, b)
    value = pdq()
    a.submit(a.statement("pdq", value, audience="group:ctx", iat=now() - 10))
    _put_opinion(b, value, "negative")
    tb = Tip(b)
    tb.poll_all()
    served = tb.indicator("group-ctx", value)
    computed = stix.indicator_id(member=a.slug, signal_type="pdq", value=value)
    assert computed == served["id"]  # the guess is right: only the server can refuse it
    hidden = [computed]
    if guess == "opinion":
        hidden = [o["id"] for o in _opinions(tb, "group-ctx")]
        assert hidden
    tc = Tip(competitor)
    tc.poll_all()
    assert_no_leak(tc, secrets_=[value], hidden_ids=hidden)
    a.submit(a.statement("pdq", value, op="retract"))
    tc.poll_all()
    assert_no_leak(tc, secrets_=[value], hidden_ids=hidden)


# --- random histories, with the pull feed as the reference ----------------------------

N_MEMBERS, N_VALUES, N_GROUPS = 4, 4, 2
KINDS = ("assert", "assert", "retract", "move", "opinion", "join", "leave", "expel", "read")


def _feed_follow(party: Party, state: dict[str, Any]) -> None:
    """Follow ``party``'s pull feed to its end into ``state["replica"]``."""
    from exchange.selectors import feed_page

    while True:
        changes, state["cursor"], has_more = feed_page(
            member_id=party.member.pk, cursor=state.get("cursor"), limit=1000
        )
        for change in changes:
            if change["deleted"]:
                state["replica"].pop(change["value"], None)
            else:
                state["replica"][change["value"]] = change
        if not has_more:
            return


def _taxii_read(tip: Tip, listed_before: set[str]) -> set[str]:
    """Poll every collection listed now; a collection that disappeared and came back
    is read again from the start, as a platform re-adding a feed does."""
    listed = set(tip.collections())
    for alias in listed - listed_before:
        tip.marks.pop(alias, None)
        tip.store.pop(alias, None)
    for alias in sorted(listed):
        tip.poll(alias, limit=3)
    return listed


def _live_pairs(tip: Tip, listed: set[str]) -> set[tuple[str, str]]:
    """(identity id, value) of the indicators held live, merged by id over the
    collections listed now (a later version in any of them wins)."""
    merged: dict[str, dict[str, Any]] = {}
    for alias in listed:
        for obj in tip.store.get(alias, {}).values():
            held = merged.get(obj["id"])
            if held is None or _version(obj) > _version(held):
                merged[obj["id"]] = obj
    return {
        (o["created_by_ref"], _pattern_value(o))
        for o in merged.values()
        if o["type"] == "indicator" and not o.get("revoked")
    }


@settings(
    max_examples=int(os.environ.get("CORDIALE_TAXII_PROPERTY_EXAMPLES", "10")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.integers(0, N_MEMBERS - 1),
            st.integers(0, N_VALUES - 1),
            st.integers(0, N_GROUPS),
        ),
        min_size=4,
        max_size=25,
    ),
    initial=st.lists(st.booleans(), min_size=N_MEMBERS * N_GROUPS, max_size=N_MEMBERS * N_GROUPS),
)
def test_random_histories_through_taxii_match_the_feed(
    ops: list[tuple[str, int, int, int]], initial: list[bool]
) -> None:
    """Random asserts (forum or group), retractions, audience moves, opinions, joins,
    leaves and expulsions, with every member reading TAXII and the pull feed at the
    same points. Each read: every value in any TAXII body of a member is one it could
    see at some point (checked after every step through the selectors); the indicators
    it holds live, merged by id over its listed collections, are exactly the
    statements of its pull-feed replica; its collections are the forum and its groups."""
    from exchange.client import stix
    from exchange.selectors import Reader, visible_signal_ids

    with transaction.atomic():
        parties = [make_party() for _ in range(N_MEMBERS)]
        groups, in_group = [], []
        for g in range(N_GROUPS):
            members = {i for i in range(N_MEMBERS) if initial[g * N_MEMBERS + i]}
            in_group.append(members)
            groups.append(make_group(f"h{g}-{pdq()[:8]}", *[parties[i] for i in members]))
        values = [pdq() for _ in range(N_VALUES)]
        expelled: set[int] = set()
        ever: list[set[str]] = [set() for _ in parties]
        tips = [Tip(p) for p in parties]
        listed: list[set[str]] = [set() for _ in parties]
        feeds: list[dict[str, Any]] = [{"replica": {}} for _ in parties]
        iat = now() - 1000

        def audience_of(m: int, g: int) -> str:
            if g == N_GROUPS or m not in in_group[g]:
                return "forum"
            return f"group:{groups[g].slug}"

        def read(m: int) -> None:
            seen = len(tips[m].bodies)
            listed[m] = _taxii_read(tips[m], listed[m])
            _feed_follow(parties[m], feeds[m])
            aliases = {"forum"} | {
                f"group-{groups[g].slug}" for g in range(N_GROUPS) if m in in_group[g]
            }
            assert listed[m] == aliases
            for body in tips[m].bodies[seen:]:
                for value in set(values) - ever[m]:
                    assert value.encode() not in body, f"member {m} was served {value}"
            expected = {
                (stix.identity_id(s["member"]), value)
                for value, snap in feeds[m]["replica"].items()
                if value in values
                for s in snap["statements"]
            }
            got = {pair for pair in _live_pairs(tips[m], listed[m]) if pair[1] in values}
            assert got == expected, (m, got ^ expected)

        for kind, m, v, g in ops:
            iat += 1
            party = parties[m]
            if kind in ("assert", "move") and m not in expelled:
                party.submit(party.statement("pdq", values[v], audience=audience_of(m, g), iat=iat))
            elif kind == "retract" and m not in expelled:
                party.submit(party.statement("pdq", values[v], op="retract", iat=iat))
            elif kind == "opinion" and m not in expelled and values[v] in feeds[m]["replica"]:
                _put_opinion(party, values[v], ("positive", "negative", "investigation")[g % 3])
            elif kind in ("join", "leave") and g < N_GROUPS and m not in expelled:
                members = in_group[g] | {m} if kind == "join" else in_group[g] - {m}
                sharing_group_set_members(
                    group=groups[g],
                    members=[parties[i].member for i in sorted(members)],
                    actor=ACTOR,
                )
                in_group[g] = members
            elif kind == "expel" and m not in expelled and v == 0:
                member_set_status(member=party.member, status=Member.Status.EXPELLED, actor=ACTOR)
                expelled.add(m)
            elif kind == "read" and m not in expelled:
                read(m)
            for i, p in enumerate(parties):
                if i not in expelled:
                    ever[i] |= set(
                        visible_signal_ids(
                            reader=Reader(p.member.pk), signal_type="pdq", values=values
                        )
                    )
        for m in range(N_MEMBERS):
            if m not in expelled:
                read(m)
        transaction.set_rollback(True)

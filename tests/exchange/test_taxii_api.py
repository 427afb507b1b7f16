"""The TAXII 2.1 endpoints through the test client: resources, collections per member,
paging, visibility, revocation, and the errors TAXII clients get."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from exchange.client import stix
from exchange.services.opinions import opinion_set
from exchange.taxii.selectors import STATIC_OBJECTS, collection_id
from tests.exchange.taxii_support import (
    ROOT,
    TAXII,
    all_objects,
    assert_valid,
    collection_url,
    taxii_get,
)
from tests.factories import make_group, make_party, pdq, random_hex

pytestmark = pytest.mark.django_db

FORUM = collection_id(0)


def indicators(objects: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    """The indicators among ``objects``."""
    return [o for o in objects if o["type"] == "indicator"]


def test_discovery_root_and_collections() -> None:
    """Discovery names one API root; the root says TAXII 2.1; a member sees the forum and
    its own groups' collections, not others'."""
    acme, beta, gamma = make_party(), make_party(), make_party()
    group = make_group("pair", acme, beta)
    make_group("other", beta, gamma)
    discovery = taxii_get(acme, "/taxii2/")
    assert discovery.status_code == 200
    assert discovery["Content-Type"] == TAXII
    assert discovery.json()["api_roots"] == ["http://testserver/taxii2/forum/"]
    assert discovery.json()["default"] == "http://testserver/taxii2/forum/"
    root = taxii_get(acme, ROOT).json()
    assert root["versions"] == [TAXII]
    listed = taxii_get(acme, f"{ROOT}collections/").json()["collections"]
    assert [c["alias"] for c in listed] == ["forum", "group-pair"]
    assert listed[1]["id"] == collection_id(group.pk)
    assert all(c["can_read"] and not c["can_write"] for c in listed)
    gamma_listed = taxii_get(gamma, f"{ROOT}collections/").json()["collections"]
    assert [c["alias"] for c in gamma_listed] == ["forum", "group-other"]
    # Same 404 for a group collection of others as for an id nobody uses.
    hidden = taxii_get(gamma, collection_url(collection_id(group.pk)))
    unknown = taxii_get(gamma, collection_url("7b8f6a58-8a8b-4a57-8f1a-0a0a0a0a0a0a"))
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == unknown.json()
    assert hidden.json()["http_status"] == "404"


def test_objects_map_statements_and_page_with_next() -> None:
    """Each statement is an indicator carrying its JWS; small pages follow ``next`` to
    the end; everything served validates."""
    acme, beta = make_party(), make_party()
    values = [pdq() for _ in range(5)]
    tokens = {v: acme.statement("pdq", v, tlp="amber") for v in values}
    acme.submit(*tokens.values())
    md5 = random_hex(32)
    beta.submit(beta.statement("md5", md5, tlp="red", exp=int(time.time()) + 3600))
    objects = all_objects(beta, FORUM, limit=2)
    assert [o["id"] for o in objects[: len(STATIC_OBJECTS)]] == [o["id"] for o in STATIC_OBJECTS]
    found = indicators(objects)
    assert len(found) == 6
    by_id = {o["id"]: o for o in found}
    for value, token in tokens.items():
        obj = by_id[stix.indicator_id(acme.slug, "pdq", value)]
        assert obj["extensions"][stix.JWS_EXTENSION_ID]["jws"] == token
        assert obj["created_by_ref"] == stix.identity_id(acme.slug)
        assert obj["object_marking_refs"] == [stix.TLP_MARKINGS["amber"]]
    assert "valid_until" in by_id[stix.indicator_id(beta.slug, "md5", md5)]
    identities = {o["id"] for o in objects if o["type"] == "identity"}
    assert {stix.identity_id(acme.slug), stix.identity_id(beta.slug)} <= identities


def test_added_after_polls_only_later_changes() -> None:
    """Polling with the last X-TAXII-Date-Added-Last returns only what came later."""
    acme, reader = make_party(), make_party()
    first = pdq()
    acme.submit(acme.statement("pdq", first))
    response = taxii_get(reader, collection_url(FORUM))
    last = response["X-TAXII-Date-Added-Last"]
    assert response["X-TAXII-Date-Added-First"] <= last
    assert taxii_get(reader, collection_url(FORUM), added_after=last).json() == {"more": False}
    second = pdq()
    acme.submit(acme.statement("pdq", second))
    body = taxii_get(reader, collection_url(FORUM), added_after=last).json()
    patterns = [o["pattern"] for o in indicators(body["objects"])]
    assert patterns == [stix.pattern_for("pdq", second)]


def test_group_objects_only_for_members_and_never_in_the_forum() -> None:
    """A group statement is in the group's collection, not the forum's; an outsider
    cannot read the group's collection at all."""
    acme, beta, outsider = make_party(), make_party(), make_party()
    group = make_group("g1", acme, beta)
    secret = pdq()
    acme.submit(acme.statement("pdq", secret, audience="group:g1"))
    group_objects = all_objects(beta, collection_id(group.pk))
    assert [o["pattern"] for o in indicators(group_objects)] == [stix.pattern_for("pdq", secret)]
    for party in (beta, outsider):
        assert secret not in str(all_objects(party, FORUM))
    assert taxii_get(outsider, collection_url(collection_id(group.pk))).status_code == 404


def test_retraction_is_a_revoked_last_version_for_those_who_saw_it() -> None:
    """A retraction serves a revoked version, later than the assertion, to a reader of the
    audience; a group statement's retraction reaches no outsider."""
    acme, reader = make_party(), make_party()
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=int(time.time()) - 10))
    before = indicators(all_objects(reader, FORUM))
    assert len(before) == 1 and "revoked" not in before[0]
    last = taxii_get(reader, collection_url(FORUM))["X-TAXII-Date-Added-Last"]
    acme.submit(acme.statement("pdq", value, op="retract"))
    after = indicators(taxii_get(reader, collection_url(FORUM), added_after=last).json()["objects"])
    assert [o["id"] for o in after] == [before[0]["id"]]
    assert after[0]["revoked"] is True
    assert after[0]["modified"] > before[0]["modified"]
    assert after[0]["created"] == before[0]["created"]
    assert_valid(after)


def test_group_retraction_reaches_no_outsider() -> None:
    """An outsider never sees a group's object, not even revoked, in any collection."""
    acme, outsider = make_party(), make_party()
    make_group("g2", acme)
    value = pdq()
    acme.submit(acme.statement("pdq", value, audience="group:g2"))
    acme.submit(acme.statement("pdq", value, op="retract"))
    assert indicators(all_objects(outsider, FORUM)) == []


def test_moving_a_statement_to_a_group_revokes_it_in_the_forum() -> None:
    """A statement re-addressed from the forum to a group is revoked in the forum's
    collection and appears in the group's."""
    acme, member, outsider = make_party(), make_party(), make_party()
    group = make_group("g3", acme, member)
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=int(time.time()) - 10))
    acme.submit(acme.statement("pdq", value, audience="group:g3"))
    forum_view = indicators(all_objects(outsider, FORUM))
    assert len(forum_view) == 1 and forum_view[0]["revoked"] is True
    group_view = indicators(all_objects(member, collection_id(group.pk)))
    assert len(group_view) == 1 and "revoked" not in group_view[0]


def test_opinions_are_anonymous_but_own() -> None:
    """Opinions are opinion objects on the indicators, attributed only to their author's
    own reader."""
    acme, beta, reader = make_party(), make_party(), make_party()
    value = random_hex(64)
    acme.submit(acme.statement("sha256", value))
    opinion_set(
        member=beta.member,
        signal_type="sha256",
        value=value,
        category="negative",
        tags=["fp"],
        reason="benign",
    )
    theirs = [o for o in all_objects(reader, FORUM) if o["type"] == "opinion"]
    assert len(theirs) == 1
    assert theirs[0]["opinion"] == "disagree" and "created_by_ref" not in theirs[0]
    assert "explanation" not in theirs[0]
    own = [o for o in all_objects(beta, FORUM) if o["type"] == "opinion"]
    assert own[0]["created_by_ref"] == stix.identity_id(beta.slug)
    assert own[0]["explanation"] == "benign" and own[0]["id"] == theirs[0]["id"]


def test_filters_manifest_object_and_versions() -> None:
    """match[type], match[id], the manifest, one object by id and its versions."""
    acme, reader = make_party(), make_party()
    value = pdq()
    acme.submit(acme.statement("pdq", value))
    wanted = stix.indicator_id(acme.slug, "pdq", value)
    only = taxii_get(reader, collection_url(FORUM), **{"match[type]": "indicator"}).json()
    assert [o["id"] for o in only["objects"]] == [wanted]
    by_id = taxii_get(reader, collection_url(FORUM), **{"match[id]": wanted}).json()
    assert [o["id"] for o in by_id["objects"]] == [wanted]
    one = taxii_get(reader, collection_url(FORUM, f"objects/{wanted}/")).json()
    assert [o["id"] for o in one["objects"]] == [wanted]
    versions = taxii_get(reader, collection_url(FORUM, f"objects/{wanted}/versions/")).json()
    assert versions["versions"] == [one["objects"][0]["modified"]]
    manifest = taxii_get(reader, collection_url(FORUM, "manifest/")).json()["objects"]
    entry = next(e for e in manifest if e["id"] == wanted)
    assert entry["version"] == one["objects"][0]["modified"]
    assert entry["media_type"] == "application/stix+json;version=2.1"
    none = taxii_get(reader, collection_url(FORUM), **{"match[spec_version]": "2.0"}).json()
    assert none == {"more": False}


def test_authentication_bearer_token_basic_and_refusals() -> None:
    """Bearer, Token and Basic (key as password) work; no key 401, unknown key 401,
    a key without read 403, a suspended member 403, a bad Accept 406."""
    acme = make_party()
    path = f"{ROOT}collections/"
    for header in (
        f"Bearer {acme.api_key}",
        f"Token {acme.api_key}",
        "Basic " + base64.b64encode(f"anyone:{acme.api_key}".encode()).decode(),
    ):
        acme.client.credentials(HTTP_AUTHORIZATION=header)
        assert taxii_get(acme, path).status_code == 200, header
    acme.client.credentials()
    anonymous = taxii_get(acme, path)
    assert anonymous.status_code == 401
    assert anonymous["Content-Type"] == TAXII and anonymous.json()["http_status"] == "401"
    assert "WWW-Authenticate" in anonymous
    acme.client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"x:nope").decode())
    assert taxii_get(acme, path).status_code == 401
    submit_only = make_party(scopes=["submit"])
    assert taxii_get(submit_only, path).status_code == 403
    reader = make_party()
    from members.services import member_set_status

    member_set_status(member=reader.member, status="suspended", actor="test")
    assert taxii_get(reader, path).status_code == 403
    other = make_party()
    refused = other.client.get(path, HTTP_ACCEPT="application/json")
    assert refused.status_code == 406 and refused.json()["http_status"] == "406"
    assert (
        other.client.get(path, HTTP_ACCEPT="application/taxii+json;version=2.0").status_code == 406
    )
    assert other.client.get(path, HTTP_ACCEPT="*/*").status_code == 200


@pytest.mark.parametrize(
    ("param", "value", "code"),
    [
        ("added_after", "yesterday", "invalid_added_after"),
        ("added_after", "2025-01-01T00:00:00", "invalid_added_after"),
        ("limit", "0", "invalid_limit"),
        ("limit", "-3", "invalid_limit"),
        ("limit", "ten", "invalid_limit"),
        ("next", "garbage!", "invalid_next"),
        ("next", "eyJ2IjoxfQ", "invalid_next"),
        ("match[version]", "sometime", "invalid_version"),
    ],
)
def test_bad_parameters_are_taxii_errors(param: str, value: str, code: str) -> None:
    """A bad added_after, limit, next or version is a 400 TAXII error message."""
    reader = make_party()
    response = taxii_get(reader, collection_url(FORUM), **{param: value})
    assert response.status_code == 400
    assert response["Content-Type"] == TAXII
    body = response.json()
    assert body["http_status"] == "400" and body["error_code"] == code and body["title"]


def test_next_of_another_collection_is_refused() -> None:
    """A ``next`` token is bound to its collection."""
    acme, beta = make_party(), make_party()
    group = make_group("g4", acme, beta)
    acme.submit(*(acme.statement("pdq", pdq()) for _ in range(3)))
    token = taxii_get(beta, collection_url(FORUM), limit=1).json()["next"]
    refused = taxii_get(beta, collection_url(collection_id(group.pk)), next=token)
    assert refused.status_code == 400


def test_an_overturned_signal_is_revoked_for_its_readers_and_never_shown_again(
    settings: Any,
) -> None:
    """When forum staff overturn a disputed signal, every reader of the forum collection
    gets the last version of each of its indicators with ``revoked: true`` (after the
    version it saw), a fresh reader gets nothing of it, and an outsider of a group never
    learns of an overturned group signal."""
    from exchange.disputes.services import dispute_decide, dispute_open

    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 1
    acme, globex, reader = make_party(), make_party(), make_party()
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=int(time.time()) - 10))
    globex.submit(globex.statement("pdq", value, iat=int(time.time()) - 10))
    # A signal comes once per feed row (two submissions: twice); the last copy wins.
    before = list({o["id"]: o for o in indicators(all_objects(reader, FORUM))}.values())
    assert len(before) == 2 and not any("revoked" in o for o in before)
    last = taxii_get(reader, collection_url(FORUM))["X-TAXII-Date-Added-Last"]
    dispute = dispute_open(
        member=reader.member,
        signal_type="pdq",
        value=value,
        grounds="not_tvec",
        reason="A news photograph.",
        actor="test",
    )
    dispute_decide(dispute=dispute, decision="overturn", rationale="News.", staff_user=None)
    after = indicators(taxii_get(reader, collection_url(FORUM), added_after=last).json()["objects"])
    assert sorted(o["id"] for o in after) == sorted(o["id"] for o in before)
    assert all(o["revoked"] is True for o in after)
    assert min(o["modified"] for o in after) > max(o["modified"] for o in before)
    assert_valid(after)
    # Nothing of it for a member that never saw it, nor in any later poll as live.
    assert indicators(all_objects(make_party(), FORUM)) == []
    assert all(o.get("revoked") for o in indicators(all_objects(reader, FORUM)))

    member, outsider = make_party(), make_party()
    make_group("g-over", member)
    hidden = pdq()
    member.submit(member.statement("pdq", hidden, audience="group:g-over"))
    secret = dispute_open(
        member=member.member,
        signal_type="pdq",
        value=hidden,
        grounds="not_tvec",
        reason="Mine was wrong.",
        actor="test",
    )
    dispute_decide(dispute=secret, decision="overturn", rationale="x", staff_user=None)
    for collection in taxii_get(outsider, f"{ROOT}collections/").json().get("collections", []):
        objects = all_objects(outsider, collection["id"])
        assert not any(hidden in str(o.get("pattern", "")) for o in objects)


def test_a_known_benign_statement_is_a_benign_indicator() -> None:
    """A statement on the known-benign list is served with ``indicator_types``
    ``["benign"]`` (live and, once retracted, revoked), a TVEC one without it, so a
    platform importing the collection does not take a news photo for something to act
    on; both pass the validator."""
    acme, globex, reader = make_party(), make_party(), make_party()
    value = pdq()
    now = int(time.time())
    acme.submit(acme.statement("pdq", value, labels=["news-reporting"], iat=now - 10))
    globex.submit(globex.statement("pdq", value, labels=["recruitment"], iat=now - 10))
    served = {o["created_by_ref"]: o for o in indicators(all_objects(reader, FORUM))}
    benign = served[stix.identity_id(acme.member.slug)]
    tvec = served[stix.identity_id(globex.member.slug)]
    assert benign["indicator_types"] == ["benign"] and benign["labels"] == ["news-reporting"]
    assert "indicator_types" not in tvec
    assert_valid([benign, tvec])
    last = taxii_get(reader, collection_url(FORUM))["X-TAXII-Date-Added-Last"]
    assert acme.submit(acme.statement("pdq", value, op="retract", iat=now))["accepted"] == 1
    after = indicators(taxii_get(reader, collection_url(FORUM), added_after=last).json()["objects"])
    [revoked] = [o for o in after if o.get("revoked")]
    assert revoked["id"] == benign["id"] and revoked["indicator_types"] == ["benign"]

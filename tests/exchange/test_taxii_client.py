"""The TAXII channel with the real ``taxii2-client`` against a live forum: discovery,
collections per member, ``as_pages`` paging, ``added_after`` polling, object versions and
the manifest; every object served passes stix2-validator, and the JWS in each indicator
verifies against the member's JWKS and says what the indicator says."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from taxii2client.v21 import Collection, Server, as_pages

from exchange.client import stix
from exchange.client.verify import index_jwks, verify_statement
from tests.exchange.taxii_support import assert_valid
from tests.factories import Party, make_group, make_party, pdq, random_hex

pytestmark = pytest.mark.django_db(transaction=True)

TLP_BY_MARKING = {v: k for k, v in stix.TLP_MARKINGS.items()}


def server_for(live_server: Any, party: Party) -> Server:
    """taxii2-client's Server as a TIP holds it: HTTP Basic, the API key as password."""
    return Server(f"{live_server.url}/taxii2/", user="tip", password=party.api_key)


def collections_of(live_server: Any, party: Party) -> dict[str, Collection]:
    """The party's collections by alias, found from discovery as a client does."""
    server = server_for(live_server, party)
    assert server.default is not None
    return {c.alias: c for c in server.default.collections}


def seconds(timestamp: str) -> int:
    """Unix seconds of a STIX timestamp."""
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def verify_indicator(
    live_server: Any, reader: Party, obj: dict[str, Any], signal_type: str, value: str
) -> None:
    """The indicator's JWS verifies against its member's JWKS, with its receipt, and its
    claims are what the indicator says (member, labels, TLP, validity)."""
    extension = obj["extensions"][stix.JWS_EXTENSION_ID]
    auth = {"Authorization": f"Bearer {reader.api_key}"}
    jwks = httpx.get(f"{live_server.url}/api/v1/jwks", headers=auth).json()
    slug = next(
        k["member"]
        for k in jwks["keys"]
        if stix.identity_id(k.get("member", "")) == obj["created_by_ref"]
    )
    statement = {
        "member": slug,
        "jws": extension["jws"],
        "receipt": extension.get("receipt"),
        "iat": seconds(obj["valid_from"]),
        "exp": seconds(obj["valid_until"]) if "valid_until" in obj else None,
        "labels": obj["labels"],
        "tlp": TLP_BY_MARKING[obj["object_marking_refs"][0]],
        "audience": "forum",
    }
    member_jwks = httpx.get(f"{live_server.url}/api/v1/members/{slug}/jwks", headers=auth).json()
    keys = index_jwks({"keys": member_jwks["keys"] + [k for k in jwks["keys"] if k.get("forum")]})
    result = verify_statement(statement, signal_type=signal_type, value=value, keys=keys)
    assert result.ok, result.reason


def test_taxii2_client_discovery_collections_paging_and_jws(live_server: Any) -> None:
    """A TIP lists its collections (a group's only for its members), pages the forum's
    collection with as_pages, and every indicator's JWS verifies."""
    acme, beta, outsider = make_party(), make_party(), make_party()
    make_group("tip-group", acme, beta)
    signals = [("pdq", pdq()) for _ in range(4)] + [
        ("md5", random_hex(32)),
        ("sha256", random_hex(64)),
        ("url", "https://example.com/it's"),
    ]
    now = int(time.time())
    acme.submit(*(acme.statement(t, v, tlp="amber", exp=now + 86400) for t, v in signals))
    secret = pdq()
    acme.submit(acme.statement("pdq", secret, audience="group:tip-group"))

    assert sorted(collections_of(live_server, beta)) == ["forum", "group-tip-group"]
    assert sorted(collections_of(live_server, outsider)) == ["forum"]

    forum = collections_of(live_server, outsider)["forum"]
    served: list[dict[str, Any]] = []
    pages = 0
    for envelope in as_pages(forum.get_objects, per_request=3):
        pages += 1
        served.extend(envelope.get("objects", []))
    assert pages >= 4
    assert_valid(served)
    indicators = [o for o in served if o["type"] == "indicator"]
    assert len(indicators) == len(signals)
    assert secret not in str(served)
    by_id = {o["id"]: o for o in indicators}
    for signal_type, value in signals:
        obj = by_id[stix.indicator_id(acme.slug, signal_type, value)]
        verify_indicator(live_server, outsider, obj, signal_type, value)

    group = collections_of(live_server, beta)["group-tip-group"]
    group_objects = group.get_objects(type="indicator")["objects"]
    assert [o["pattern"] for o in group_objects] == [stix.pattern_for("pdq", secret)]


def test_taxii2_client_polling_versions_and_manifest(live_server: Any) -> None:
    """Polling with added_after gets later changes only; a relabel is a new version and a
    retraction a revoked last one; the manifest lists what objects serve."""
    acme, reader = make_party(), make_party()
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=int(time.time()) - 20))
    forum = collections_of(live_server, reader)["forum"]
    manifest = forum.get_manifest()["objects"]
    wanted = stix.indicator_id(acme.slug, "pdq", value)
    first = next(e for e in manifest if e["id"] == wanted)
    last_added = max(e["date_added"] for e in manifest)
    assert forum.get_objects(added_after=last_added) == {"more": False}

    relabel = acme.submit(
        acme.statement("pdq", value, labels=["incitement"], iat=int(time.time()) - 10)
    )
    assert relabel["accepted"] == 1, relabel
    polled = forum.get_objects(added_after=last_added, type="indicator")["objects"]
    assert [o["id"] for o in polled] == [wanted]
    assert polled[0]["labels"] == ["incitement"] and polled[0]["modified"] > first["version"]
    assert_valid(polled)
    versions = forum.object_versions(wanted)["versions"]
    assert versions == [polled[0]["modified"]]
    one = forum.get_object(wanted)["objects"]
    assert one == polled

    after_relabel = max(e["date_added"] for e in forum.get_manifest()["objects"])
    acme.submit(acme.statement("pdq", value, op="retract"))
    revoked = forum.get_objects(added_after=after_relabel, type="indicator")["objects"]
    assert [(o["id"], o.get("revoked")) for o in revoked] == [(wanted, True)]
    assert revoked[0]["modified"] > polled[0]["modified"]
    assert_valid(revoked)
    assert datetime.fromisoformat(after_relabel.replace("Z", "+00:00")) < datetime.now(UTC)

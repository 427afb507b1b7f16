"""The member side of the TAXII channel against a live forum.

``cordiale taxii`` prints settings that real TAXII clients then use as printed; MISP's
path (misp-modules' TAXII 2.1 import: taxii2-client paging a collection, misp-stix
converting it) turns what a member reads into a MISP event with the md5, sha256 and url
attributes; every indicator read verifies offline; and a member who submits what it read
back as a bundle signs none of it again.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from exchange.models import Statement
from tests.support.live_server import LiveForum, LiveMember, manage

TAXII = "application/taxii+json;version=2.1"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
URL = "https://example.com/watch?v=abc"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def submit_hashes(forum: LiveForum, member: LiveMember, tmp_path: Path) -> None:
    """``member`` submits an md5 (upper case), a sha256, a url and a PDQ hash."""
    data = tmp_path / f"{member.slug}.csv"
    data.write_text(
        "signal_type,value,labels,tlp,audience\n"
        f"md5,{MD5.upper()},recruitment,green,forum\n"
        f"sha256,{SHA256},recruitment|glorification,amber,forum\n"
        f"url,HTTPS://Example.COM:443/watch?v=abc,recruitment,green,forum\n"
        f"pdq,{PDQ},glorification,green,forum\n"
    )
    run = forum.cli(member, "submit", str(data))
    assert run.returncode == 0, run.stderr
    assert run.last["accepted"] == 4


def taxii_settings(forum: LiveForum, member: LiveMember) -> dict[str, Any]:
    run = forum.cli(member, "taxii")
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = run.last
    return result


def read_collection(url: str, member: LiveMember, *, per_request: int) -> list[dict[str, Any]]:
    """Every object of a collection, as misp-modules' TAXII 2.1 import reads it: a
    taxii2-client ``Collection`` with the API key as the Basic password, ``as_pages``."""
    from taxii2client.v21 import Collection, as_pages

    collection = Collection(url, user=member.slug, password=member.api_key)
    pages = as_pages(collection.get_objects, per_request=per_request)
    return list(itertools.chain.from_iterable(page.get("objects", []) for page in pages))


@pytest.mark.slow
def test_cordiale_taxii_settings_work_as_printed(forum: LiveForum, tmp_path: Path) -> None:
    """The discovery, API root and collections of each member (forum, and its sharing
    group only); the MISP settings open each collection with taxii2-client, the OpenCTI
    ones read its objects with the key as a Bearer token."""
    acme = forum.member("acme", tmp_path)
    forum.member("globex", tmp_path)
    initech = forum.member("initech", tmp_path)
    manage("create_sharing_group", "pilot", "--members", "acme,globex")

    settings = taxii_settings(forum, acme)
    assert settings["discovery"] == f"{forum.url}/taxii2/"
    assert settings["api_root"] == f"{forum.url}/taxii2/forum/"
    assert sorted(c["alias"] for c in settings["collections"]) == ["forum", "group-pilot"]
    from taxii2client.v21 import Collection

    for misp in settings["misp"]:
        collection = Collection(misp["url"], user=misp["username"], password=acme.api_key)
        assert collection.can_read and not collection.can_write
    for opencti in settings["opencti"]:
        response = httpx.get(
            f"{opencti['uri']}collections/{opencti['collection']}/objects/",
            headers={"Authorization": f"Bearer {acme.api_key}", "Accept": TAXII},
        )
        assert response.status_code == 200, response.text
        assert "objects" in response.json() or response.json() == {"more": False}
    assert [c["alias"] for c in taxii_settings(forum, initech)["collections"]] == ["forum"]


@pytest.mark.slow
def test_misp_reads_what_a_member_reads_through_taxii(forum: LiveForum, tmp_path: Path) -> None:
    """globex pages the forum collection as MISP's TAXII 2.1 import does (two objects a
    page); misp-stix makes a MISP event holding acme's md5, sha256 and url as attributes
    with their TLP; every indicator's JWS verifies against the JWKS."""
    from misp_stix_converter import ExternalSTIX2toMISPParser
    from stix2.v21 import Bundle

    from exchange.client import CordialeClient, index_jwks
    from exchange.client.stix_verify import verify_indicator

    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    submit_hashes(forum, acme, tmp_path)
    settings = taxii_settings(forum, globex)
    (misp,) = [
        setting
        for setting, collection in zip(settings["misp"], settings["collections"], strict=True)
        if collection["alias"] == "forum"
    ]
    objects = read_collection(misp["url"], globex, per_request=2)

    parser = ExternalSTIX2toMISPParser()
    parser.load_stix_bundle(Bundle(objects, allow_custom=True))
    parser.parse_stix_bundle(single_event=True)
    attributes = {
        (a.type, a.value, a.to_ids, tuple(sorted(t.name for t in a.tags)))
        for a in parser.misp_event.attributes
    }
    assert attributes == {
        ("md5", MD5, True, ("tlp:green",)),
        ("sha256", SHA256, True, ("tlp:amber",)),
        ("url", URL, True, ("tlp:green",)),
    }

    indicators = [obj for obj in objects if obj["type"] == "indicator"]
    assert len(indicators) == 4
    with CordialeClient(forum.url, globex.api_key) as client:
        keys = index_jwks(client.jwks())
    for indicator in indicators:
        result = verify_indicator(indicator, keys)
        assert result.ok, result.reason
        assert result.member == "acme"


@pytest.mark.slow
def test_what_a_member_read_is_not_signed_again(forum: LiveForum, tmp_path: Path) -> None:
    """globex saves the collection as a bundle and submits it: every indicator is listed
    as acme's statement, nothing is signed, exit 1 (nothing to submit)."""
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    submit_hashes(forum, acme, tmp_path)
    collection = next(
        c for c in taxii_settings(forum, globex)["collections"] if c["alias"] == "forum"
    )
    objects = read_collection(collection["url"], globex, per_request=100)
    bundle = tmp_path / "read.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--x", "objects": objects}))
    run = forum.cli(globex, "submit", str(bundle), "--labels", "recruitment")
    assert run.returncode == 1, run.stderr
    assert run.last["indicators"] == 0
    reasons = {item["reason"] for item in run.last["unsupported"]}
    assert reasons == {
        "already a signed statement of the forum, by acme: not signed again "
        "(an indicator read from the forum's TAXII collections)"
    }
    assert not Statement.objects.filter(member__slug="globex").exists()

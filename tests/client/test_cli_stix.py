"""``cordiale submit bundle.json`` and ``cordiale taxii`` against the fake forum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from exchange.client import jws
from exchange.client.cli import main
from tests.client.fakes import FakeForum, forum_transport
from tests.client.stix_samples import (
    FILENAME_MD5,
    SHA256,
    URL_CANONICAL,
    misp_export,
)

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORDIALE_URL", "https://forum.example")
    monkeypatch.setenv("CORDIALE_API_KEY", "key")
    monkeypatch.delenv("CORDIALE_SIGNING_KEY", raising=False)
    monkeypatch.delenv("CORDIALE_MEMBER", raising=False)


def key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A new signing key file; its path."""
    path = tmp_path / "k.pem"
    assert main(["keygen", "--out", str(path)]) == 0
    capsys.readouterr()
    return str(path)


def signed_claims(forum: FakeForum) -> list[dict[str, Any]]:
    return [jws.parse_compact(token).claims for batch in forum.submitted for token in batch]


def test_submit_a_misp_bundle_signs_its_indicators_and_lists_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """misp-stix's export of an event: four statements signed by the member, values
    normalised, TLP from the markings, the event's tag mapped to a label, audience from the
    option; the three unsupported objects on stderr and in the JSON line; exit 0."""
    signing_key = key(tmp_path, capsys)
    export = misp_export()
    bundle = tmp_path / "event.json"
    bundle.write_text(json.dumps(export.bundle))
    label_map = tmp_path / "labels.json"
    label_map.write_text('{"tvec:recruitment": ["recruitment", "glorification"]}')
    forum = FakeForum()
    code = main(
        [
            "submit",
            str(bundle),
            "--signing-key",
            signing_key,
            "--label-map",
            str(label_map),
            "--audience",
            "group:gifct-pilot",
        ],
        transport=forum.transport(),
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    last = json.loads(captured.out.splitlines()[-1])
    assert {k: last[k] for k in ("accepted", "duplicate", "stale", "rejected", "indicators")} == {
        "accepted": 4,
        "duplicate": 0,
        "stale": 0,
        "rejected": 0,
        "indicators": 4,
    }
    ids = export.ids
    assert {item["id"] for item in last["unsupported"]} == {
        f"indicator--{ids['ip-dst']}",
        f"indicator--{ids['file-object']}",
        f"observed-data--{ids['not-ids']}",
    }
    for item in last["unsupported"]:
        assert f"unsupported: {item['id']}: {item['reason']}" in captured.err
    claims = signed_claims(forum)
    assert [(c["signal_type"], c["value"], c["tlp"]) for c in claims] == [
        ("md5", MD5, "green"),
        ("sha256", SHA256, "amber"),
        ("url", URL_CANONICAL, "amber"),
        ("md5", FILENAME_MD5, "amber"),
    ]
    assert {(c["iss"], c["op"], c["audience"]) for c in claims} == {
        ("acme", "assert", "group:gifct-pilot")
    }
    assert {tuple(c["labels"]) for c in claims} == {("recruitment", "glorification")}


def test_a_rerun_of_the_same_bundle_sends_nothing_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle resumes like a CSV file: results recorded beside it are not sent again."""
    signing_key = key(tmp_path, capsys)
    bundle = tmp_path / "event.json"
    bundle.write_text(json.dumps(misp_export().bundle))
    forum = FakeForum()
    argv = ["submit", str(bundle), "--signing-key", signing_key, "--labels", "recruitment"]
    assert main(argv, transport=forum.transport()) == 0
    assert main(argv, transport=forum.transport()) == 0
    assert len(forum.submitted) == 1
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["accepted"] == 4 and last["indicators"] == 4


def test_a_bundle_with_nothing_supported_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing to submit is a failure (exit 1): most likely the wrong file or options."""
    signing_key = key(tmp_path, capsys)
    bundle = tmp_path / "ips.json"
    bundle.write_text(
        json.dumps(
            {
                "type": "bundle",
                "id": "bundle--00000000-0000-4000-8000-000000000000",
                "objects": [
                    {
                        "type": "indicator",
                        "spec_version": "2.1",
                        "id": "indicator--00000000-0000-4000-8000-000000000001",
                        "pattern_type": "stix",
                        "pattern": "[ipv4-addr:value = '198.51.100.7']",
                    }
                ],
            }
        )
    )
    forum = FakeForum()
    code = main(
        ["submit", str(bundle), "--signing-key", signing_key, "--labels", "recruitment"],
        transport=forum.transport(),
    )
    captured = capsys.readouterr()
    assert code == 1
    assert forum.submitted == []
    assert json.loads(captured.out.splitlines()[-1])["indicators"] == 0
    assert "nothing to submit" in captured.err


def test_unknown_labels_and_csv_with_bundle_options_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label slug the forum does not have (option or map) and bundle options given for a
    CSV file stop before anything is signed (exit 2)."""
    signing_key = key(tmp_path, capsys)
    bundle = tmp_path / "event.json"
    bundle.write_text(json.dumps(misp_export().bundle))
    forum = FakeForum()
    base = ["submit", str(bundle), "--signing-key", signing_key]
    assert main([*base, "--labels", "recruitment,no-such"], transport=forum.transport()) == 2
    assert "not labels of the forum: no-such" in capsys.readouterr().err
    label_map = tmp_path / "map.json"
    label_map.write_text('{"tvec:recruitment": "nope"}')
    assert main([*base, "--label-map", str(label_map)], transport=forum.transport()) == 2
    assert forum.submitted == []
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("signal_type,value,labels,tlp,audience\n")
    code = main(["submit", str(csv_file), "--signing-key", signing_key, "--default-tlp", "red"])
    assert code == 2
    assert "are for STIX bundles" in capsys.readouterr().err


# cordiale taxii

COLLECTIONS = [
    {
        "id": "2f6b2a83-3b8a-5d47-9a0b-6b52c1a3a0f1",
        "title": "Forum",
        "alias": "forum",
        "can_read": True,
        "can_write": False,
        "media_types": ["application/stix+json;version=2.1"],
    },
    {
        "id": "9b0e4d44-64c1-5d2e-8f3a-2c6f0e7d1b22",
        "title": "Sharing group gifct-pilot",
        "alias": "group-gifct-pilot",
        "can_read": True,
        "can_write": False,
        "media_types": ["application/stix+json;version=2.1"],
    },
]


def taxii_server(api_roots: list[str], requests: list[httpx.Request]) -> httpx.MockTransport:
    """The TAXII resources of CONTRACT.md, answering only the TAXII media type."""

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.headers.get("Accept") != "application/taxii+json;version=2.1":
            return httpx.Response(406)
        body: dict[str, Any]
        if request.url.path == "/taxii2/":
            body = {"title": "Cordiale", "default": api_roots[0], "api_roots": api_roots}
        elif request.url.path == "/taxii2/forum/":
            body = {
                "title": "Forum",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 10485760,
            }
        elif request.url.path == "/taxii2/forum/collections/":
            body = {"collections": COLLECTIONS}
        else:
            return httpx.Response(404)
        return httpx.Response(200, json=body, headers={"Content-Type": request.headers["Accept"]})

    return forum_transport(handle)


def test_taxii_prints_the_urls_and_the_platform_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The discovery, API root and collection URLs, the MISP import module's fields and
    OpenCTI's TAXII feed fields per collection; the API key is never printed."""
    requests: list[httpx.Request] = []
    code = main(
        ["taxii", "--member", "acme"],
        transport=taxii_server(["https://forum.example/taxii2/forum/"], requests),
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    last = json.loads(captured.out.splitlines()[-1])
    root = "https://forum.example/taxii2/forum/"
    forum_url = f"{root}collections/{COLLECTIONS[0]['id']}/"
    group_url = f"{root}collections/{COLLECTIONS[1]['id']}/"
    assert last["discovery"] == "https://forum.example/taxii2/"
    assert last["api_root"] == root
    assert last["versions"] == ["application/taxii+json;version=2.1"]
    assert [(c["alias"], c["url"], c["objects_url"]) for c in last["collections"]] == [
        ("forum", forum_url, forum_url + "objects/"),
        ("group-gifct-pilot", group_url, group_url + "objects/"),
    ]
    assert last["misp"][0] == {
        "module": "TAXII 2.1 Import",
        "url": forum_url,
        "username": "acme",
        "password": "<your API key (scope read)>",
        "spec_version": "2.1",
    }
    assert last["opencti"][1] == {
        "uri": root,
        "version": "v21",
        "collection": COLLECTIONS[1]["id"],
        "authentication_type": "bearer",
        "authentication_value": "<your API key (scope read)>",
    }
    assert f"TAXII Collection:    {COLLECTIONS[0]['id']}" in captured.err
    assert "key" not in json.dumps(last).replace("API key", "")
    assert [r.headers["Authorization"] for r in requests] == ["Bearer key"] * 3


def test_taxii_accepts_a_relative_api_root(capsys: pytest.CaptureFixture[str]) -> None:
    """TAXII allows API root URLs relative to the discovery resource."""
    requests: list[httpx.Request] = []
    assert main(["taxii"], transport=taxii_server(["forum/"], requests)) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["api_root"] == "https://forum.example/taxii2/forum/"


def test_taxii_never_sends_the_key_to_a_root_on_another_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A discovery resource naming an API root elsewhere is refused before any request
    goes there (the fake transport would fail on another host)."""
    requests: list[httpx.Request] = []
    code = main(["taxii"], transport=taxii_server(["https://evil.example/taxii2/forum/"], requests))
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out.splitlines()[-1])["error"]["code"] == "foreign_taxii_root"
    assert [r.url.path for r in requests] == ["/taxii2/"]


def test_taxii_on_a_forum_without_taxii_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    """A forum that answers 404 at /taxii2/ gives exit 1 and the HTTP status."""
    forum = FakeForum()
    assert main(["taxii"], transport=forum.transport()) == 1
    error = json.loads(capsys.readouterr().out.splitlines()[-1])["error"]
    assert error["status"] == 404

"""Reading STIX 2.1 bundles into statements: patterns, TLP, labels, what is unsupported."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exchange.client.stix_bundle import (
    BundleOptions,
    StixUnavailable,
    bundle_rows,
    load_bundle,
    read_label_map,
)
from exchange.client.stix_patterns import PatternUnsupported, parse_pattern
from exchange.client.submission import InputError
from tests.client.stix_samples import (
    FILENAME_MD5,
    OBJECT_MD5,
    SHA256,
    URL,
    misp_export,
    opencti_export,
)

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
GREEN_1 = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
WHITE_1 = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
RED_2 = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
AMBER_STRICT_2 = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def indicator(pattern: str, ident: str = "1", **fields: Any) -> dict[str, Any]:
    """A minimal STIX 2.1 indicator."""
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{int(ident):012d}",
        "created": "2026-11-30T09:00:00.000Z",
        "modified": "2026-11-30T09:00:00.000Z",
        "pattern_type": "stix",
        "pattern": pattern,
        "valid_from": "2026-11-30T09:00:00Z",
        **fields,
    }


def rows_of(objects: list[dict[str, Any]], **options: Any) -> Any:
    defaults: dict[str, Any] = {"labels": ("recruitment",), "default_tlp": None}
    return bundle_rows(objects, BundleOptions(**{**defaults, **options}), now=NOW)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (f"[file:hashes.MD5 = '{MD5}']", ("md5", MD5)),
        (f"[file:hashes.md5 = '{MD5}']", ("md5", MD5)),
        (f"[file:hashes.'SHA-256' = '{SHA256}']", ("sha256", SHA256)),
        (f"[file:hashes.SHA256 = '{SHA256}']", ("sha256", SHA256)),
        (f"[file:hashes.PDQ = '{SHA256}']", ("pdq", SHA256)),
        ("[file:hashes.vPDQ = '[\"f8f8,100,0.0\"]']", ("vpdq", '["f8f8,100,0.0"]')),
        ("[url:value = 'https://example.com/it\\'s']", ("url", "https://example.com/it's")),
        (f"[file:hashes.MD5 = '{MD5}' OR file:hashes.MD5 = '{MD5}']", ("md5", MD5)),
        (f"[file:hashes.MD5 = '{MD5}'] OR [file:hashes.MD5 = '{MD5}']", ("md5", MD5)),
        (f"([file:hashes.MD5 = '{MD5}'])", ("md5", MD5)),
    ],
)
def test_patterns_naming_one_value(pattern: str, expected: tuple[str, str]) -> None:
    """Each supported hash name (any case, both SHA-256 spellings), PDQ, vPDQ and URL
    patterns give their value, string escapes undone; the same value twice is one."""
    signal_type, value, notes = parse_pattern(pattern)
    assert (signal_type, value) == expected
    assert notes == []


def test_an_and_with_other_conditions_keeps_the_value_and_says_what_it_ignored() -> None:
    """MISP's ``filename|md5`` pattern gives the md5; the file name is reported, not lost
    silently."""
    assert parse_pattern(f"[file:name = 'a.jpg' AND file:hashes.MD5 = '{MD5}']") == (
        "md5",
        MD5,
        ["ignored the condition file:name = 'a.jpg'"],
    )


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[ipv4-addr:value = '198.51.100.7']", "no supported observable"),
        ("[file:hashes.'SHA-1' = 'a9993e364706816aba3e25717850c26c9cd0d89d']", "no supported"),
        ("[file:name = 'a.jpg']", "no supported observable"),
        (f"[file:hashes.MD5 = '{MD5}' AND file:hashes.SHA256 = '{SHA256}']", "names 2 values"),
        (f"[file:hashes.MD5 = '{MD5}'] OR [url:value = 'https://a.example/']", "names 2 values"),
        (f"[file:hashes.MD5 = '{MD5}' OR file:name = 'a.jpg']", "joined by OR"),
        (f"[file:hashes.MD5 = '{MD5}'] AND [file:name = 'a.jpg']", "joined by OR or in other"),
        (f"[file:hashes.MD5 != '{MD5}']", "only '='"),
        (f"[file:hashes.MD5 NOT = '{MD5}']", "only '='"),
        ("[file:hashes.MD5 LIKE 'd41d%']", "only '='"),
        (f"[file:hashes.MD5 IN ('{MD5}', '{OBJECT_MD5}')]", "only '='"),
        (f"[file:hashes.MD5 = '{MD5}'] WITHIN 300 SECONDS", "qualified pattern"),
        (f"[file:hashes.MD5 = '{MD5}'] FOLLOWEDBY [file:hashes.MD5 = '{MD5}']", "FOLLOWEDBY"),
        ("file:hashes.MD5 = 'no brackets'", "does not parse"),
    ],
)
def test_patterns_that_are_not_one_value(pattern: str, reason: str) -> None:
    """Other observables, two values, OR with other conditions, other operators,
    qualifiers and sequences are refused with a reason saying which."""
    with pytest.raises(PatternUnsupported, match=reason):
        parse_pattern(pattern)


def test_a_misp_export_becomes_statements_and_lists_the_rest() -> None:
    """What misp-stix writes for an event: md5, sha256, url and filename|md5 indicators
    become rows (attribute TLP over the event's; the event's tag mapped to a label); the
    ip-dst, the file object with two hashes and the attribute without the IDS flag are
    listed with reasons."""
    export = misp_export()
    result = rows_of(
        export.bundle["objects"],
        labels=(),
        label_map={"tvec:recruitment": ("recruitment",)},
    )
    by_id = {result.indicators[row.number]: row.fields for row in result.rows}
    ids = export.ids
    assert by_id == {
        f"indicator--{ids['md5']}": {
            "signal_type": "md5",
            "value": MD5,
            "labels": "recruitment",
            "tlp": "green",
            "audience": "forum",
        },
        f"indicator--{ids['sha256']}": {
            "signal_type": "sha256",
            "value": SHA256,
            "labels": "recruitment",
            "tlp": "amber",
            "audience": "forum",
        },
        f"indicator--{ids['url']}": {
            "signal_type": "url",
            "value": URL,
            "labels": "recruitment",
            "tlp": "amber",
            "audience": "forum",
        },
        f"indicator--{ids['filename|md5']}": {
            "signal_type": "md5",
            "value": FILENAME_MD5,
            "labels": "recruitment",
            "tlp": "amber",
            "audience": "forum",
        },
    }
    unsupported = {item.id: item.reason for item in result.unsupported}
    assert set(unsupported) == {
        f"indicator--{ids['ip-dst']}",
        f"indicator--{ids['file-object']}",
        f"observed-data--{ids['not-ids']}",
    }
    assert "network-traffic:dst_ref.value" in unsupported[f"indicator--{ids['ip-dst']}"]
    assert "names 2 values" in unsupported[f"indicator--{ids['file-object']}"]
    assert "not an indicator" in unsupported[f"observed-data--{ids['not-ids']}"]
    assert result.notes == [
        f"indicator--{ids['filename|md5']}: ignored the condition file:name = 'a.jpg'"
    ]


def test_an_opencti_export_becomes_statements_and_lists_the_rest() -> None:
    """OpenCTI's TLP markings (its own AMBER+STRICT, found by its definition in the bundle)
    and labels that are forum slugs carry over; valid_until becomes exp; a domain, a YARA
    rule, a revoked and a lapsed indicator and a lone observable are listed."""
    objects = opencti_export(valid_until="2027-03-01T00:00:00.000Z")["objects"]
    result = rows_of(objects, labels=(), known_labels=frozenset({"tvec-recruitment"}))
    assert [row.fields for row in result.rows] == [
        {
            "signal_type": "sha256",
            "value": SHA256,
            "labels": "tvec-recruitment",
            "tlp": "amber+strict",
            "audience": "forum",
        },
        {
            "signal_type": "url",
            "value": URL,
            "labels": "tvec-recruitment",
            "tlp": "green",
            "audience": "forum",
            "exp": str(int(datetime(2027, 3, 1, tzinfo=UTC).timestamp())),
        },
    ]
    reasons = [(item.type, item.reason.split(":")[0]) for item in result.unsupported]
    assert reasons == [
        ("indicator", "no supported observable in the pattern (domain-name"),
        ("indicator", "pattern_type 'yara'"),
        (
            "indicator",
            "revoked by its producer; to withdraw a value from the forum run `cordiale retract`",
        ),
        ("indicator", "lapsed"),
        ("url", "an observable, not an indicator"),
    ]


@pytest.mark.parametrize(
    ("markings", "container", "default", "expected"),
    [
        ([GREEN_1], [], None, "green"),
        ([WHITE_1], [], None, "clear"),
        ([GREEN_1, RED_2], [], None, "red"),
        ([AMBER_STRICT_2, GREEN_1], [], None, "amber+strict"),
        ([], [RED_2], None, "red"),
        ([GREEN_1], [RED_2], None, "green"),
        (["marking-definition--00000000-0000-4000-8000-000000000001"], [], "amber", "amber"),
        ([], [], "clear", "clear"),
    ],
)
def test_tlp_comes_from_the_marking_then_the_container_then_the_option(
    markings: list[str], container: list[str], default: str | None, expected: str
) -> None:
    """The indicator's most restrictive TLP marking (TLP 1.0 or 2.0 ids; WHITE is clear);
    without one, its report's; then --default-tlp. Non-TLP markings do not count."""
    item = indicator(f"[file:hashes.MD5 = '{MD5}']", object_marking_refs=markings)
    report = {
        "type": "report",
        "id": "report--00000000-0000-4000-8000-000000000009",
        "object_refs": [item["id"]],
        "object_marking_refs": container,
    }
    result = rows_of([report, item], default_tlp=default)
    assert [row.fields["tlp"] for row in result.rows] == [expected]


def test_tlp_from_marking_definitions_in_the_bundle() -> None:
    """A marking defined in the bundle counts in each shape producers write: OASIS
    ``tlp``, the TLP 2.0 extension, OpenCTI's ``x_opencti_definition``."""
    shapes = [
        {"definition_type": "tlp", "definition": {"tlp": "amber"}},
        {
            "extensions": {
                "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
                    "extension_type": "property-extension",
                    "tlp_2_0": "amber",
                }
            }
        },
        {
            "definition_type": "statement",
            "definition": {"statement": "custom"},
            "x_opencti_definition_type": "TLP",
            "x_opencti_definition": "TLP:AMBER",
        },
    ]
    for number, shape in enumerate(shapes, start=1):
        marking_id = f"marking-definition--00000000-0000-4000-8000-00000000000{number}"
        marking = {"type": "marking-definition", "id": marking_id, **shape}
        item = indicator(f"[file:hashes.MD5 = '{MD5}']", object_marking_refs=[marking_id])
        assert [row.fields["tlp"] for row in rows_of([marking, item]).rows] == ["amber"], shape


def test_a_statement_marking_named_like_tlp_is_not_tlp() -> None:
    """Only a marking that says it is TLP counts: a free statement named "TLP:CLEAR" does
    not loosen the handling of an indicator."""
    marking = {
        "type": "marking-definition",
        "id": "marking-definition--00000000-0000-4000-8000-000000000001",
        "definition_type": "statement",
        "name": "TLP:CLEAR",
        "definition": {"statement": "TLP:CLEAR"},
    }
    item = indicator(f"[file:hashes.MD5 = '{MD5}']", object_marking_refs=[marking["id"]])
    result = rows_of([marking, item])
    assert result.rows == []
    assert "no TLP marking" in result.unsupported[0].reason


def test_labels_from_the_option_the_map_and_forum_slugs() -> None:
    """--labels for all, mapped STIX labels (of the indicator and its grouping), labels
    that are forum slugs kept; unknown STIX labels dropped; none at all is unsupported."""
    tagged = indicator(
        f"[file:hashes.MD5 = '{MD5}']",
        "1",
        labels=['misp:type="md5"', "propaganda", "tvec:attack"],
        object_marking_refs=[GREEN_1],
    )
    bare = indicator(f"[file:hashes.SHA256 = '{SHA256}']", "2", object_marking_refs=[GREEN_1])
    grouping = {
        "type": "grouping",
        "id": "grouping--00000000-0000-4000-8000-000000000009",
        "object_refs": [tagged["id"]],
        "labels": ["tvec:recruitment"],
    }
    result = rows_of(
        [grouping, tagged, bare],
        labels=(),
        label_map={
            "tvec:attack": ("violent-attack",),
            "tvec:recruitment": ("recruitment", "glorification"),
        },
        known_labels=frozenset({"propaganda", "recruitment"}),
    )
    assert [row.fields["labels"] for row in result.rows] == [
        "propaganda|violent-attack|recruitment|glorification"
    ]
    assert [item.id for item in result.unsupported] == [bare["id"]]
    assert "no forum label" in result.unsupported[0].reason
    with_option = rows_of([grouping, tagged, bare], labels=("recruitment",))
    assert [row.fields["labels"] for row in with_option.rows] == ["recruitment", "recruitment"]


def test_the_same_value_twice_is_submitted_once() -> None:
    """Two indicators on one value give one statement; the second is listed."""
    first = indicator(f"[file:hashes.MD5 = '{MD5}']", "1", object_marking_refs=[GREEN_1])
    second = indicator(
        f"[file:name = 'x' AND file:hashes.MD5 = '{MD5}']", "2", object_marking_refs=[GREEN_1]
    )
    result = rows_of([first, second])
    assert [result.indicators[row.number] for row in result.rows] == [first["id"]]
    assert [item.id for item in result.unsupported] == [second["id"]]
    assert first["id"] in result.unsupported[0].reason


def test_the_latest_version_of_an_indicator_wins() -> None:
    """A bundle holding two versions of one indicator reads the later ``modified``: here
    the later one is revoked, so nothing is submitted."""
    old = indicator(f"[file:hashes.MD5 = '{MD5}']", object_marking_refs=[GREEN_1])
    new = {**old, "modified": "2026-11-30T10:00:00.000Z", "revoked": True}
    result = rows_of([new, old])
    assert result.rows == []
    assert "revoked" in result.unsupported[0].reason


def test_a_stix_2_0_indicator_without_pattern_type_is_read() -> None:
    """STIX 2.0 indicators have no ``pattern_type`` or ``spec_version``: still STIX."""
    item = indicator(f"[file:hashes.MD5 = '{MD5}']", object_marking_refs=[GREEN_1])
    del item["pattern_type"], item["spec_version"]
    assert [row.fields["value"] for row in rows_of([item]).rows] == [MD5]


def test_load_bundle_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    """Not JSON, an object without objects, or another STIX object: a clear InputError."""
    path = tmp_path / "x.json"
    for text, message in [
        ("not json", "is not JSON"),
        ('{"type": "bundle"}', "no list of objects"),
        ('{"type": "indicator", "objects": []}', "not a bundle"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            load_bundle(path)
    path.write_text(json.dumps({"objects": [{"type": "indicator"}, "junk"]}))
    assert load_bundle(path) == [{"type": "indicator"}]  # a TAXII envelope reads too


def test_label_map_file(tmp_path: Path) -> None:
    """A label map maps to a slug or a list of slugs; anything else is refused."""
    path = tmp_path / "map.json"
    path.write_text('{"a": "recruitment", "b": ["x", "y"]}')
    assert read_label_map(path) == {"a": ("recruitment",), "b": ("x", "y")}
    path.write_text('{"a": 3}')
    with pytest.raises(InputError, match="must map to a label slug"):
        read_label_map(path)


def test_without_stix2_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stix extra is optional: a member without it is told how to get it."""
    monkeypatch.setitem(sys.modules, "stix2.pattern_visitor", None)
    with pytest.raises(StixUnavailable, match=r"cordiale-client\[stix\]"):
        rows_of([indicator(f"[file:hashes.MD5 = '{MD5}']")])


def test_an_indicator_read_from_the_forum_is_not_signed_again() -> None:
    """An indicator of the forum's TAXII channel (its JWS extension) names the statement's
    member and is listed, not re-signed as the submitter's own."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from exchange.client import stix
    from tests.client.fakes import snapshot

    objects = stix.objects_for_snapshot(snapshot(Ed25519PrivateKey.generate(), member="globex"))
    result = rows_of(objects)
    assert result.rows == []
    (item,) = result.unsupported
    assert item.type == "indicator"
    assert "already a signed statement of the forum, by globex" in item.reason

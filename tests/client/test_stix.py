"""The STIX 2.1 mapping (exchange.client.stix): valid objects, checked by stix2 and
stix2-validator, with deterministic ids, the patterns per signal type and the JWS intact."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import stix2
import stix2validator
from stix2.pattern_visitor import create_pattern_object

from exchange.client import stix

VALUES = {
    "md5": "d41d8cd98f00b204e9800998ecf8427e",
    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "url": "https://example.com/it's\\here",
    "pdq": "f" * 64,
    "vpdq": '["' + "f" * 64 + ',100,0.000"]',
}


def assert_valid(obj: dict[str, Any]) -> None:
    """No stix2-validator error, and the stix2 library parses it without custom content."""
    result = stix2validator.validate_instance(obj, stix2validator.ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]
    stix2.parse(obj, allow_custom=False)


def indicator(signal_type: str, **overrides: Any) -> dict[str, Any]:
    """An indicator of acme's statement on ``signal_type``'s example value."""
    args: dict[str, Any] = {
        "member": "acme",
        "signal_type": signal_type,
        "value": VALUES[signal_type],
        "iat": 1764400000,
        "labels": ["recruitment"],
        "tlp": "amber+strict",
        "jws": "eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln",
        "exp": 1764500000,
        "receipt": "eyJ0eXAiOiJyIn0.e30.c2ln",
    }
    args.update(overrides)
    return stix.indicator_for(**args)


@pytest.mark.parametrize("signal_type", sorted(VALUES))
def test_indicator_is_valid_and_its_pattern_holds_the_value(signal_type: str) -> None:
    """Every signal type maps to a valid indicator whose pattern compares the value."""
    obj = indicator(signal_type)
    assert_valid(obj)
    pattern = create_pattern_object(obj["pattern"], version="2.1")
    comparison = pattern.operand
    # stix2 keeps the escapes of the pattern's string literal: undo them.
    assert re.sub(r"\\(.)", r"\1", comparison.rhs.value) == VALUES[signal_type]
    assert obj["valid_from"] == "2025-11-29T07:06:40.000000Z"
    assert obj["valid_until"] == "2025-11-30T10:53:20.000000Z"
    assert obj["object_marking_refs"] == [stix.TLP_MARKINGS["amber+strict"]]


def test_patterns_per_signal_type() -> None:
    """The object paths the contract names, with quotes and backslashes escaped."""
    assert stix.pattern_for("md5", "ab") == "[file:hashes.MD5 = 'ab']"
    assert stix.pattern_for("sha256", "ab") == "[file:hashes.'SHA-256' = 'ab']"
    assert stix.pattern_for("pdq", "ab") == "[file:hashes.PDQ = 'ab']"
    assert stix.pattern_for("vpdq", "ab") == "[file:hashes.vPDQ = 'ab']"
    assert stix.pattern_for("url", "http://a/'\\") == "[url:value = 'http://a/\\'\\\\']"
    with pytest.raises(stix.UnsupportedSignalType):
        stix.pattern_for("tlsh", "ab")


def test_ids_are_deterministic_and_distinct() -> None:
    """The same member, type and value give the same id; any difference another id."""
    a = stix.indicator_id("acme", "md5", VALUES["md5"])
    assert a == indicator("md5")["id"]
    assert a != stix.indicator_id("beta", "md5", VALUES["md5"])
    assert a != stix.indicator_id("acme", "pdq", VALUES["md5"])
    assert stix.identity_id("acme") == stix.identity_for("acme")["id"]
    for name in ("", "member:acme", "indicator:acme:url:https://example.com/\u00e9"):
        assert stix.uuid5(name) == str(uuid.uuid5(stix.NAMESPACE, name))
    assert a == f"indicator--{uuid.uuid5(stix.NAMESPACE, 'indicator:acme:md5:' + VALUES['md5'])}"
    assert stix.opinion_id(b"k", "acme", "md5", "x") != stix.opinion_id(b"j", "acme", "md5", "x")


def test_jws_and_receipt_travel_byte_for_byte() -> None:
    """The property extension holds the JWS and the receipt exactly as given."""
    obj = indicator("md5")
    extension = obj["extensions"][stix.JWS_EXTENSION_ID]
    assert extension == {
        "extension_type": "property-extension",
        "jws": "eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln",
        "receipt": "eyJ0eXAiOiJyIn0.e30.c2ln",
    }


def test_static_objects_are_valid_and_the_tlp_ids_are_oasis_ones() -> None:
    """Markings, the forum's identity and the extension definition validate; the TLP
    markings are the ids stix2 ships for TLP 2.0 where it has them."""
    for obj in stix.static_objects():
        assert_valid(obj)
    assert stix.TLP_MARKINGS["clear"] == "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
    assert stix.TLP_MARKINGS["red"] == "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


def test_revoked_version_and_opinions_are_valid() -> None:
    """A revoked last version keeps the id and moves modified on; opinions map categories
    and stay anonymous unless they are the caller's own."""
    obj = indicator("sha256", created="2025-11-29T07:06:40.100000Z")
    revoked = stix.revoked_version(obj, modified="2025-12-01T00:00:00.000000Z")
    assert_valid(revoked)
    assert revoked["revoked"] is True and revoked["id"] == obj["id"]
    assert revoked["modified"] > obj["modified"]
    anonymous = stix.opinion_for(
        object_id=stix.opinion_id(b"k", "beta", "sha256", VALUES["sha256"]),
        category="negative",
        object_refs=[obj["id"]],
        modified="2025-11-30T00:00:00.000000Z",
    )
    assert_valid(anonymous)
    assert anonymous["opinion"] == "disagree" and "created_by_ref" not in anonymous
    own = stix.opinion_for(
        object_id=stix.opinion_id(b"k", "acme", "sha256", VALUES["sha256"]),
        category="investigation",
        object_refs=[obj["id"]],
        modified="2025-11-30T00:00:00.000000Z",
        own_member="acme",
        tags=["checking"],
        reason="looking",
    )
    assert_valid(own)
    assert own["opinion"] == "neutral" and own["created_by_ref"] == stix.identity_id("acme")


def test_objects_for_snapshot() -> None:
    """A feed snapshot maps to identities, indicators and the caller's own opinion."""
    snapshot = {
        "signal_type": "md5",
        "value": VALUES["md5"],
        "deleted": False,
        "updated_at": "2025-11-30T00:00:00.000000Z",
        "statements": [
            {
                "member": m,
                "kid": "k",
                "iat": 1764400000,
                "labels": ["a"],
                "tlp": "green",
                "audience": aud,
                "exp": None,
                "jws": f"{m}.p.s",
                "receipt": None,
            }
            for m, aud in (("acme", "forum"), ("beta", "group:g"))
        ],
        "opinions": {
            "positive": 1,
            "negative": 0,
            "investigation": 0,
            "disputed": False,
            "mine": {"category": "positive", "tags": [], "reason": ""},
        },
    }
    objects = stix.objects_for_snapshot(snapshot, caller="acme", opinion_secret=b"k")
    assert [o["type"] for o in objects] == [
        "identity",
        "identity",
        "indicator",
        "indicator",
        "opinion",
    ]
    for obj in objects:
        assert_valid(obj)
    forum_only = stix.objects_for_snapshot(snapshot, audience="forum")
    assert [o["type"] for o in forum_only] == ["identity", "indicator"]
    assert stix.objects_for_snapshot({**snapshot, "deleted": True, "statements": []}) == []

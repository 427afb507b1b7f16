"""The MISP side: MISP's own converter (misp-stix) reads what the forum's STIX holds.

MISP reads a TAXII 2.1 collection through misp-modules' "TAXII 2.1 Import" module, which
pages the collection with taxii2-client, wraps the objects in a stix2 ``Bundle`` and has
misp-stix's ``ExternalSTIX2toMISPParser`` turn them into one MISP event. These tests do the
same with the objects the STIX mapping (``exchange.client.stix``) makes of signed
statements, and assert on the attributes of the event.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import stix
from tests.client.fakes import snapshot

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
URL = "https://example.com/watch?v=abc"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def misp_event_of(objects: list[dict[str, Any]]) -> Any:
    """The MISP event misp-modules' TAXII 2.1 import makes of these objects."""
    from misp_stix_converter import ExternalSTIX2toMISPParser
    from stix2.v21 import Bundle

    parser = ExternalSTIX2toMISPParser()
    parser.load_stix_bundle(Bundle(objects, allow_custom=True))
    parser.parse_stix_bundle(single_event=True)
    return parser.misp_event


def attributes_of(event: Any) -> set[tuple[str, str, bool, tuple[str, ...]]]:
    """(type, value, IDS flag, tags) of the event's attributes."""
    return {
        (a.type, a.value, a.to_ids, tuple(sorted(t.name for t in a.tags))) for a in event.attributes
    }


def test_misp_reads_the_mapped_statements_as_md5_sha256_and_url_attributes() -> None:
    """The collection's objects for acme's md5, sha256, url and PDQ statements become a
    MISP event with md5, sha256 and url attributes (IDS flag set, TLP tag kept); PDQ, a
    hash MISP has no attribute type for, stays a STIX pattern object."""
    key = Ed25519PrivateKey.generate()
    objects = stix.static_objects()
    for signal_type, value in (("md5", MD5), ("sha256", SHA256), ("url", URL), ("pdq", PDQ)):
        objects += stix.objects_for_snapshot(snapshot(key, signal_type=signal_type, value=value))
    event = misp_event_of(objects)
    assert attributes_of(event) == {
        ("md5", MD5, True, ("tlp:green",)),
        ("sha256", SHA256, True, ("tlp:green",)),
        ("url", URL, True, ("tlp:green",)),
    }
    patterns = [
        attribute.value
        for obj in event.objects
        if obj.name == "stix2-pattern"
        for attribute in obj.attributes
        if attribute.object_relation == "stix2-pattern"
    ]
    assert patterns == [f"[file:hashes.PDQ = '{PDQ}']"]

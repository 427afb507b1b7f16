"""STIX 2.1 bundles as member platforms export them.

``misp_export`` has MISP's own converter (misp-stix, what MISP runs for its STIX 2.1
export) turn a MISP event into a bundle at test time, so the shape is MISP's, not ours.
``opencti_export`` follows the shapes OpenCTI's exporter writes (its TLP marking
definitions with ``definition_type`` ``TLP``, its property extension, observables linked
by ``based-on``); OpenCTI is a Node platform that no test here can run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MD5 = "D41D8CD98F00B204E9800998ECF8427E"  # upper case: submit normalises before signing
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
URL = "HTTPS://Example.COM:443/watch?v=abc"
URL_CANONICAL = "https://example.com/watch?v=abc"
FILENAME_MD5 = "0cc175b9c0f1b6a831c399e269772661"
NOT_IDS_MD5 = "900150983cd24fb0d6963f7d28e17f72"
OBJECT_MD5 = "e2fc714c4727ee9395f324cd2e7f331f"
OBJECT_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@dataclass
class MispExport:
    """A bundle and the STIX ids misp-stix gave the attributes it was made from."""

    bundle: dict[str, Any]
    ids: dict[str, str]


def misp_export() -> MispExport:
    """An event tagged ``tlp:amber`` and ``tvec:recruitment``: an md5 tagged ``tlp:green``,
    a sha256, a url, a ``filename|md5``, an ``ip-dst``, an md5 without the IDS flag and a
    ``file`` object holding an md5 and a sha256; exported by misp-stix."""
    from misp_stix_converter import MISPtoSTIX21Parser
    from pymisp import MISPEvent, MISPOrganisation

    event = MISPEvent()
    event.info = "TVEC found on our platform"
    event.add_tag("tlp:amber")
    event.add_tag("tvec:recruitment")
    organisation = MISPOrganisation()
    organisation.name = "ACME"
    organisation.uuid = "a0c22599-9e58-4da4-96ac-7051603fa951"
    event.Orgc = organisation
    attributes = {
        "md5": event.add_attribute("md5", MD5, to_ids=True),
        "sha256": event.add_attribute("sha256", SHA256, to_ids=True),
        "url": event.add_attribute("url", URL, to_ids=True),
        "filename|md5": event.add_attribute("filename|md5", f"a.jpg|{FILENAME_MD5}", to_ids=True),
        "ip-dst": event.add_attribute("ip-dst", "198.51.100.7", to_ids=True),
        "not-ids": event.add_attribute("md5", NOT_IDS_MD5, to_ids=False),
    }
    attributes["md5"].add_tag("tlp:green")
    file_object = event.add_object(name="file")
    file_object.add_attribute("md5", value=OBJECT_MD5, to_ids=True)
    file_object.add_attribute("sha256", value=OBJECT_SHA256, to_ids=True)
    file_object.add_attribute("filename", value="b.png")
    parser = MISPtoSTIX21Parser()
    parser.parse_misp_event(json.loads(event.to_json()))
    bundle = json.loads(parser.bundle.serialize())
    ids = {name: str(attribute.uuid) for name, attribute in attributes.items()}
    ids["file-object"] = str(file_object.uuid)
    return MispExport(bundle, ids)


OPENCTI_EXTENSION = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"
OPENCTI_AUTHOR = "identity--7b82b010-b1c0-4dae-981f-7756374a17df"
# OpenCTI's own TLP:AMBER+STRICT (its standard id), and STIX's TLP:GREEN id it reuses.
OPENCTI_AMBER_STRICT = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"
TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
STAMP = "2026-11-30T09:00:00.000Z"


def _octi(kind: str, **extra: Any) -> dict[str, Any]:
    """OpenCTI's property extension on every object it exports."""
    return {
        OPENCTI_EXTENSION: {
            "extension_type": "property-extension",
            "id": "0e5f3a2c-1b0d-4c39-9b67-0d6c2c9f3e11",
            "type": kind,
            "created_at": STAMP,
            "updated_at": STAMP,
            "is_inferred": False,
            **extra,
        }
    }


def _indicator(ident: str, pattern: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"indicator--{ident}",
        "spec_version": "2.1",
        "revoked": False,
        "confidence": 100,
        "created": STAMP,
        "modified": STAMP,
        "pattern_type": "stix",
        "pattern": pattern,
        "name": pattern,
        "valid_from": STAMP,
        "x_opencti_score": 80,
        "x_opencti_detection": True,
        "x_opencti_main_observable_type": "StixFile",
        "labels": ["tvec-recruitment"],
        "created_by_ref": OPENCTI_AUTHOR,
        "object_marking_refs": [OPENCTI_AMBER_STRICT],
        "extensions": _octi("Indicator", score=80, detection=True),
        "type": "indicator",
        **fields,
    }


def opencti_export(*, valid_until: str) -> dict[str, Any]:
    """An OpenCTI export: a sha256 indicator (TLP:AMBER+STRICT, OpenCTI's marking) based on
    a file observable, a url indicator (TLP:GREEN) valid until ``valid_until``, a domain
    indicator, a YARA rule, a revoked md5, a lapsed md5, and a url observable that no
    indicator is based on."""
    return {
        "type": "bundle",
        "id": "bundle--3c7b7a7e-45f3-4d0c-8f67-4d06ea1f7b6d",
        "objects": [
            {
                "id": OPENCTI_AUTHOR,
                "spec_version": "2.1",
                "identity_class": "organization",
                "name": "Globex Trust & Safety",
                "created": STAMP,
                "modified": STAMP,
                "extensions": _octi("Organization"),
                "type": "identity",
            },
            {
                "id": OPENCTI_AMBER_STRICT,
                "spec_version": "2.1",
                "created": "2022-10-01T00:00:00.000Z",
                "modified": "2022-10-01T00:00:00.000Z",
                "name": "TLP:AMBER+STRICT",
                "definition_type": "TLP",
                "extensions": _octi("Marking-Definition", order=3, color="#d84315"),
                "type": "marking-definition",
            },
            {
                "id": TLP_GREEN,
                "spec_version": "2.1",
                "created": "2017-01-20T00:00:00.000Z",
                "modified": "2017-01-20T00:00:00.000Z",
                "name": "TLP:GREEN",
                "definition_type": "TLP",
                "extensions": _octi("Marking-Definition", order=1, color="#2e7d32"),
                "type": "marking-definition",
            },
            _indicator(
                "0b2c4f0e-97e5-4f53-8b1b-5c7d1f3e9a01", f"[file:hashes.'SHA-256' = '{SHA256}']"
            ),
            {
                "id": "file--6d9a7c5e-2f1b-5a4c-9e3d-8b7a6c5d4e3f",
                "spec_version": "2.1",
                "hashes": {"SHA-256": SHA256},
                "x_opencti_score": 80,
                "extensions": _octi("StixFile"),
                "type": "file",
            },
            {
                "id": "relationship--2a9f0c1e-5d3b-4c7a-8e6f-1b0d2c3e4f5a",
                "spec_version": "2.1",
                "relationship_type": "based-on",
                "source_ref": "indicator--0b2c4f0e-97e5-4f53-8b1b-5c7d1f3e9a01",
                "target_ref": "file--6d9a7c5e-2f1b-5a4c-9e3d-8b7a6c5d4e3f",
                "created": STAMP,
                "modified": STAMP,
                "type": "relationship",
            },
            _indicator(
                "1c3d5e7f-0a2b-4c6d-8e0f-1a3b5c7d9e02",
                f"[url:value = '{URL}']",
                valid_until=valid_until,
                object_marking_refs=[TLP_GREEN],
                x_opencti_main_observable_type="Url",
            ),
            _indicator(
                "2d4e6f80-1b3c-4d5e-9f01-2b4c6d8e0f03", "[domain-name:value = 'example.org']"
            ),
            _indicator(
                "3e5f7081-2c4d-4e6f-8012-3c5d7e9f1a04",
                "rule tvec { condition: true }",
                pattern_type="yara",
            ),
            _indicator(
                "4f608192-3d5e-4f70-9123-4d6e8f0a2b05",
                f"[file:hashes.MD5 = '{FILENAME_MD5}']",
                revoked=True,
            ),
            _indicator(
                "50719203-4e6f-4081-8234-5e7f9a1b3c06",
                f"[file:hashes.MD5 = '{NOT_IDS_MD5}']",
                valid_until="2020-01-01T00:00:00.000Z",
            ),
            {
                "id": "url--7e8f9a0b-1c2d-5e3f-8a4b-5c6d7e8f9a0b",
                "spec_version": "2.1",
                "value": "https://example.net/not-an-indicator",
                "extensions": _octi("Url"),
                "type": "url",
            },
        ],
    }

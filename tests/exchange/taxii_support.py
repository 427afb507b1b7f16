"""Helpers of the TAXII tests: a member's TAXII requests through the test client, and
stix2-validator over everything served."""

from __future__ import annotations

from typing import Any

import stix2validator

from tests.factories import Party

TAXII = "application/taxii+json;version=2.1"
ROOT = "/taxii2/forum/"


def taxii_get(party: Party, path: str, **params: Any) -> Any:
    """GET a TAXII path as ``party`` (Bearer key, TAXII Accept)."""
    return party.client.get(path, params, HTTP_ACCEPT=TAXII)


def collection_url(collection_id: str, tail: str = "objects/") -> str:
    return f"{ROOT}collections/{collection_id}/{tail}"


def all_objects(party: Party, collection_id: str, limit: int = 3, **params: Any) -> list[Any]:
    """Every object of a collection, following ``next`` with a small page size."""
    objects: list[Any] = []
    following: str | None = None
    while True:
        extra = {"next": following} if following else {}
        response = taxii_get(party, collection_url(collection_id), limit=limit, **params, **extra)
        assert response.status_code == 200, response.content
        body = response.json()
        objects.extend(body.get("objects", []))
        assert_valid(body.get("objects", []))
        if not body["more"]:
            return objects
        following = body["next"]


def assert_valid(objects: list[dict[str, Any]]) -> None:
    """stix2-validator finds no error in any of ``objects``."""
    options = stix2validator.ValidationOptions(version="2.1")
    for obj in objects:
        result = stix2validator.validate_instance(obj, options)
        assert result.is_valid, (obj, [str(e) for e in result.errors])

"""TAXII 2.1 endpoints under ``/taxii2/``: discovery, the API root, collections, objects,
versions and manifest.

DRF views for the API-key authentication, the active-member check and the throttles the
rest of the API has, but they render TAXII resources themselves (orjson, no serializer
per object) and every error as a TAXII error message. They are not in the OpenAPI
schema: TAXII clients follow the TAXII specification, not our schema (docs/api.md).
"""

from __future__ import annotations

import binascii
from datetime import datetime
from typing import Any

import orjson
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from exchange.client import base64url, json_input, stix
from exchange.feed import DEFAULT_LIMIT, MAX_LIMIT
from forum.errors import DomainError
from members.apis import principal

from . import selectors
from .authentication import TaxiiAuthentication

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
API_ROOT = "forum"
# The largest request body the API root takes: it takes none (no collection is writable).
MAX_CONTENT_LENGTH = 0


class TaxiiError(DomainError):
    """A problem answered as a TAXII error message."""


def _acceptable(header: str, media_types: tuple[str, ...]) -> bool:
    """Does an ``Accept`` header admit one of ``media_types`` (TAXII 2.1, section 1.6.8)?"""
    if not header.strip():
        return True
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        kind = parts[0].lower()
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if params.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if kind in ("*/*", "application/*"):
            return True
        for media_type in media_types:
            wanted, _, version = media_type.partition(";version=")
            if kind == wanted and params.get("version", version).strip() == version:
                return True
    return False


class TaxiiView(APIView):
    """Base of the TAXII endpoints: key with scope ``read``, TAXII media types, TAXII
    error messages."""

    authentication_classes = [TaxiiAuthentication]
    required_scope = "read"
    throttle_scope = "read"
    http_method_names = ["get", "head", "options"]
    schema = None  # TAXII's own specification documents these, not the OpenAPI schema
    media_types: tuple[str, ...] = (TAXII_MEDIA_TYPE,)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not _acceptable(request.headers.get("Accept", ""), self.media_types):
            raise TaxiiError(
                f"This resource is served as {TAXII_MEDIA_TYPE}.",
                code="not_acceptable",
                status=406,
            )
        super().initial(request, *args, **kwargs)

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # TAXII's negotiation is done in initial(); the views render their own bodies.
        return JSONRenderer(), TAXII_MEDIA_TYPE

    def handle_exception(self, exc: Exception) -> HttpResponse:  # type: ignore[override]
        if isinstance(exc, DomainError):
            title = _TITLES.get(exc.status, exc.title)
            return taxii_error(exc.status, title, exc.detail, exc.code)
        if isinstance(exc, exceptions.APIException):
            status = exc.status_code
            if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
                status = 401
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else "error"
            response = taxii_error(status, _TITLES.get(status, "Error"), str(exc.detail), code)
            if status == 401:
                response["WWW-Authenticate"] = TaxiiAuthentication().authenticate_header(
                    self.request
                )
            wait = getattr(exc, "wait", None)
            if wait is not None:
                response["Retry-After"] = str(int(wait or 1))
            return response
        raise exc


_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    413: "Request too large",
    429: "Too many requests",
}


def taxii_error(status: int, title: str, description: str, code: str) -> HttpResponse:
    body = {
        "title": title,
        "description": description,
        "error_code": code,
        "http_status": str(status),
    }
    return taxii_response(body, status=status)


def taxii_response(
    data: Any, status: int = 200, media_type: str = TAXII_MEDIA_TYPE
) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type=media_type)


def _root_url(request: Request) -> str:
    return request.build_absolute_uri(f"/taxii2/{API_ROOT}/")


class DiscoveryView(TaxiiView):
    def get(self, request: Request) -> HttpResponse:
        root = _root_url(request)
        return taxii_response(
            {
                "title": "Cordiale forum",
                "description": "Signed hashes of terrorist and violent extremist content, "
                "as STIX 2.1 (docs/api.md).",
                "default": root,
                "api_roots": [root],
            }
        )


class ApiRootView(TaxiiView):
    def get(self, request: Request) -> HttpResponse:
        return taxii_response(
            {
                "title": "Cordiale forum",
                "description": "The forum's collections: the forum and your sharing groups.",
                "versions": [TAXII_MEDIA_TYPE],
                "max_content_length": MAX_CONTENT_LENGTH,
            }
        )


def _collection_resource(collection: selectors.Collection) -> dict[str, Any]:
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "alias": collection.alias,
        "can_read": True,
        "can_write": False,
        "media_types": [STIX_MEDIA_TYPE],
    }


class CollectionsView(TaxiiView):
    def get(self, request: Request) -> HttpResponse:
        found = selectors.collections_for(member=principal(request).member)
        return taxii_response({"collections": [_collection_resource(c) for c in found]})


NOT_FOUND = "No collection with this id is available to you."


def _collection(request: Request, key: str) -> selectors.Collection:
    collection = selectors.collection_find(member=principal(request).member, key=key)
    if collection is None:
        raise TaxiiError(NOT_FOUND, code="collection_not_found", status=404)
    return collection


class CollectionView(TaxiiView):
    def get(self, request: Request, collection_id: str) -> HttpResponse:
        return taxii_response(_collection_resource(_collection(request, collection_id)))


# --- paging --------------------------------------------------------------------------


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or int(raw) < 1:
        raise TaxiiError("limit must be a positive integer.", code="invalid_limit", status=400)
    return min(int(raw), MAX_LIMIT)  # TAXII lets a server return fewer than asked


def _timestamp(raw: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in raw.upper():
        raise TaxiiError(
            f"{name} must be an RFC 3339 timestamp in UTC, such as 2025-11-29T07:06:40.000Z.",
            code=f"invalid_{name}",
            status=400,
        )
    return moment


def next_token(collection: selectors.Collection, position: selectors.Position) -> str:
    data = {"v": 1, "c": collection.id, "k": position.statics, "s": position.seq}
    return base64url.encode(orjson.dumps(data))


def _next_position(collection: selectors.Collection, raw: str) -> selectors.Position:
    try:
        data = json_input.loads(base64url.decode(raw))
        if not isinstance(data, dict) or data.get("v") != 1 or data.get("c") != collection.id:
            raise ValueError("token")
        statics, seq = data.get("k"), data.get("s")
        if type(statics) is not int or type(seq) is not int:
            raise ValueError("token")
        if not 0 <= statics <= len(selectors.STATIC_OBJECTS) or not 0 <= seq < 2**63:
            raise ValueError("token")
    except (ValueError, TypeError, binascii.Error, json_input.InvalidJSON):
        raise TaxiiError(
            "next must be a value this server returned for this collection.",
            code="invalid_next",
            status=400,
        ) from None
    return selectors.Position(statics=statics, seq=seq)


def _list(request: Request, name: str) -> frozenset[str] | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    return frozenset(v.strip() for v in raw.split(",") if v.strip())


def _filters(request: Request, object_id: str | None = None) -> selectors.Filters:
    versions = _list(request, "match[version]") or frozenset({"last"})
    for version in versions:
        if version not in ("last", "first", "all"):
            _timestamp(version, "version")
    ids = _list(request, "match[id]")
    if object_id is not None:
        ids = frozenset({object_id}) if ids is None or object_id in ids else frozenset()
    return selectors.Filters(
        types=_list(request, "match[type]"),
        ids=ids,
        versions=versions,
        spec_versions=_list(request, "match[spec_version]"),
    )


def _page(request: Request, collection: selectors.Collection, filters: selectors.Filters):  # type: ignore[no-untyped-def]
    raw_next = request.query_params.get("next")
    raw_after = request.query_params.get("added_after")
    if raw_next:
        position = _next_position(collection, raw_next)
    elif raw_after:
        position = selectors.position_after(_timestamp(raw_after, "added_after"))
    else:
        position = selectors.Position()
    return selectors.objects_page(
        member=principal(request).member,
        collection=collection,
        position=position,
        limit=_limit(request),
        filters=filters,
    )


def _paged_response(
    collection: selectors.Collection, page: selectors.Page, key: str, items: list[Any]
) -> HttpResponse:
    body: dict[str, Any] = {"more": page.more}
    if page.more:
        body["next"] = next_token(collection, page.position)
    if items:
        body[key] = items
    response = taxii_response(body)
    if page.objects:
        response["X-TAXII-Date-Added-First"] = page.objects[0][0]
        response["X-TAXII-Date-Added-Last"] = page.objects[-1][0]
    return response


class ObjectsBase(TaxiiView):
    work_scope = "feed_rows"
    media_types = (TAXII_MEDIA_TYPE, STIX_MEDIA_TYPE)

    def throttle_cost(self, request: Request) -> int:
        raw = request.query_params.get("limit", "")
        return min(int(raw), MAX_LIMIT) if raw.isdigit() and int(raw) > 0 else DEFAULT_LIMIT


class ObjectsView(ObjectsBase):
    def get(self, request: Request, collection_id: str) -> HttpResponse:
        collection = _collection(request, collection_id)
        page = _page(request, collection, _filters(request))
        return _paged_response(collection, page, "objects", [o for _, o in page.objects])


OBJECT_NOT_FOUND = "No object with this id is available to you in this collection."


def _found(page: selectors.Page) -> selectors.Page:
    """TAXII's 404 for an object the listing does not hold: the same whether nobody
    served the id or the caller may not see it."""
    if not page.objects and not page.more:
        raise TaxiiError(OBJECT_NOT_FOUND, code="object_not_found", status=404)
    return page


class ObjectView(ObjectsBase):
    """One object by id: the objects listing filtered to that id (``next`` pages on)."""

    def get(self, request: Request, collection_id: str, object_id: str) -> HttpResponse:
        collection = _collection(request, collection_id)
        page = _found(_page(request, collection, _filters(request, object_id)))
        return _paged_response(collection, page, "objects", [o for _, o in page.objects])


class VersionsView(ObjectsBase):
    def get(self, request: Request, collection_id: str, object_id: str) -> HttpResponse:
        collection = _collection(request, collection_id)
        filters = _filters(request, object_id)
        filters.versions = frozenset({"all"})
        page = _found(_page(request, collection, filters))
        versions = [_version(o) for _, o in page.objects]
        return _paged_response(collection, page, "versions", versions)


class ManifestView(ObjectsBase):
    def get(self, request: Request, collection_id: str) -> HttpResponse:
        collection = _collection(request, collection_id)
        page = _page(request, collection, _filters(request))
        entries = [
            {
                "id": o["id"],
                "date_added": added,
                "version": _version(o),
                "media_type": STIX_MEDIA_TYPE,
            }
            for added, o in page.objects
        ]
        return _paged_response(collection, page, "objects", entries)


def _version(obj: dict[str, Any]) -> str:
    return str(obj.get("modified") or obj.get("created") or stix.FORUM_EPOCH)

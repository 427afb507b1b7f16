"""
Reading a STIX 2.1 bundle, as MISP and OpenCTI export one, into rows to sign and submit.

``cordiale submit bundle.json`` turns each STIX ``indicator`` whose pattern names exactly
one value of a signal type the forum knows into one statement, signed with the member's
own key like a CSV row (``exchange.client.submission``). Everything else in the bundle is
context, or is listed as *unsupported* with the reason, so that nothing is dropped
silently.

Which patterns name one value, and why the others do not, is
``exchange.client.stix_patterns`` (md5, sha256, pdq, vpdq hashes of ``file`` and
``url:value``, read with the ``stix2`` pattern parser). Also unsupported, with a reason:
another ``pattern_type`` (YARA, Sigma, Snort…), revoked or lapsed indicators, and
observables (``observed-data`` and cyber-observable objects) that no indicator is
``based-on``: MISP exports attributes without the IDS flag that way.

Each statement's claims come from the indicator and the options:

- ``labels``: ``--labels`` (for every indicator), plus the indicator's own STIX ``labels``
  (and those of a ``report`` or ``grouping`` that contains it, where MISP puts an event's
  tags) translated by the ``--label-map`` file, plus those that already are forum label
  slugs. An indicator left without a label is unsupported.
- ``tlp``: the indicator's TLP marking (TLP 1.0 or 2.0, by the standard marking ids or
  by a ``marking-definition`` in the bundle: OASIS ``tlp``, the TLP 2.0 extension, or
  OpenCTI's ``TLP:…`` markings); without one, that of a containing report or grouping,
  else ``--default-tlp``. Several TLP markings: the most restrictive. ``TLP:WHITE`` is
  ``clear``.
- ``audience``: ``--audience`` (default ``forum``); ``exp``: ``valid_until``, if any.

Two indicators naming the same value become one statement (the first); the other is
listed as unsupported. An indicator that carries a forum statement (the TAXII channel's
JWS extension: it was read from the forum) is not signed again: re-signing another
member's statement would claim it as the submitter's own. Nothing else in a bundle is
trusted beyond being a value to sign: the member signs only what it chose to export.

This module imports nothing from Django; ``stix2`` is imported when a bundle is read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange.client import json_input, jws, stix
from exchange.client.statement_format import AUDIENCE_FORUM, TLP_VALUES
from exchange.client.stix_patterns import PatternUnsupported, parse_pattern
from exchange.client.submission import InputError, InputRow

# TLP levels from the least to the most restrictive.
TLP_ORDER = ("clear", "green", "amber", "amber+strict", "red")
# The marking definitions every STIX producer refers to by id without always including
# them: STIX 2.1's TLP 1.0 (stix2.TLP_WHITE…) and the OASIS TLP 2.0 ones.
KNOWN_TLP_MARKINGS: Mapping[str, str] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "clear",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
    **{marking: tlp for tlp, marking in stix.TLP_MARKINGS.items()},
}
TLP2_EXTENSION = stix.TLP_EXTENSION_ID

# STIX 2.1 cyber-observable object types (section 6), and observed-data.
OBSERVABLE_TYPES = frozenset(
    {
        "artifact",
        "autonomous-system",
        "directory",
        "domain-name",
        "email-addr",
        "email-message",
        "file",
        "ipv4-addr",
        "ipv6-addr",
        "mac-addr",
        "mutex",
        "network-traffic",
        "process",
        "software",
        "url",
        "user-account",
        "windows-registry-key",
        "x509-certificate",
        "observed-data",
    }
)
CONTAINER_TYPES = frozenset({"report", "grouping"})
NOT_AN_INDICATOR = (
    "an observable, not an indicator: only indicators become statements (MISP exports "
    "attributes without the IDS flag this way; OpenCTI: create an indicator from it)"
)


class StixUnavailable(InputError):
    """The ``stix2`` library is not installed."""

    code = "stix_unavailable"


@dataclass(frozen=True)
class BundleOptions:
    """What the bundle does not say: ``labels`` for every statement, the ``label_map``
    from STIX labels to forum label slugs, the ``known_labels`` (slugs kept as they are),
    ``default_tlp`` for indicators without a TLP marking, and the ``audience``."""

    labels: tuple[str, ...] = ()
    label_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    known_labels: frozenset[str] = frozenset()
    default_tlp: str | None = None
    audience: str = AUDIENCE_FORUM


@dataclass(frozen=True)
class Unsupported:
    """An object of the bundle that does not become a statement, and why."""

    id: str
    type: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "type": self.type, "reason": self.reason}


@dataclass
class BundleRows:
    """The rows to submit (``indicators[n]`` is the id of row ``n``), the unsupported
    objects, notes on what was ignored in accepted patterns, and the count per type."""

    rows: list[InputRow] = field(default_factory=list)
    indicators: dict[int, str] = field(default_factory=dict)
    unsupported: list[Unsupported] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    types: Counter[str] = field(default_factory=Counter)


def load_bundle(path: Path) -> list[dict[str, Any]]:
    """The objects of the STIX bundle (or TAXII envelope) in ``path``."""
    try:
        document = json_input.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    except json_input.InvalidJSON as exc:
        raise InputError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("objects"), list):
        raise InputError(f"{path} is not a STIX bundle: no list of objects")
    if document.get("type", "bundle") != "bundle":
        raise InputError(f"{path} is a STIX {document.get('type')!r}, not a bundle")
    return [obj for obj in document["objects"] if isinstance(obj, dict)]


def is_bundle_file(path: Path) -> bool:
    """Whether ``cordiale submit`` reads ``path`` as a STIX bundle: a ``.json`` file."""
    return path.suffix.lower() in (".json", ".stix")


def read_label_map(path: Path) -> dict[str, tuple[str, ...]]:
    """A JSON object from STIX labels to a forum label slug or a list of them."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the label map {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise InputError(f"{path}: the label map must be a JSON object")
    mapping: dict[str, tuple[str, ...]] = {}
    for source, target in document.items():
        slugs = [target] if isinstance(target, str) else target
        if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
            raise InputError(f"{path}: {source!r} must map to a label slug or a list of them")
        mapping[source] = tuple(slugs)
    return mapping


def bundle_rows(
    objects: list[dict[str, Any]], options: BundleOptions, *, now: datetime | None = None
) -> BundleRows:
    """Rows for every supported indicator of ``objects``, and what is unsupported."""
    _require_stix2()
    now = now or datetime.now(UTC)
    result = BundleRows(types=Counter(str(obj.get("type")) for obj in objects))
    latest = _latest_versions(objects)
    context = _Context(latest.values())
    seen: dict[tuple[str, str], str] = {}
    for obj in latest.values():
        kind = str(obj.get("type"))
        ident = str(obj.get("id"))
        if kind in OBSERVABLE_TYPES and not context.covers(ident):
            result.unsupported.append(Unsupported(ident, kind, NOT_AN_INDICATOR))
        if kind != "indicator":
            continue
        try:
            fields, notes = _indicator_fields(obj, options, context, now)
        except PatternUnsupported as exc:
            result.unsupported.append(Unsupported(ident, kind, str(exc)))
            continue
        key = (fields["signal_type"], fields["value"])
        if key in seen:
            reason = f"names the same {key[0]} value as {seen[key]}, which is submitted"
            result.unsupported.append(Unsupported(ident, kind, reason))
            continue
        seen[key] = ident
        number = len(result.rows) + 1
        result.rows.append(InputRow(number, fields))
        result.indicators[number] = ident
        result.notes += [f"{ident}: {note}" for note in notes]
    return result


def _require_stix2() -> None:
    try:
        import stix2.pattern_visitor  # noqa: F401
    except ImportError as exc:
        raise StixUnavailable(
            "reading STIX bundles needs the stix2 library: pip install 'cordiale-client[stix]'"
        ) from exc


def _latest_versions(objects: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One object per id, its latest ``modified`` version, in bundle order."""
    latest: dict[str, dict[str, Any]] = {}
    for obj in objects:
        ident = str(obj.get("id"))
        current = latest.get(ident)
        if current is None or str(obj.get("modified", "")) > str(current.get("modified", "")):
            latest[ident] = obj
    return latest


class _Context:
    """What other objects of the bundle say about an indicator or an observable."""

    def __init__(self, objects: Iterable[dict[str, Any]]) -> None:
        self.markings: dict[str, str] = dict(KNOWN_TLP_MARKINGS)
        self.containers: dict[str, list[dict[str, Any]]] = {}
        self.based_on: set[str] = set()
        observed: dict[str, list[str]] = {}
        referenced: set[str] = set()
        for obj in objects:
            kind = obj.get("type")
            if kind == "marking-definition":
                tlp = _marking_tlp(obj)
                if tlp is not None:
                    self.markings[str(obj.get("id"))] = tlp
            elif kind in CONTAINER_TYPES:
                for ref in obj.get("object_refs") or []:
                    self.containers.setdefault(str(ref), []).append(obj)
            elif kind == "relationship" and obj.get("relationship_type") == "based-on":
                if str(obj.get("source_ref", "")).startswith("indicator--"):
                    self.based_on.add(str(obj.get("target_ref")))
            elif kind == "observed-data":
                refs = [str(ref) for ref in obj.get("object_refs") or []]
                observed[str(obj.get("id"))] = refs
                referenced.update(refs)
        # An observable is covered by an indicator based on it or on its observed-data;
        # one that an observed-data holds shares that observed-data's fate.
        for data_id, refs in observed.items():
            if data_id in self.based_on:
                self.based_on.update(refs)
        self._held = referenced

    def covers(self, ident: str) -> bool:
        return ident in self.based_on or (
            not ident.startswith("observed-data--") and ident in self._held
        )

    def tlp_of(self, obj: dict[str, Any]) -> str | None:
        """The most restrictive TLP marking of ``obj``, else of a container holding it."""
        own = self._most_restrictive(obj.get("object_marking_refs") or [])
        if own is not None:
            return own
        inherited = [
            ref
            for container in self.containers.get(str(obj.get("id")), [])
            for ref in container.get("object_marking_refs") or []
        ]
        return self._most_restrictive(inherited)

    def _most_restrictive(self, refs: Iterable[Any]) -> str | None:
        levels = [self.markings[str(ref)] for ref in refs if str(ref) in self.markings]
        return max(levels, key=TLP_ORDER.index) if levels else None

    def container_labels(self, obj: dict[str, Any]) -> list[str]:
        return [
            str(label)
            for container in self.containers.get(str(obj.get("id")), [])
            for label in container.get("labels") or []
        ]


def _marking_tlp(marking: dict[str, Any]) -> str | None:
    """The TLP level a marking definition states, in any of the shapes producers write."""
    candidates: list[Any] = []
    definition = marking.get("definition")
    kind = str(marking.get("definition_type", "")).lower()
    if kind == "tlp" and isinstance(definition, dict):
        candidates.append(definition.get("tlp"))
    extension = (marking.get("extensions") or {}).get(TLP2_EXTENSION)
    if isinstance(extension, dict):
        candidates.append(extension.get("tlp_2_0"))
    if str(marking.get("x_opencti_definition_type", "")).upper() == "TLP":
        candidates.append(marking.get("x_opencti_definition"))
    if kind == "tlp" or str(marking.get("x_opencti_definition_type", "")).upper() == "TLP":
        candidates.append(marking.get("name"))
    for candidate in candidates:
        level = _tlp_level(candidate)
        if level is not None:
            return level
    return None


def _tlp_level(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    level = text.strip().lower().removeprefix("tlp:")
    level = "clear" if level == "white" else level
    return level if level in TLP_VALUES else None


def _indicator_fields(
    indicator: dict[str, Any], options: BundleOptions, context: _Context, now: datetime
) -> tuple[dict[str, str], list[str]]:
    """The row fields of a supported indicator and notes; raise PatternUnsupported."""
    signed = _forum_statement(indicator)
    if signed is not None:
        raise PatternUnsupported(
            f"already a signed statement of the forum, by {signed}: not signed again "
            "(an indicator read from the forum's TAXII collections)"
        )
    if indicator.get("revoked") is True:
        raise PatternUnsupported(
            "revoked by its producer; to withdraw a value from the forum run `cordiale retract`"
        )
    pattern_type = str(indicator.get("pattern_type") or "stix").lower()
    if pattern_type != "stix":
        raise PatternUnsupported(f"pattern_type {pattern_type!r}: only STIX patterns are read")
    version = "2.0" if indicator.get("spec_version", "2.1") == "2.0" else "2.1"
    signal_type, value, notes = parse_pattern(str(indicator.get("pattern", "")), version=version)
    fields = {"signal_type": signal_type, "value": value, "audience": options.audience}
    exp = _expiry(indicator, now)
    if exp is not None:
        fields["exp"] = str(exp)
    labels = _labels(indicator, options, context)
    if not labels:
        sources = [*(indicator.get("labels") or []), *context.container_labels(indicator)]
        seen = ", ".join(repr(str(label)) for label in sources) or "none"
        raise PatternUnsupported(
            f"no forum label: pass --labels, or map one of its STIX labels ({seen}) "
            "with --label-map"
        )
    fields["labels"] = "|".join(labels)
    tlp = context.tlp_of(indicator) or options.default_tlp
    if tlp is None:
        raise PatternUnsupported("no TLP marking: mark it in your platform or pass --default-tlp")
    fields["tlp"] = tlp
    return fields, notes


def _forum_statement(indicator: dict[str, Any]) -> str | None:
    """The issuer of the forum statement an indicator carries (the TAXII channel's JWS
    extension), or None: re-signing another member's statement would claim it as ours."""
    extension = (indicator.get("extensions") or {}).get(stix.JWS_EXTENSION_ID)
    if not isinstance(extension, dict) or "jws" not in extension:
        return None
    try:
        token = str(extension["jws"])
        return str(jws.parse_compact(token, max_length=jws.MAX_LONG_TOKEN_LENGTH).claims["iss"])
    except (jws.MalformedJWS, KeyError):
        return "an unreadable JWS"


def _labels(indicator: dict[str, Any], options: BundleOptions, context: _Context) -> list[str]:
    labels = list(options.labels)
    for source in [*(indicator.get("labels") or []), *context.container_labels(indicator)]:
        source = str(source)
        if source in options.label_map:
            labels.extend(options.label_map[source])
        elif source in options.known_labels:
            labels.append(source)
    return list(dict.fromkeys(label for label in labels if label))


def _expiry(indicator: dict[str, Any], now: datetime) -> int | None:
    """``exp`` from ``valid_until``; raise PatternUnsupported if it has passed."""
    text = indicator.get("valid_until")
    if not text:
        return None
    from stix2.utils import parse_into_datetime

    try:
        until = parse_into_datetime(text)
    except ValueError as exc:
        raise PatternUnsupported(f"valid_until {text!r} is not a timestamp") from exc
    if until <= now:
        raise PatternUnsupported(f"lapsed: valid_until {text} has passed")
    return int(until.timestamp())

"""
The ``cordiale`` command: a member's tools for the forum (docs/client.md).

Configuration comes from flags or the environment: ``--url``/``CORDIALE_URL``,
``--api-key``/``CORDIALE_API_KEY``, ``--signing-key``/``CORDIALE_SIGNING_KEY`` (path of the
member's PEM private key) and ``--member``/``CORDIALE_MEMBER`` (the member's slug; asked of
the server when not given). Every command prints one JSON line last on stdout; humans read
stderr. Exit status: 0 success, 1 failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from exchange.client import jws
from exchange.client.api import DEFAULT_MAX_RETRIES, CordialeClient, CordialeError
from exchange.client.benign import split_neighbours
from exchange.client.hashing import (
    VPDQ_QUALITY_THRESHOLD,
    HashingUnavailable,
    UnreadableMedia,
    VideoHash,
    file_hashes,
)
from exchange.client.replica import DB_NAME, PageResult, Replica
from exchange.client.signal_types import SIGNAL_TYPES
from exchange.client.statement_format import AUDIENCE_FORUM, MAX_BATCH, OP_RETRACT, TLP_VALUES
from exchange.client.statements import (
    StatementError,
    build_statement,
    generate_key,
    key_id,
    key_proof,
    load_private_key,
    public_jwk_path,
    sign_statement,
)
from exchange.client.stix_bundle import (
    BundleOptions,
    bundle_rows,
    is_bundle_file,
    load_bundle,
    read_label_map,
)
from exchange.client.submission import (
    InputError,
    InputRow,
    SubmitSummary,
    read_rows,
    submit_file,
    write_rejected,
)
from exchange.client.verify import KeyReport

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Missing or contradictory configuration: exit status 2."""


def client_version() -> str:
    """The installed distribution's version (``cordiale-client`` or the server's)."""
    for name in ("cordiale-client", "cordiale"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


def emit(result: dict[str, Any]) -> None:
    """The command's last line on stdout."""
    print(json.dumps(result, sort_keys=False), flush=True)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _setting(args: argparse.Namespace, name: str, env: str) -> str | None:
    return getattr(args, name, None) or os.environ.get(env) or None


def make_client(args: argparse.Namespace) -> CordialeClient:
    url = _setting(args, "url", "CORDIALE_URL")
    api_key = _setting(args, "api_key", "CORDIALE_API_KEY")
    if not url:
        raise UsageError("no server URL: pass --url or set CORDIALE_URL")
    if not api_key:
        raise UsageError("no API key: pass --api-key or set CORDIALE_API_KEY")
    transport = getattr(args, "transport", None)  # tests inject an httpx.MockTransport
    return CordialeClient(
        url,
        api_key,
        timeout=getattr(args, "timeout", 30.0),
        max_retries=_max_retries(args),
        transport=transport,
    )


def _max_retries(args: argparse.Namespace) -> int:
    value = getattr(args, "max_retries", None)
    if value is None:
        value = os.environ.get("CORDIALE_MAX_RETRIES") or DEFAULT_MAX_RETRIES
    try:
        retries = int(value)
    except ValueError:
        raise UsageError(f"CORDIALE_MAX_RETRIES must be a whole number, not {value!r}") from None
    if retries < 0:
        raise UsageError("the number of retries cannot be negative")
    return retries


def signing_key(args: argparse.Namespace) -> Any:
    path = _setting(args, "signing_key", "CORDIALE_SIGNING_KEY")
    if not path:
        raise UsageError("no signing key: pass --signing-key or set CORDIALE_SIGNING_KEY")
    return load_private_key(path)


def issuer(args: argparse.Namespace, client: CordialeClient) -> str:
    """The member's slug: from --member/CORDIALE_MEMBER, else from ``GET /me``."""
    configured = _setting(args, "member", "CORDIALE_MEMBER")
    if configured:
        return configured
    me = client.me()
    member = me.get("member", me)
    slug = member.get("slug") if isinstance(member, dict) else member
    if not isinstance(slug, str) or not slug:
        raise UsageError("cannot tell the member's slug from /me; pass --member")
    return slug


def progress_bar(args: argparse.Namespace, total: int | None, unit: str) -> Any:
    from tqdm import tqdm

    wanted = getattr(args, "progress", None)
    enabled = wanted if wanted is not None else sys.stderr.isatty()
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=not enabled, leave=False)


# Commands


def new_key_files(out: Path) -> tuple[Any, dict[str, str]]:
    """A new private key at ``out`` (0600) and its public JWK next to it."""
    public_path = public_jwk_path(out)
    for path in (out, public_path):
        if path.exists():
            raise UsageError(f"{path} exists; refusing to overwrite a key")
    private_key = generate_key(out)
    jwk = jws.public_jwk(jws.public_key_x(private_key.public_key()))
    public_path.write_text(json.dumps(jwk, indent=2) + "\n")
    return private_key, jwk


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    private_key, jwk = new_key_files(out)
    say(
        f"wrote {out} (private, mode 0600: keep it secret) and {public_jwk_path(out)} (public). "
        "Register it with `cordiale keys register` (an admin approves it), or have an admin "
        "run `manage.py register_signing_key` with the public file. Its kid: " + jwk["kid"]
    )
    emit({"kid": key_id(private_key), "public_jwk": jwk})
    return 0


def _public_jwk_of(args: argparse.Namespace) -> dict[str, Any]:
    """The JWK to register: ``--public-key`` (a JWK or PEM file), else the public half of
    the configured signing key."""
    if args.public_key:
        text = Path(args.public_key).read_text()
        try:
            x = jws.load_public_key(text)
        except jws.InvalidKey as exc:
            raise StatementError("invalid_key", f"{args.public_key}: {exc}") from exc
        return jws.public_jwk(x)
    return jws.public_jwk(jws.public_key_x(signing_key(args).public_key()))


def cmd_keys(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        if args.action == "list":
            keys = client.list_signing_keys()
            for key in keys:
                say(f"{key.get('kid')}  {key.get('status')}  {key.get('created_at')}")
            emit({"keys": keys})
        elif args.action == "register":
            key = client.register_signing_key(_public_jwk_of(args))
            if key.get("status") == "pending":
                say(
                    f"key {key.get('kid')} is pending: it signs nothing until the forum's admins "
                    "approve it. Give them this kid through a channel you trust (not this API) "
                    "so they can compare it."
                )
            emit(key)
        elif args.action == "rotate":
            return _rotate(args, client)
        else:
            emit(client.retire_signing_key(args.kid))
    return 0


def _rotate(args: argparse.Namespace, client: CordialeClient) -> int:
    """A new key, registered active at once with a proof by the current one."""
    current = signing_key(args)
    member = issuer(args, client)
    out = Path(args.new_key)
    if out.exists():
        new_private = load_private_key(out)
        jwk = jws.public_jwk(jws.public_key_x(new_private.public_key()))
    else:
        new_private, jwk = new_key_files(out)
    proof = key_proof(member=member, new_x=jwk["x"], private_key=current)
    key = client.register_signing_key(jwk, proof=proof)
    result: dict[str, Any] = {**key, "new_key": str(out), "retired": None}
    if args.retire_old:
        result["retired"] = client.retire_signing_key(key_id(current)).get("kid")
    say(
        f"key {key.get('kid')} is {key.get('status')}. Sign with {out} from now on "
        "(CORDIALE_SIGNING_KEY)"
        + ("" if args.retire_old else "; retire the old key with `cordiale keys retire KID`")
    )
    emit(result)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if is_bundle_file(path):
        return submit_bundle(args, path)
    if any(getattr(args, name, None) is not None for name in BUNDLE_OPTIONS):
        raise UsageError(
            "--labels, --label-map, --default-tlp and --audience are for STIX bundles "
            f"(.json files); {path.name} is read as CSV or JSONL"
        )
    rows = read_rows(path)
    key = signing_key(args)
    with make_client(args) as client:
        summary = _submit_rows(args, client, path, rows, key)
    emit(summary.totals())
    return EXIT_FAILURE if summary.counts["rejected"] else 0


def _submit_rows(
    args: argparse.Namespace, client: CordialeClient, path: Path, rows: list[InputRow], key: Any
) -> SubmitSummary:
    """Sign and submit ``rows`` of ``path`` (resuming), print the table of results."""
    member = issuer(args, client)
    with progress_bar(args, len(rows), "row") as bar:
        summary = submit_file(
            client,
            path,
            issuer=member,
            private_key=key,
            batch_size=args.batch_size,
            on_rows=bar.update,
            rows=rows,
            retry_rejected=args.retry_rejected,
        )
    print_summary(summary, write_rejected(path, summary))
    return summary


BUNDLE_OPTIONS = ("labels", "label_map", "default_tlp", "audience")


def submit_bundle(args: argparse.Namespace, path: Path) -> int:
    """``submit`` of a STIX bundle: its supported indicators become statements; the
    unsupported objects are listed, with their reasons, on stderr and in the last line."""
    objects = load_bundle(path)
    key = signing_key(args)
    with make_client(args) as client:
        options = _bundle_options(args, client)
        converted = bundle_rows(objects, options)
        for unsupported in converted.unsupported:
            say(f"unsupported: {unsupported.id}: {unsupported.reason}")
        for note in converted.notes:
            say(f"note: {note}")
        say(
            f"{path.name}: {len(objects)} objects, {converted.types['indicator']} indicators, "
            f"{len(converted.rows)} to submit, {len(converted.unsupported)} unsupported"
        )
        summary = _submit_rows(args, client, path, converted.rows, key)
    result: dict[str, Any] = {
        **summary.totals(),
        "indicators": len(converted.rows),
        "unsupported": [item.as_dict() for item in converted.unsupported],
    }
    emit(result)
    if not converted.rows:
        say("nothing to submit: no indicator of the bundle names a supported value")
        return EXIT_FAILURE
    return EXIT_FAILURE if summary.counts["rejected"] else 0


def _bundle_options(args: argparse.Namespace, client: CordialeClient) -> BundleOptions:
    """The bundle options of the command line, checked against the forum's labels."""
    known = {
        str(label["slug"])
        for label in client.labels()
        if isinstance(label, dict) and label.get("active", True) and label.get("slug")
    }
    labels = tuple(_split_list((args.labels or "").replace("|", ",")) or ())
    label_map = read_label_map(Path(args.label_map)) if args.label_map else {}
    wrong = sorted(
        {label for label in labels if label not in known}
        | {slug for slugs in label_map.values() for slug in slugs if slug not in known}
    )
    if wrong:
        raise UsageError(
            f"not labels of the forum: {', '.join(wrong)}; `GET /api/v1/labels` lists them "
            f"({', '.join(sorted(known)) or 'none'})"
        )
    return BundleOptions(
        labels=labels,
        label_map=label_map,
        known_labels=frozenset(known),
        default_tlp=args.default_tlp,
        audience=args.audience or AUDIENCE_FORUM,
    )


def print_summary(summary: SubmitSummary, rejected_file: Path | None) -> None:
    lines = [f"{'status':<10} {'rows':>10}", f"{'-' * 10} {'-' * 10}"]
    lines += [f"{status:<10} {count:>10}" for status, count in summary.totals().items()]
    lines.append(f"{'total':<10} {summary.rows:>10}")
    if summary.resumed:
        lines.append(f"({summary.resumed} rows confirmed by an earlier run, not sent again)")
    codes: dict[str, int] = {}
    for result in summary.rejected:
        codes[result.code or "?"] = codes.get(result.code or "?", 0) + 1
    for code, count in sorted(codes.items(), key=lambda item: -item[1]):
        lines.append(f"  rejected {code}: {count}")
    if rejected_file is not None:
        lines.append(f"rejected rows with their code and detail: {rejected_file}")
    say("\n".join(lines))


def cmd_retract(args: argparse.Namespace) -> int:
    key = signing_key(args)
    with make_client(args) as client:
        claims = build_statement(
            issuer=issuer(args, client),
            signal_type=args.signal_type,
            value=args.value,
            op=OP_RETRACT,
        )
        response = client.submit([sign_statement(claims, key)])
    result = (response.get("results") or [{}])[0]
    status = result.get("status")
    # A retraction that changed nothing must not look like success.
    if status == "rejected":
        say(f"retraction rejected: {result.get('detail')} ({result.get('code')})")
    elif status == "stale":
        say(
            "retraction changed nothing (stale): the forum holds a statement of yours on "
            "this signal at the same or a later time; check your clock"
        )
    elif status not in ("accepted", "duplicate"):
        say(f"retraction not confirmed: unexpected result {status!r}")
    emit(result)
    return 0 if status in ("accepted", "duplicate") else EXIT_FAILURE


def cmd_sync(args: argparse.Namespace) -> int:
    with make_client(args) as client, Replica(args.state) as replica:
        with progress_bar(args, None, "signal") as bar:

            def on_page(result: PageResult, page: dict[str, Any]) -> None:
                bar.update(result.changes)
                for verdict in result.refused:
                    say(f"refused: {verdict.describe()}")

            outcome = replica.sync(client, limit=args.limit, on_page=on_page)
        signals = replica.count_signals()
    if outcome.refused:
        say(f"{len(outcome.refused)} statements failed verification and were not stored")
    result: dict[str, Any] = {
        "signals": signals,
        "changes": outcome.changes,
        "cursor": outcome.cursor,
    }
    if outcome.resynced:
        say(
            "the forum was restored from a backup: read its feed again from the start, "
            f"removed {outcome.removed} signals it no longer holds"
        )
        result["resynced"] = {"removed": outcome.removed}
    key_failed = _report_keys(outcome.key_reports, result)
    emit(result)
    return EXIT_FAILURE if outcome.refused or key_failed else 0


def _report_keys(reports: list[KeyReport], result: dict[str, Any]) -> bool:
    """Say what changed in the key set, add it to the JSON line; True if any is a failure.

    Nothing is added when nothing changed, so the line keeps its documented shape.
    """
    for report in reports:
        say(report.describe())
    if reports:
        result["key_changes"] = [report.as_dict() for report in reports]
    failed = any(report.failure for report in reports)
    if failed:
        say("the forum's key set contradicts what this replica pinned; see docs/client.md")
    return failed


def cmd_verify(args: argparse.Namespace) -> int:
    if not (Path(args.state) / "replica.sqlite3").exists():
        raise UsageError(f"no replica in {args.state}; run cordiale sync --state first")
    with Replica(args.state) as replica:
        results = replica.verify_all()
        key_failures = replica.key_failures()
    failed = [result for result in results if not result.ok]
    for result in failed:
        say(f"failed: {result.describe()}")
    summary: dict[str, Any] = {"verified": len(results) - len(failed), "failed": len(failed)}
    key_failed = _report_keys(key_failures, summary)
    emit(summary)
    return EXIT_FAILURE if failed or key_failed else 0


def cmd_hash(args: argparse.Namespace) -> int:
    """Hash files locally, print one JSON line per hash: no network, no API key."""
    count = 0
    for argument in args.files:
        path = Path(argument)
        if not path.is_file():
            raise UsageError(f"{argument} is not a file")
        computed = file_hashes(path)
        for signal_type, why in computed.notes.items():
            say(f"{argument}: no {signal_type} hash: {why}")
        if computed.video is not None:
            say(f"{argument}: vpdq of {_describe_video(computed.video)}")
        for signal_type, value in computed.hashes:
            if args.signal_type and signal_type not in args.signal_type:
                continue
            print(json.dumps({"file": argument, "signal_type": signal_type, "value": value}))
            count += 1
    emit({"files": len(args.files), "hashes": count})
    return 0


def parse_targets(argument: str) -> list[tuple[dict[str, str], str]]:
    """Match queries from a file (every hash type it supports) or ``type:value``, each with
    a label for messages. What cannot be computed for a file is said on stderr."""
    path = Path(argument)
    if path.is_file():
        computed = file_hashes(path)
        for signal_type, why in computed.notes.items():
            say(f"{argument}: no {signal_type} hash: {why}")
        queries = []
        for signal_type, value in computed.hashes:
            label = f"{argument} {signal_type}"
            if signal_type == "pdq":
                label += f" (quality {computed.pdq_quality})"
            elif signal_type == "vpdq" and computed.video is not None:
                label += f" ({_describe_video(computed.video)})"
            queries.append(({"signal_type": signal_type, "value": value}, label))
        return queries
    signal_type, sep, value = argument.partition(":")
    if not sep or signal_type not in SIGNAL_TYPES:
        raise UsageError(
            f"{argument!r} is neither a file nor TYPE:VALUE with TYPE one of "
            f"{', '.join(SIGNAL_TYPES)}"
        )
    try:
        canonical = SIGNAL_TYPES[signal_type].normalize(value)
    except Exception as exc:  # InvalidSignalValue carries the hint
        raise StatementError("invalid_value", f"{argument}: {exc}") from exc
    return [({"signal_type": signal_type, "value": canonical}, argument)]


def _describe_video(video: VideoHash) -> str:
    text = f"{video.frames} frames"
    if video.low_quality_frames:
        text += f", {video.low_quality_frames} below quality {VPDQ_QUALITY_THRESHOLD}, not matched"
    return text


def describe_match(match: dict[str, Any], *, benign: bool = False) -> str:
    """One line for a match, or with ``benign`` for a neighbour on the known-benign list
    (its benign statements' members and labels)."""
    signal = match.get("signal", {})
    statements = [
        s for s in signal.get("statements") or [] if not benign or s.get("benign") is True
    ]
    members = sorted({str(s.get("member")) for s in statements})
    distance = match.get("distance")
    where = "exact" if distance in (None, 0) else f"distance {distance}"
    value = str(signal.get("value"))
    if signal.get("signal_type") == "vpdq":
        where = f"closest frame at distance {distance}"
        if "query_match_percent" in match:
            where = (
                f"{match['query_match_percent']:.0f}% of the query's frames in it, "
                f"{match.get('compared_match_percent', 0):.0f}% of its frames matched; " + where
            )
        frames = value.count('",') + 1
        value = f"[{frames} frames] {value[:24]}..." if len(value) > 80 else value
    line = f"  {where}: {signal.get('signal_type')}:{value} from {', '.join(members)}"
    if benign:
        labels = sorted({str(label) for s in statements for label in s.get("labels") or []})
        return f"  known benign ({', '.join(labels)}), {line.strip()}"
    if match.get("near_benign"):
        line += "  [near a known-benign value: look before acting]"
    return line


def say_result(label: str, matches: list[Any], benign: list[Any], where: str = "") -> None:
    """The human lines for one query: its matches, then its known-benign neighbours."""
    note = f", {len(benign)} known benign" if benign else ""
    say(f"{label}: {len(matches)} match(es){note}{where}")
    for match in matches:
        say(describe_match(match))
    for neighbour in benign:
        say(describe_match(neighbour, benign=True))


def cmd_match(args: argparse.Namespace) -> int:
    queries = [query for argument in args.targets for query in parse_targets(argument)]
    matched = 0
    with make_client(args) as client:
        for start in range(0, len(queries), 1000):
            chunk = queries[start : start + 1000]
            response = client.match(
                [query for query, _ in chunk],
                args.max_distance,
                vpdq_query_match_percent=args.vpdq_query_match_percent,
                vpdq_compared_match_percent=args.vpdq_compared_match_percent,
            )
            by_index = {item.get("index"): item for item in response.get("results") or []}
            for index, (query, label) in enumerate(chunk):
                result = by_index.get(index, {})
                matches = result.get("matches") or []
                benign = result.get("benign") or []
                matched += bool(matches)
                say_result(label, matches, benign)
                print(json.dumps({"query": query, "matches": matches, "benign": benign}))
    emit({"queries": len(queries), "matched": matched})
    return 0


# What a member pastes in its threat-intelligence platform: never the key itself, which
# stays where the member keeps it (the command does not echo secrets into logs).
API_KEY_PLACEHOLDER = "<your API key (scope read)>"


def cmd_taxii(args: argparse.Namespace) -> int:
    """The forum's TAXII 2.1 URLs for this member, and the MISP and OpenCTI settings."""
    with make_client(args) as client:
        discovery = client.taxii_discovery()
        roots = [str(root) for root in discovery.get("api_roots") or []]
        root = str(discovery.get("default") or (roots[0] if roots else ""))
        if not root:
            raise CordialeError(
                status=200, code="invalid_response", detail="the TAXII discovery names no API root"
            )
        root_path = client.same_origin_path(root)
        api_root = client.taxii_url(root_path.rstrip("/") + "/")
        info = client.taxii_api_root(root_path)
        collections = [
            _collection_settings(api_root, collection)
            for collection in client.taxii_collections(root_path)
        ]
        discovery_url = client.taxii_url("/taxii2/")
    username = _setting(args, "member", "CORDIALE_MEMBER") or "cordiale"
    result: dict[str, Any] = {
        "discovery": discovery_url,
        "api_root": api_root,
        "versions": info.get("versions") or [],
        "collections": collections,
        "misp": [
            {
                "module": "TAXII 2.1 Import",
                "url": collection["url"],
                "username": username,
                "password": API_KEY_PLACEHOLDER,
                "spec_version": "2.1",
            }
            for collection in collections
        ],
        "opencti": [
            {
                "uri": api_root,
                "version": "v21",
                "collection": collection["id"],
                "authentication_type": "bearer",
                "authentication_value": API_KEY_PLACEHOLDER,
            }
            for collection in collections
        ],
    }
    say(describe_taxii(result))
    emit(result)
    return 0


def _collection_settings(api_root: str, collection: dict[str, Any]) -> dict[str, Any]:
    url = f"{api_root}collections/{collection.get('id')}/"
    return {
        "id": str(collection.get("id")),
        "alias": collection.get("alias"),
        "title": collection.get("title"),
        "url": url,
        "objects_url": url + "objects/",
    }


def describe_taxii(result: dict[str, Any]) -> str:
    """The settings as a person pastes them, one block per platform."""
    lines = [
        f"TAXII 2.1 discovery: {result['discovery']}",
        f"API root:            {result['api_root']}",
        "Collections you may read:",
    ]
    for collection in result["collections"]:
        lines.append(f"  {collection['alias'] or '':<20} {collection['id']}  {collection['title']}")
        lines.append(f"  {'':<20} {collection['objects_url']}")
    lines += [
        "",
        "MISP: misp-modules' import module 'TAXII 2.1 Import' (enable it in the server "
        "settings' Plugin > Import tab; then, in an event, Populate from... > TAXII 2.1 Import),",
        "one import per collection:",
    ]
    for collection, setting in zip(result["collections"], result["misp"], strict=True):
        lines += [
            f"  [{collection['alias']}]",
            f"  url:          {setting['url']}",
            f"  username:     {setting['username']}   (any name: the forum reads the password)",
            f"  password:     {setting['password']}",
            f"  spec_version: {setting['spec_version']}",
            "  added_after:  empty the first time, then the time of your previous import",
        ]
    lines += [
        "",
        "OpenCTI: Data > Ingestion > TAXII feeds (Integrations > TAXII Feed in recent "
        "versions) > Create, one feed per collection:",
    ]
    for collection, setting in zip(result["collections"], result["opencti"], strict=True):
        lines += [
            f"  [{collection['alias']}]",
            f"  TAXII server URL:    {setting['uri']}",
            "  TAXII version:       2.1",
            f"  TAXII Collection:    {setting['collection']}",
            f"  Authentication type: Bearer token; token: {setting['authentication_value']}",
            "  Import from date:    empty for everything",
        ]
    lines.append("docs/taxii.md says what maps to what and how to verify a statement's JWS.")
    return "\n".join(lines)


def cmd_replica(args: argparse.Namespace) -> int:
    """Read the local replica kept by ``sync``: no network, no API key."""
    state = Path(args.state)
    if not (state / DB_NAME).exists():
        raise UsageError(f"{state} holds no replica; run `cordiale sync --state {state}` first")
    with Replica(state) as replica:
        if args.action == "list":
            signals = replica.list_signals(
                signal_type=args.signal_type,
                member=args.member_filter,
                label=args.label,
                include_deleted=args.include_deleted,
                limit=args.limit,
            )
            for snapshot in signals:
                print(json.dumps(snapshot))
            emit({"signals": len(signals)})
        elif args.action == "show":
            value = _normalised(args.signal_type, args.value)
            shown = replica.signal(args.signal_type, value)
            if shown is None:
                say(f"{args.signal_type}:{value} is not in the replica")
                emit({"signal": None})
                return EXIT_FAILURE
            emit({"signal": shown})
        else:
            found = 0
            queries = [q for argument in args.targets for q in parse_targets(argument)]
            for query, label in queries:
                if query["signal_type"] == "pdq":
                    near: list[tuple[int | dict[str, Any], dict[str, Any]]] = list(
                        replica.search_pdq(query["value"], args.max_distance)
                    )
                elif query["signal_type"] == "vpdq":
                    videos = replica.search_vpdq(
                        query["value"],
                        args.max_distance,
                        query_match_percent=args.vpdq_query_match_percent,
                        compared_match_percent=args.vpdq_compared_match_percent,
                    )
                    near = [
                        (
                            {
                                "distance": figures.distance,
                                "query_match_percent": figures.query_match_percent,
                                "compared_match_percent": figures.compared_match_percent,
                            },
                            snap,
                        )
                        for figures, snap in videos
                    ]
                else:
                    exact = replica.signal(query["signal_type"], query["value"])
                    live = exact is not None and not exact["deleted"]
                    near = [(0, exact)] if exact is not None and live else []
                matches, benign = split_neighbours(near, args.max_distance)
                found += bool(matches)
                say_result(label, matches, benign, " in the replica")
                print(json.dumps({"query": query, "matches": matches, "benign": benign}))
            emit({"queries": len(queries), "matched": found})
    return 0


def _normalised(signal_type: str, value: str) -> str:
    try:
        return SIGNAL_TYPES[signal_type].normalize(value)
    except Exception as exc:  # InvalidSignalValue carries the hint
        raise StatementError("invalid_value", f"{signal_type}:{value}: {exc}") from exc


def cmd_opinion(args: argparse.Namespace) -> int:
    value = SIGNAL_TYPES[args.signal_type].normalize(args.value)
    with make_client(args) as client:
        if args.delete:
            client.delete_opinion(args.signal_type, value)
            emit({"signal_type": args.signal_type, "value": value, "opinion": None})
            return 0
        if not args.category:
            raise UsageError("give --category positive|negative|investigation, or --delete")
        tags = [tag.strip() for tag in (args.tags or "").split(",") if tag.strip()]
        result = client.set_opinion(
            args.signal_type, value, category=args.category, tags=tags, reason=args.reason or ""
        )
    emit(result or {"signal_type": args.signal_type, "value": value, "category": args.category})
    return 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        if args.action == "list":
            webhooks = client.list_webhooks()
            for webhook in webhooks:
                say(f"{webhook.get('id')}  {webhook.get('url')}")
            emit({"webhooks": webhooks})
        elif args.action == "create":
            split = _split_list
            webhook = client.create_webhook(
                args.endpoint_url, signal_types=split(args.signal_types), labels=split(args.labels)
            )
            say("keep the secret now: the forum shows it only once")
            emit(webhook)
        elif args.action == "rotate-secret":
            webhook = client.rotate_webhook_secret(args.id)
            say("keep the new secret now: the forum shows it only once; the old one stops now")
            emit(webhook)
        elif args.action == "enable":
            emit(client.enable_webhook(args.id))
        elif args.action == "delete":
            client.delete_webhook(args.id)
            emit({"id": args.id, "deleted": True})
        elif args.action == "deliveries":
            emit({"id": args.id, "deliveries": client.webhook_deliveries(args.id)})
        else:
            emit(client.ping_webhook(args.id) or {"id": args.id, "ping": "sent"})
    return 0


def _split_list(text: str | None) -> list[str] | None:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


# Parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection (flags override the environment)")
    group.add_argument("--url", default=argparse.SUPPRESS, help="forum base URL ($CORDIALE_URL)")
    group.add_argument("--api-key", default=argparse.SUPPRESS, help="API key ($CORDIALE_API_KEY)")
    group.add_argument(
        "--signing-key",
        default=argparse.SUPPRESS,
        help="path of the member's PEM private key ($CORDIALE_SIGNING_KEY)",
    )
    group.add_argument(
        "--member", default=argparse.SUPPRESS, help="member slug ($CORDIALE_MEMBER; else /me)"
    )
    group.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds per request (30)"
    )
    group.add_argument(
        "--max-retries",
        type=int,
        default=argparse.SUPPRESS,
        help="retries on 429/502/503/504 and network errors ($CORDIALE_MAX_RETRIES; 5)",
    )
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    # The connection options go before or after the command name: `cordiale --url U sync`
    # and `cordiale sync --url U` mean the same.
    parser = argparse.ArgumentParser(
        prog="cordiale",
        parents=[common],
        description="Member-side tools for the Cordiale exchange. The last line of stdout is "
        "JSON; exit status 0 success, 1 failure, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {client_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("keygen", cmd_keygen, "write a new Ed25519 private key as PEM (mode 0600)")
    p.add_argument("--out", required=True, help="path of the new key file")

    p = command("keys", cmd_keys, "list, register, rotate or retire your signing keys")
    key_actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    key_actions.add_parser("list", parents=[common], help="your keys and their status")
    reg = key_actions.add_parser(
        "register",
        parents=[common],
        help="register a key; it waits for an admin's approval (compare its kid out of band)",
    )
    reg.add_argument(
        "--public-key",
        help="public JWK or PEM file (default: the public half of --signing-key)",
    )
    rotate = key_actions.add_parser(
        "rotate",
        parents=[common],
        help="a new key, active at once: registered with a proof signed by the current key",
    )
    rotate.add_argument(
        "--new-key", required=True, help="private key file to create (or an existing one)"
    )
    rotate.add_argument(
        "--retire-old", action="store_true", help="retire the current key once the new is active"
    )
    key_actions.add_parser(
        "retire", parents=[common], help="retire a key (what it signed stays valid)"
    ).add_argument("kid")

    p = command(
        "submit",
        cmd_submit,
        "sign and submit every row of a CSV or JSONL file, or the indicators of a STIX 2.1 "
        "bundle (.json, as MISP and OpenCTI export them)",
    )
    p.add_argument(
        "file",
        help="CSV (signal_type,value,labels,tlp,audience[,exp,content_type,"
        "ref]; labels separated by |), .jsonl with the same fields, or a STIX 2.1 bundle "
        "(.json). Warning: ref is signed into the statement and seen by every member that "
        "receives it; never put a user, account or internal case identifier there",
    )
    stix = p.add_argument_group("STIX bundles (docs/taxii.md)")
    stix.add_argument("--labels", help="forum label slugs for every indicator, comma-separated")
    stix.add_argument(
        "--label-map",
        metavar="FILE",
        help="JSON object from STIX labels (MISP tags, OpenCTI labels) to forum label slugs, "
        'e.g. {"tvec:recruitment": "recruitment"}',
    )
    stix.add_argument(
        "--default-tlp",
        choices=TLP_VALUES,
        help="TLP of indicators without a TLP marking (default: they are unsupported)",
    )
    stix.add_argument("--audience", help="'forum' (the default) or 'group:<sharing-group slug>'")
    p.add_argument("--batch-size", type=int, default=MAX_BATCH, help="statements per request")
    p.add_argument(
        "--retry-rejected",
        action="store_true",
        help="send again the rows the forum rejected in an earlier run of this file (by "
        "default only those rejected unknown_key are; FILE.progress.jsonl keeps the results)",
    )

    p = command("retract", cmd_retract, "sign and submit the retraction of a signal")
    p.add_argument("signal_type", choices=sorted(SIGNAL_TYPES))
    p.add_argument("value")

    p = command("sync", cmd_sync, "follow the feed into a verified local replica")
    p.add_argument("--state", required=True, help="state directory holding the replica")
    p.add_argument("--limit", type=int, default=None, help="changes per page (1..10000)")

    p = command("verify", cmd_verify, "re-verify every statement of the replica offline")
    p.add_argument("--state", required=True, help="state directory holding the replica")

    p = command(
        "hash",
        cmd_hash,
        "hash files locally as match does (md5, sha256, PDQ for images, vPDQ for videos)",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--signal-type",
        action="append",
        choices=("md5", "sha256", "pdq", "vpdq"),
        help="only this type (repeatable; default every type the file supports)",
    )

    p = command(
        "match",
        cmd_match,
        "match files (md5, sha256, PDQ for images, vPDQ for videos; hashed locally) or TYPE:VALUE",
    )
    p.add_argument("targets", nargs="+", metavar="FILE_OR_HASH")
    p.add_argument(
        "--max-distance", type=int, default=None, help="PDQ (and vPDQ frame) distance (31)"
    )
    p.add_argument(
        "--vpdq-query-match-percent",
        type=float,
        default=None,
        metavar="PERCENT",
        help="videos: least share of the query's frames found in a candidate (forum default 80)",
    )
    p.add_argument(
        "--vpdq-compared-match-percent",
        type=float,
        default=None,
        metavar="PERCENT",
        help="videos: least share of a candidate's frames found in the query (forum default 0)",
    )

    command(
        "taxii",
        cmd_taxii,
        "print the forum's TAXII 2.1 URLs for you and the MISP and OpenCTI feed settings",
    )

    p = command("replica", cmd_replica, "read the local replica that sync keeps (offline)")
    replica_actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = replica_actions.add_parser(
        "list", parents=[common], help="signals of the replica, one JSON line each"
    )
    listing.add_argument("--signal-type", choices=sorted(SIGNAL_TYPES))
    listing.add_argument("--label", help="only signals with a statement carrying this label")
    listing.add_argument(
        "--stated-by", dest="member_filter", help="only signals this member made a statement on"
    )
    listing.add_argument("--include-deleted", action="store_true", help="tombstones too")
    listing.add_argument("--limit", type=int, default=None)
    show = replica_actions.add_parser("show", parents=[common], help="one signal's snapshot")
    show.add_argument("signal_type", choices=sorted(SIGNAL_TYPES))
    show.add_argument("value")
    search = replica_actions.add_parser(
        "search",
        parents=[common],
        help="look files (every hash they support) or TYPE:VALUE up in the replica",
    )
    search.add_argument("targets", nargs="+", metavar="FILE_OR_HASH")
    search.add_argument(
        "--max-distance", type=int, default=31, help="PDQ (and vPDQ frame) distance (31)"
    )
    search.add_argument(
        "--vpdq-query-match-percent",
        type=float,
        default=80.0,
        metavar="PERCENT",
        help="videos: least share of the query's frames found in a candidate (80)",
    )
    search.add_argument(
        "--vpdq-compared-match-percent",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="videos: least share of a candidate's frames found in the query (0)",
    )
    for action_parser in (listing, show, search):
        action_parser.add_argument(
            "--state", required=True, help="state directory holding the replica"
        )

    p = command("opinion", cmd_opinion, "set or withdraw your opinion on a signal")
    p.add_argument("signal_type", choices=sorted(SIGNAL_TYPES))
    p.add_argument("value")
    p.add_argument("--category", choices=("positive", "negative", "investigation"))
    p.add_argument("--tags", help="comma-separated tags")
    p.add_argument("--reason", help="free text")
    p.add_argument("--delete", action="store_true", help="withdraw your opinion")

    p = command("webhooks", cmd_webhooks, "manage webhook endpoints")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="list endpoints")
    create = actions.add_parser("create", parents=[common], help="create an endpoint")
    # Not dest "url": that is the forum's --url, where the API key goes.
    create.add_argument(
        "endpoint_url", metavar="RECEIVER_URL", help="https:// URL receiving the deliveries"
    )
    create.add_argument("--signal-types", help="comma-separated signal types (default all)")
    create.add_argument("--labels", help="comma-separated label slugs (default all)")
    for name, text in (
        ("delete", "delete an endpoint"),
        ("ping", "send a test event"),
        ("deliveries", "list delivery attempts"),
        ("rotate-secret", "replace the endpoint's signing secret (printed once)"),
        ("enable", "re-enable a disabled endpoint; it resumes from its cursor"),
    ):
        actions.add_parser(name, parents=[common], help=text).add_argument("id")
    return parser


def main(argv: Sequence[str] | None = None, *, transport: Any = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    args.transport = transport
    try:
        return int(args.func(args))
    except CordialeError as exc:
        say(f"cordiale: error: {exc}")
        for error in exc.errors:
            say(f"  {error.get('field')}: {error.get('detail')} ({error.get('code')})")
        emit({"error": exc.as_dict()})
        return EXIT_FAILURE
    except UsageError as exc:
        say(f"cordiale: usage error: {exc}")
        emit({"error": {"code": "usage", "detail": str(exc)}})
        return EXIT_USAGE
    except (StatementError, InputError, HashingUnavailable, UnreadableMedia, OSError) as exc:
        code = getattr(exc, "code", None) or ("file_error" if isinstance(exc, OSError) else "error")
        say(f"cordiale: error: {exc} ({code})")
        emit({"error": {"code": code, "detail": str(exc)}})
        return EXIT_FAILURE
    except KeyboardInterrupt:
        say("cordiale: interrupted; run the same command again to resume")
        emit({"error": {"code": "interrupted", "detail": "interrupted"}})
        return 130


if __name__ == "__main__":
    sys.exit(main())

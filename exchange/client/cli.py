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
from exchange.client.hashing import (
    VPDQ_QUALITY_THRESHOLD,
    HashingUnavailable,
    UnreadableMedia,
    VideoHash,
    file_hashes,
)
from exchange.client.replica import DB_NAME, PageResult, Replica
from exchange.client.signal_types import SIGNAL_TYPES
from exchange.client.statement_format import MAX_BATCH, OP_RETRACT
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
from exchange.client.submission import (
    InputError,
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
    rows = read_rows(path)
    key = signing_key(args)
    with make_client(args) as client:
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
    rejected_file = write_rejected(path, summary)
    print_summary(summary, rejected_file)
    emit(summary.totals())
    return EXIT_FAILURE if summary.counts["rejected"] else 0


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


def describe_match(match: dict[str, Any]) -> str:
    signal = match.get("signal", {})
    members = sorted({str(s.get("member")) for s in signal.get("statements") or []})
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
    return f"  {where}: {signal.get('signal_type')}:{value} from {', '.join(members)}"


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
                matches = by_index.get(index, {}).get("matches") or []
                matched += bool(matches)
                say(f"{label}: {len(matches)} match(es)")
                for match in matches:
                    say(describe_match(match))
                print(json.dumps({"query": query, "matches": matches}))
    emit({"queries": len(queries), "matched": matched})
    return 0


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
                    near = replica.search_pdq(query["value"], args.max_distance)
                    matches = [{"distance": d, "signal": snap} for d, snap in near]
                elif query["signal_type"] == "vpdq":
                    videos = replica.search_vpdq(
                        query["value"],
                        args.max_distance,
                        query_match_percent=args.vpdq_query_match_percent,
                        compared_match_percent=args.vpdq_compared_match_percent,
                    )
                    matches = [
                        {
                            "distance": figures.distance,
                            "query_match_percent": figures.query_match_percent,
                            "compared_match_percent": figures.compared_match_percent,
                            "signal": snap,
                        }
                        for figures, snap in videos
                    ]
                else:
                    exact = replica.signal(query["signal_type"], query["value"])
                    live = exact is not None and not exact["deleted"]
                    matches = [{"distance": 0, "signal": exact}] if live else []
                found += bool(matches)
                say(f"{label}: {len(matches)} match(es) in the replica")
                for match in matches:
                    say(describe_match(match))
                print(json.dumps({"query": query, "matches": matches}))
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

    p = command("submit", cmd_submit, "sign and submit every row of a CSV or JSONL file")
    p.add_argument(
        "file",
        help="CSV (signal_type,value,labels,tlp,audience[,exp,content_type,"
        "ref]; labels separated by |) or .jsonl with the same fields. Warning: ref is "
        "signed into the statement and seen by every member that receives it; never put "
        "a user, account or internal case identifier there",
    )
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

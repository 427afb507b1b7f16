"""
The ``cordiale`` command: a member's tools for the forum (CONTRACT.md "Member-side tools").

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
from pathlib import Path
from typing import Any

from exchange import jws
from exchange.client.api import DEFAULT_MAX_RETRIES, CordialeClient, CordialeError
from exchange.client.hashing import HashingUnavailable, pdq_hash_file
from exchange.client.replica import PageResult, Replica
from exchange.client.statements import (
    StatementError,
    build_statement,
    generate_key,
    key_id,
    load_private_key,
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
from exchange.signal_types import SIGNAL_TYPES
from exchange.statement_format import MAX_BATCH, OP_RETRACT

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Missing or contradictory configuration: exit status 2."""


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


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        raise UsageError(f"{out} exists; refusing to overwrite a key")
    private_key = generate_key(out)
    x = jws.public_key_x(private_key.public_key())
    say(f"wrote {out} (mode 0600). Give the forum's admins the public key x = {x}")
    emit({"kid": key_id(private_key), "public_jwk": jws.public_jwk(x)})
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


def parse_query(argument: str) -> tuple[dict[str, str], str]:
    """A match query from an image file or ``type:value``, and a label for messages."""
    path = Path(argument)
    if path.is_file():
        value, quality = pdq_hash_file(path)
        return {"signal_type": "pdq", "value": value}, f"{argument} (pdq quality {quality})"
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
    return {"signal_type": signal_type, "value": canonical}, argument


def cmd_match(args: argparse.Namespace) -> int:
    queries = [parse_query(argument) for argument in args.targets]
    matched = 0
    with make_client(args) as client:
        for start in range(0, len(queries), 1000):
            chunk = queries[start : start + 1000]
            response = client.match([query for query, _ in chunk], args.max_distance)
            by_index = {item.get("index"): item for item in response.get("results") or []}
            for index, (query, label) in enumerate(chunk):
                matches = by_index.get(index, {}).get("matches") or []
                matched += bool(matches)
                say(f"{label}: {len(matches)} match(es)")
                for match in matches:
                    signal = match.get("signal", {})
                    members = sorted({s.get("member") for s in signal.get("statements") or []})
                    say(
                        f"  distance {match.get('distance')}: {signal.get('signal_type')}:"
                        f"{signal.get('value')} from {', '.join(map(str, members))}"
                    )
                print(json.dumps({"query": query, "matches": matches}))
    emit({"queries": len(queries), "matched": matched})
    return 0


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
    parser = argparse.ArgumentParser(
        prog="cordiale",
        description="Member-side tools for the Cordiale exchange. The last line of stdout is "
        "JSON; exit status 0 success, 1 failure, 2 usage error.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("keygen", cmd_keygen, "write a new Ed25519 private key as PEM (mode 0600)")
    p.add_argument("--out", required=True, help="path of the new key file")

    p = command("submit", cmd_submit, "sign and submit every row of a CSV or JSONL file")
    p.add_argument(
        "file",
        help="CSV (signal_type,value,labels,tlp,audience[,exp,content_type,"
        "ref]; labels separated by |) or .jsonl with the same fields. Warning: ref is "
        "signed into the statement and seen by every member that receives it; never put "
        "a user, account or internal case identifier there",
    )
    p.add_argument("--batch-size", type=int, default=MAX_BATCH, help="statements per request")

    p = command("retract", cmd_retract, "sign and submit the retraction of a signal")
    p.add_argument("signal_type", choices=sorted(SIGNAL_TYPES))
    p.add_argument("value")

    p = command("sync", cmd_sync, "follow the feed into a verified local replica")
    p.add_argument("--state", required=True, help="state directory holding the replica")
    p.add_argument("--limit", type=int, default=None, help="changes per page (1..10000)")

    p = command("verify", cmd_verify, "re-verify every statement of the replica offline")
    p.add_argument("--state", required=True, help="state directory holding the replica")

    p = command("match", cmd_match, "match image files (hashed locally) or TYPE:VALUE")
    p.add_argument("targets", nargs="+", metavar="FILE_OR_HASH")
    p.add_argument("--max-distance", type=int, default=None, help="PDQ distance (default 31)")

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
    except (StatementError, InputError, HashingUnavailable, OSError) as exc:
        code = getattr(exc, "code", type(exc).__name__)
        say(f"cordiale: error: {exc} ({code})")
        emit({"error": {"code": code, "detail": str(exc)}})
        return EXIT_FAILURE
    except KeyboardInterrupt:
        say("cordiale: interrupted; run the same command again to resume")
        emit({"error": {"code": "interrupted", "detail": "interrupted"}})
        return 130


if __name__ == "__main__":
    sys.exit(main())

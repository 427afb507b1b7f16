"""
Submitting a file of statements: input parsing, batching, and resuming after interruption.

The input is CSV with the header ``signal_type,value,labels,tlp,audience`` plus optional
``exp,content_type,ref,file`` (labels separated by ``|``), or JSONL with the same fields
(``labels`` a list or a ``|``-separated string). A ``.jsonl``/``.ndjson`` suffix means JSONL.

Hashing files. A row may name a ``file`` instead of giving a ``value``: the value of its
``signal_type`` is then computed locally from the file (``md5``, ``sha256``, ``pdq`` of an
image, ``vpdq`` of a video; exchange/client/hashing.py) when the row is signed. A relative
path is relative to the input file's directory; the file itself never leaves the machine::

    signal_type,file,labels,tlp,audience
    vpdq,videos/attack.mp4,violent-attack,amber,forum
    md5,videos/attack.mp4,violent-attack,amber,forum

A row's digest (below) covers the file's size and modification time, so a file replaced
between two runs is hashed and signed afresh; an unchanged one is not hashed again once
its result is recorded.

Resuming. Beside ``INPUT`` we keep ``INPUT.progress.jsonl``, an append-only log flushed to
disk at each step:

- before a batch is sent, one record per row: ``{"row", "digest", "iss", "kid", "jti", "iat"}``;
- after the server answered, one record ``{"results": [{"row", "digest", "status", ...}]}``.

A re-run skips rows whose result is recorded and re-signs every other row that has a
signing record with the same ``jti`` and ``iat``. Ed25519 signatures are deterministic, so
that gives the very same JWS: the server answers ``duplicate`` for those it had already
accepted before the interruption, and nothing is counted twice. A row whose content
changed (its ``digest``) or a different key is signed afresh with a new ``jti``.

Rejected rows (by us, before sending, or by the server) are written to
``INPUT.rejected.csv`` with the columns ``code`` and ``detail`` added, ready to be fixed and
submitted again. A recorded rejection is final for a re-run, except: rows rejected
``unknown_key`` are sent again (the key may have been approved since), and with
``retry_rejected`` (``cordiale submit --retry-rejected``) every rejected row is.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client.api import CordialeClient
from exchange.client.hashing import FILE_SIGNAL_TYPES, UnreadableMedia, file_value
from exchange.client.statement_format import MAX_BATCH, OP_ASSERT
from exchange.client.statements import StatementError, build_statement, key_id, sign_statement

REQUIRED_FIELDS = ("signal_type", "value", "labels", "tlp", "audience")
OPTIONAL_FIELDS = ("exp", "content_type", "ref", "file")
ALL_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
STATUSES = ("accepted", "duplicate", "stale", "rejected")
# Rejections that a later run may not repeat: the row was fine, the forum did not know the
# key yet (registered but pending, or not registered at all).
RETRIED_REJECTIONS = frozenset({"unknown_key"})


class InputError(ValueError):
    """The input file as a whole cannot be read (not a single bad row)."""

    code = "invalid_input"


@dataclass
class InputRow:
    """One data row: ``number`` counts data rows from 1; ``fields`` are strings; ``base``
    is the directory a relative ``file`` is found in."""

    number: int
    fields: dict[str, str]
    base: Path | None = None

    @property
    def file(self) -> Path | None:
        name = self.fields.get("file")
        if not name:
            return None
        path = Path(name).expanduser()
        return path if path.is_absolute() or self.base is None else self.base / path

    @property
    def digest(self) -> str:
        content: dict[str, Any] = dict(self.fields)
        if (path := self.file) is not None:
            try:
                stat = path.stat()
            except OSError:
                content["_file"] = None
            else:
                content["_file"] = [stat.st_size, stat.st_mtime_ns]
        canonical = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@dataclass
class RowResult:
    row: InputRow
    status: str
    code: str | None = None
    detail: str | None = None


@dataclass
class SubmitSummary:
    """Counts per status over the whole file, and the rejected rows."""

    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[RowResult] = field(default_factory=list)
    rows: int = 0
    resumed: int = 0
    sent: int = 0
    batches: int = 0

    def totals(self) -> dict[str, int]:
        return {status: self.counts[status] for status in STATUSES}


def progress_path(input_path: Path) -> Path:
    return input_path.with_name(input_path.name + ".progress.jsonl")


def rejected_path(input_path: Path) -> Path:
    return input_path.with_name(input_path.name + ".rejected.csv")


def read_rows(path: Path) -> list[InputRow]:
    """All data rows of a CSV or JSONL file; raise InputError if the file is unusable."""
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return list(_read_jsonl(path))
        return list(_read_csv(path))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8: {exc}") from exc


def _read_csv(path: Path) -> Iterator[InputRow]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in _required(header) if name not in header]
        if missing:
            raise InputError(
                f"{path}: the CSV header lacks {', '.join(missing)} "
                f"(expected {','.join(REQUIRED_FIELDS)} plus optional {','.join(OPTIONAL_FIELDS)})"
            )
        reader.fieldnames = header
        for number, record in enumerate(reader, start=1):
            yield InputRow(number, _clean(record), path.parent)


def _read_jsonl(path: Path) -> Iterator[InputRow]:
    with path.open(encoding="utf-8") as handle:
        number = 0
        for line in handle:
            if not line.strip():
                continue
            number += 1
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                # Kept as a row so that it is reported as rejected with its line.
                yield InputRow(
                    number, {"value": line.strip(), "_error": "not a JSON object"}, path.parent
                )
                continue
            if isinstance(record.get("labels"), list):
                record["labels"] = "|".join(str(label) for label in record["labels"])
            yield InputRow(number, _clean(record), path.parent)


def _required(present: Iterable[str]) -> tuple[str, ...]:
    """The fields a row must fill: ``file`` stands in for ``value``."""
    if "file" in present:
        return tuple(name for name in REQUIRED_FIELDS if name != "value")
    return REQUIRED_FIELDS


def _clean(record: dict[str, Any]) -> dict[str, str]:
    return {
        name: "" if record.get(name) is None else str(record[name]).strip()
        for name in ALL_FIELDS
        if name in record
    }


def row_claims(
    row: InputRow, *, issuer: str, iat: int | None = None, jti: str | None = None
) -> dict[str, Any]:
    """The claims for a row; raise StatementError if the row is invalid."""
    fields = row.fields
    if "_error" in fields:
        raise StatementError("malformed", fields["_error"])
    present = [name for name, text in fields.items() if text]
    missing = [name for name in _required(present) if not fields.get(name)]
    if missing:
        raise StatementError("malformed", f"missing {', '.join(missing)}")
    value = fields.get("value", "")
    if (path := row.file) is not None:
        if value:
            raise StatementError("malformed", "give a value or a file, not both")
        value = _file_value(path, fields["signal_type"])
    exp: int | None = None
    if fields.get("exp"):
        try:
            exp = int(fields["exp"])
        except ValueError:
            raise StatementError("malformed", "exp must be Unix seconds") from None
    return build_statement(
        issuer=issuer,
        signal_type=fields["signal_type"],
        value=value,
        op=OP_ASSERT,
        labels=fields["labels"].split("|"),
        tlp=fields["tlp"].lower(),
        audience=fields["audience"],
        exp=exp,
        content_type=fields.get("content_type") or None,
        ref=fields.get("ref") or None,
        iat=iat,
        jti=jti,
    )


def _file_value(path: Path, signal_type: str) -> str:
    """The ``signal_type`` value of a file; StatementError if the file cannot give one.

    A missing optional extra (HashingUnavailable) is not a row's fault: it stops the run
    before anything is sent."""
    if signal_type not in FILE_SIGNAL_TYPES:
        raise StatementError(
            "malformed",
            f"a {signal_type} value cannot be computed from a file (only "
            f"{', '.join(FILE_SIGNAL_TYPES)}); give its value",
        )
    try:
        return file_value(path, signal_type)
    except UnreadableMedia as exc:
        raise StatementError("unreadable_file", str(exc)) from exc
    except OSError as exc:
        raise StatementError("unreadable_file", f"cannot read {path}: {exc.strerror}") from exc


class ProgressLog:
    """The append-only progress file of one input."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.signed: dict[int, dict[str, Any]] = {}
        self.results: dict[int, dict[str, Any]] = {}
        if path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line torn by the interruption; its batch is simply re-sent
                if "results" in record:
                    for result in record["results"]:
                        self.results[int(result["row"])] = result
                elif "row" in record:
                    self.signed[int(record["row"])] = record

    def append(self, records: list[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def submit_file(
    client: CordialeClient,
    path: Path,
    *,
    issuer: str,
    private_key: Ed25519PrivateKey,
    batch_size: int = MAX_BATCH,
    on_rows: Callable[[int], None] | None = None,
    rows: list[InputRow] | None = None,
    retry_rejected: bool = False,
) -> SubmitSummary:
    """Sign and submit every row of ``path``, resuming from its progress file; rows the
    server rejected earlier are sent again if ``retry_rejected`` or if their code is one of
    ``RETRIED_REJECTIONS``."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise InputError(f"the batch size must be 1 to {MAX_BATCH}")
    rows = read_rows(path) if rows is None else rows
    log = ProgressLog(progress_path(path))
    kid = key_id(private_key)
    summary = SubmitSummary(rows=len(rows))
    pending: list[tuple[InputRow, str, dict[str, Any] | None]] = []
    for row in rows:
        done = log.results.get(row.number)
        resend = retry_rejected or (done or {}).get("code") in RETRIED_REJECTIONS
        if done is not None and done.get("status") == "rejected" and resend:
            done = None
        if done is not None and done.get("digest") == row.digest:
            _count(summary, RowResult(row, done["status"], done.get("code"), done.get("detail")))
            summary.resumed += 1
            continue
        previous = log.signed.get(row.number)
        reuse = (
            previous is not None
            and previous.get("digest") == row.digest
            and previous.get("kid") == kid
            and previous.get("iss") == issuer
        )
        try:
            claims = row_claims(
                row,
                issuer=issuer,
                iat=previous["iat"] if reuse and previous else None,
                jti=previous["jti"] if reuse and previous else None,
            )
        except StatementError as exc:
            _count(summary, RowResult(row, "rejected", exc.code, exc.detail))
            continue
        pending.append((row, sign_statement(claims, private_key), None if reuse else claims))
    if on_rows is not None and summary.counts.total():
        on_rows(summary.counts.total())
    for start in range(0, len(pending), batch_size):
        _send_batch(client, log, pending[start : start + batch_size], summary, issuer, kid)
        if on_rows is not None:
            on_rows(len(pending[start : start + batch_size]))
    return summary


def _send_batch(
    client: CordialeClient,
    log: ProgressLog,
    batch: list[tuple[InputRow, str, dict[str, Any] | None]],
    summary: SubmitSummary,
    issuer: str,
    kid: str,
) -> None:
    log.append(
        [
            {
                "row": row.number,
                "digest": row.digest,
                "iss": issuer,
                "kid": kid,
                "jti": claims["jti"],
                "iat": claims["iat"],
            }
            for row, _token, claims in batch
            if claims is not None
        ]
    )
    response = client.submit([token for _row, token, _claims in batch])
    results = response.get("results") or []
    if len(results) != len(batch):
        raise InputError(f"the server answered {len(results)} results for {len(batch)} items")
    records = []
    for (row, _token, _claims), item in zip(batch, results, strict=True):
        result = RowResult(row, str(item.get("status")), item.get("code"), item.get("detail"))
        _count(summary, result)
        records.append(
            {
                "row": row.number,
                "digest": row.digest,
                "status": result.status,
                "code": result.code,
                "detail": result.detail,
            }
        )
    log.append([{"results": records}])
    summary.sent += len(batch)
    summary.batches += 1


def _count(summary: SubmitSummary, result: RowResult) -> None:
    summary.counts[result.status] += 1
    if result.status == "rejected":
        summary.rejected.append(result)


def write_rejected(path: Path, summary: SubmitSummary) -> Path | None:
    """Write the rejected rows beside the input (or remove an outdated file); return its path."""
    target = rejected_path(path)
    if not summary.rejected:
        target.unlink(missing_ok=True)
        return None
    columns = [*ALL_FIELDS, "code", "detail"]
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for result in sorted(summary.rejected, key=lambda item: item.row.number):
            writer.writerow(
                {**result.row.fields, "code": result.code or "", "detail": result.detail or ""}
            )
    return target

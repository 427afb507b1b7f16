"""``export_audit`` writes the chain as JSON lines that can be checked without the server."""

import hashlib
import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from members import services
from members.audit import GENESIS
from members.models import AuditEntry
from tests.factories import make_party

pytestmark = pytest.mark.django_db


def export(*args: str) -> list[dict[str, Any]]:
    out = StringIO()
    call_command("export_audit", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def independent_check(lines: list[dict[str, Any]], anchor: str) -> bool:
    """What an external archivist would write: no Cordiale code involved."""
    prev = anchor
    for line in lines:
        body = {k: v for k, v in line.items() if k != "hash"}
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if body["prev"] != prev or hashlib.sha256(encoded.encode()).hexdigest() != line["hash"]:
            return False
        prev = line["hash"]
    return True


def run_verify(*args: str) -> tuple[int, dict[str, Any]]:
    out = StringIO()
    code = 0
    try:
        call_command("verify_audit", *args, stdout=out)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


def test_export_carries_every_entry_with_its_hashes() -> None:
    """One line per entry in id order, with prev and hash as stored; an independent
    verifier accepts the chain."""
    party = make_party()
    services.member_set_status(member=party.member, status="suspended", actor="test")
    lines = export()
    entries = list(AuditEntry.objects.order_by("id"))
    assert [line["id"] for line in lines] == [e.pk for e in entries]
    assert [(line["prev"], line["hash"]) for line in lines] == [
        (e.prev_hash, e.entry_hash) for e in entries
    ]
    assert lines[0]["prev"] == GENESIS
    assert independent_check(lines, GENESIS)


def test_partial_export_chains_onto_the_earlier_archive() -> None:
    """``--since`` exports from a time; its first prev is the last hash before it."""
    services.member_create(slug="old", name="Old", actor="test")
    cut = AuditEntry.objects.latest("id")
    AuditEntry.objects.filter(pk=cut.pk).update(created_at=timezone.now() - timedelta(days=3))
    # The backdated entry no longer matches its hash; the part after it still chains on.
    services.member_create(slug="new", name="New", actor="test")
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    lines = export("--since", since)
    assert [line["object"] for line in lines] == ["new"]
    assert independent_check(lines, cut.entry_hash)
    after_id = export("--after-id", str(cut.pk))
    assert after_id == lines


def test_verify_audit_checks_an_archive(tmp_path: Path) -> None:
    """``verify_audit --jsonl`` accepts a faithful archive and names an altered line."""
    for slug in ("a", "b", "c"):
        services.member_create(slug=slug, name=slug, actor="test")
    lines = export()
    archive = tmp_path / "audit.jsonl"
    archive.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert run_verify("--jsonl", str(archive)) == (0, {"ok": True, "entries": len(lines)})

    lines[1]["actor"] = "someone-else"
    archive.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, result = run_verify("--jsonl", str(archive))
    assert code == 1 and result["bad_entry"] == lines[1]["id"]

    del lines[1]
    archive.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, result = run_verify("--jsonl", str(archive))
    assert code == 1 and result["bad_entry"] == lines[1]["id"]


def test_untouched_chain_verifies() -> None:
    """With nothing tampered, verify_audit exits 0 and counts every entry."""
    make_party()
    assert run_verify() == (0, {"ok": True, "entries": AuditEntry.objects.count()})

"""The administration commands behave like command-line tools: what they print for scripts
goes to stdout and ends with one JSON line, logs go to stderr, a failure ends stdout with
a JSON line carrying ``error`` and exits non-zero, and missing settings are explained in
one line rather than a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import execute_from_command_line

from tests.support.processes import ROOT, production_env


def manage(*args: str, env: dict[str, str], stdout: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=180,
    )


def last_json(text: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_the_readme_audit_archive_round_trip_works_in_production_settings(tmp_path: Path) -> None:
    """The audit archive round trip from the README works in production settings:
    ``export_audit > audit.jsonl`` then ``verify_audit --jsonl audit.jsonl`` says ok, because
    log lines (django-axes' start-up line among them) go to stderr, not into the archive;
    a command's stdout is its JSON line alone."""
    env = production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'cordiale.sqlite3'}")
    migrated = manage("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    created = manage("create_member", "acme", "--name", "Acme", env=env)
    assert created.returncode == 0, created.stderr
    assert len(created.stdout.strip().splitlines()) == 1, created.stdout
    assert last_json(created.stdout)["member"] == "acme"
    assert '"level":"info"' in created.stderr  # the logs are still there, on stderr

    archive = tmp_path / "audit.jsonl"
    with archive.open("w") as out:
        exported = manage("export_audit", env=env, stdout=out)
    assert exported.returncode == 0, exported.stderr
    entries = [json.loads(line) for line in archive.read_text().splitlines()]
    assert [e["action"] for e in entries][:1] == ["member.created"]

    verified = manage("verify_audit", "--jsonl", str(archive), env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert last_json(verified.stdout) == {"ok": True, "entries": len(entries)}


@pytest.mark.slow
def test_missing_settings_are_one_line_not_a_traceback() -> None:
    """Without DJANGO_DEBUG or a secret key, even ``--help`` of a command says in one line
    what is missing (stderr) and exits non-zero, with the JSON error line on stdout."""
    env = production_env()
    env.pop("DJANGO_SECRET_KEY")
    env.pop("DJANGO_DEBUG")
    for args in (["export_audit", "--help"], ["verify_audit"], ["help", "create_member"]):
        result = manage(*args, env=env)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "DJANGO_SECRET_KEY" in result.stderr
        error = last_json(result.stdout)["error"]
        assert error["code"] == "improperly_configured"
        assert "DJANGO_SECRET_KEY" in error["detail"]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run a command as manage.py would (not call_command): exit status, stdout, stderr."""
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", *args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.mark.django_db(transaction=True)  # run_from_argv closes the connections
def test_a_failure_ends_stdout_with_an_error_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A command that fails prints the reason on stderr and ends stdout with
    ``{"error": {"code", "detail"}}``, exit status 1: a missing member (``not_found``) and
    a broken rule of the domain (its own code, here ``member_exists``)."""
    status, out, err = run_cli(capsys, "issue_api_key", "nobody")
    assert status == 1
    assert last_json(out) == {"error": {"code": "not_found", "detail": "No member 'nobody'."}}
    assert "No member 'nobody'." in err

    status, out, err = run_cli(capsys, "create_member", "acme", "--name", "Acme")
    assert status == 0 and last_json(out)["member"] == "acme", out + err
    status, out, err = run_cli(capsys, "create_member", "acme", "--name", "Acme")
    assert status == 1
    assert last_json(out)["error"]["code"] == "member_exists"
    assert "member_exists" in err


@pytest.mark.django_db(transaction=True)  # run_from_argv closes the connections
def test_a_usage_error_ends_stdout_with_an_error_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bad arguments: argparse's usage message on stderr, ``{"error": {"code": "usage"}}``
    last on stdout, exit status 2; --help still prints plain help, exit 0."""
    status, out, err = run_cli(capsys, "create_member", "acme")
    assert status == 2
    assert last_json(out)["error"]["code"] == "usage"
    assert "--name" in last_json(out)["error"]["detail"]
    assert "usage:" in err

    status, out, _ = run_cli(capsys, "verify_audit", "--expect-head", "nonsense")
    assert status == 2 and last_json(out)["error"]["code"] == "usage"

    status, out, _ = run_cli(capsys, "create_member", "--help")
    assert status == 0 and "--name" in out


@pytest.mark.django_db(transaction=True)  # run_from_argv closes the connections
def test_an_unexpected_failure_is_logged_and_ends_with_an_error_json_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception no command expected (a bug, a database gone) is logged with its
    traceback on stderr, and stdout still ends with the error JSON line, exit status 1."""

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("members.management.commands.create_member.member_create", broken)
    status, out, err = run_cli(capsys, "create_member", "acme", "--name", "Acme")
    assert status == 1
    assert last_json(out) == {
        "error": {"code": "internal_error", "detail": "RuntimeError: the database went away"}
    }
    assert "Traceback" in err and "the database went away" in err


@pytest.mark.django_db(transaction=True)  # run_from_argv closes the connections
def test_export_and_report_commands_fail_the_same_way(capsys: pytest.CaptureFixture[str]) -> None:
    """The commands whose output is not one JSON line (an archive, a report) fail like the
    others: the error JSON line last on stdout, exit status 1."""
    status, out, _ = run_cli(capsys, "export_audit", "--since", "yesterday")
    assert status == 1 and last_json(out)["error"]["code"] == "invalid_argument"
    status, out, _ = run_cli(
        capsys, "transparency_report", "--from", "2026-02-01", "--to", "2026-01-01"
    )
    assert status == 1 and last_json(out)["error"]["code"] == "invalid_argument"

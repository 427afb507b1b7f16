"""``manage.py check --deploy`` is clean with production environment variables."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT, production_env


def test_check_deploy_prints_no_warnings() -> None:
    """A production environment (no debug, a long random secret, a host name) passes every
    deployment check: HTTPS redirect, HSTS, secure cookies, headers."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNING" not in output, output

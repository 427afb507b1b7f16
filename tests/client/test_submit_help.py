"""``cordiale submit --help`` warns that a statement's ``ref`` is seen by its recipients."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_submit_help_warns_that_ref_is_visible_to_recipients() -> None:
    """``ref`` is signed into the statement that every recipient receives verbatim; the
    help a member reads before filling the column says so."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    run = subprocess.run(
        [sys.executable, "-m", "exchange.client", "submit", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # argparse wraps lines at the terminal's width: compare words, not lines.
    text = " ".join(run.stdout.split())
    assert "ref is signed into the statement and seen by every member that receives it" in text

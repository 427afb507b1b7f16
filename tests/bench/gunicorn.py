"""The web app under gunicorn on 127.0.0.1, for the HTTP benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

import httpx

from tests.exchange.webhook_support import ROOT, free_port


def start_gunicorn(
    env: Mapping[str, str], *, workers: int = 2, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``gunicorn forum.wsgi:application`` and wait until /healthz answers 200;
    returns the master process (in its own process group) and the base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "forum.wsgi:application"),
            *("-w", str(workers), "-b", f"127.0.0.1:{port}"),
            *("--timeout", "300", "--log-level", "warning", *extra),
        ],
        cwd=ROOT,
        env=dict(env),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_gunicorn(proc)
    raise RuntimeError("gunicorn did not answer /healthz within 60 s")


def stop_gunicorn(proc: subprocess.Popen[bytes]) -> None:
    """Stop the master and its workers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)

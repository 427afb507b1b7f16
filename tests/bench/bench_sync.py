"""Sync benchmark: a fresh member pages a feed of 1,000,000 signals over HTTP.

    python tests/bench/bench_sync.py [--signals 1000000] [--runs 3] [--pg URL]

Creates a fresh PostgreSQL database (``cordiale_bench_sync``), migrates it, creates a
submitting member and a fresh reader, and loads N signals, each with one current forum
statement and one feed row, with COPY (the statement's JWS is a dummy of realistic
length: this measures reading, not verification). Then, per run:

- **HTTP**: ``gunicorn forum.wsgi:application -w 2`` serves the reader, which pages
  ``GET /api/v1/changes?limit=10000`` from no cursor until ``has_more`` is false;
  snapshots/s, and the gunicorn workers' resident memory after each page (flat in the
  page count is the target);
- **ceiling**: a raw psycopg keyset scan of the same rows (feed row, signal, statement)
  in pages of 10,000, each page encoded to JSON with orjson, in this process.

Prints the medians and the ratio (targets: >= 0.3 x the ceiling, >= 30,000 snapshots/s).
The database is dropped at the end. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tests.bench  # noqa: E402, F401  (run as a script: the throwaway forum key)
from tests.support.database import database_drop, database_recreate  # noqa: E402
from tests.support.processes import start_gunicorn, stop_gunicorn  # noqa: E402

DB = "cordiale_bench_sync"
PAGE = 10_000


def manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def load(url: str, n: int, env: dict[str, str]) -> str:
    """Members through the commands; signals, statements and feed rows through COPY."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from exchange.client.jws import public_key_x

    manage(env, "create_member", "acme", "--name", "Acme")
    reader = orjson.loads(manage(env, "create_member", "reader", "--name", "Reader"))
    x = public_key_x(Ed25519PrivateKey.generate().public_key())
    manage(env, "register_signing_key", "acme", "--", x)
    now = datetime.now(UTC)
    iat = int(now.timestamp())
    jws_dummy = "eyJhbGciOiJFZERTQSIsImtpZCI6Ik" + "x" * 330
    # A forum receipt is ~380 characters (header, four claims, signature).
    receipt_dummy = "eyJhbGciOiJFZERTQSIsImtpZCI6Ik" + "r" * 342
    with psycopg.connect(url) as conn:
        member_id, key_id, kid = conn.execute(
            "SELECT m.id, k.id, k.kid FROM members_member m JOIN members_signingkey k "
            "ON k.member_id = m.id WHERE m.slug = 'acme'"
        ).fetchone()
        with conn.cursor() as cur:
            with cur.copy(
                "COPY exchange_signal (id, signal_type, value, created_at) FROM STDIN"
            ) as copy:
                for i in range(1, n + 1):
                    copy.write_row((i, "pdq", secrets.token_hex(32), now))
            with cur.copy(
                "COPY exchange_statement (id, member_id, signing_key_id, signal_id, "
                "member_slug, kid, jti, iat, op, labels, tlp, audience, exp, content_type, "
                "ref, jws, token_digest, received_at, withdrawn_reason, receipt) FROM STDIN"
            ) as copy:
                for i in range(1, n + 1):
                    copy.write_row(
                        (
                            i,
                            member_id,
                            key_id,
                            i,
                            "acme",
                            kid,
                            f"j{i}",
                            iat,
                            "assert",
                            '["recruitment"]',
                            "green",
                            "forum",
                            None,
                            "",
                            "",
                            f"{jws_dummy}{i:08d}",
                            "0" * 64,
                            now,
                            "",
                            f"{receipt_dummy}{i:08d}",
                        )
                    )
            with cur.copy(
                "COPY exchange_currentstatement (member_id, signal_id, statement_id, iat, "
                "audience, exp, lapsed) FROM STDIN"
            ) as copy:
                for i in range(1, n + 1):
                    copy.write_row((member_id, i, i, iat, 0, None, False))
            with cur.copy(
                "COPY exchange_feedentry (audience, signal_id, created_at) FROM STDIN"
            ) as copy:
                for i in range(1, n + 1):
                    copy.write_row((0, i, now))
            for table in ("exchange_signal", "exchange_statement"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})")
        conn.execute("ANALYZE")
    return str(reader["api_key"])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True
    )
    return [int(p) for p in out.stdout.split()]


def http_pass(base: str, key: str, master: int) -> tuple[float, int, list[int]]:
    headers = {"Authorization": f"Bearer {key}"}
    cursor = None
    total = 0
    memory: list[int] = []
    elapsed = 0.0
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        while True:
            params: dict[str, str | int] = {"limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            start = time.perf_counter()
            response = client.get("/api/v1/changes", params=params)
            response.raise_for_status()
            body = orjson.loads(response.content)
            elapsed += time.perf_counter() - start
            total += len(body["changes"])
            cursor = body["cursor"]
            # Sampled between pages, outside the timing.
            memory.append(sum(rss_kib(p) for p in worker_pids(master)))
            if not body["has_more"]:
                break
    return elapsed, total, memory


def ceiling_pass(url: str) -> tuple[float, int]:
    """The same rows by keyset pages over an index, straight into JSON."""
    total = 0
    after = 0
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        while True:
            rows = conn.execute(
                "SELECT f.seq, s.signal_type, s.value, st.member_slug, st.kid, st.iat, "
                "st.labels, st.tlp, st.audience, st.exp, st.jws, st.received_at, st.receipt "
                "FROM exchange_feedentry f JOIN exchange_signal s ON s.id = f.signal_id "
                "JOIN exchange_currentstatement cs ON cs.signal_id = s.id "
                "JOIN exchange_statement st ON st.id = cs.statement_id "
                "WHERE f.audience = 0 AND f.seq > %s ORDER BY f.seq LIMIT %s",
                [after, PAGE],
            ).fetchall()
            if not rows:
                break
            orjson.dumps(
                [
                    {
                        "signal_type": r[1],
                        "value": r[2],
                        "member": r[3],
                        "kid": r[4],
                        "iat": r[5],
                        "labels": r[6],
                        "tlp": r[7],
                        "audience": r[8],
                        "exp": r[9],
                        "jws": r[10],
                        "updated_at": r[11],
                        "receipt": r[12],
                    }
                    for r in rows
                ]
            )
            total += len(rows)
            after = rows[-1][0]
    return time.perf_counter() - start, total


def server_env(url: str) -> dict[str, str]:
    """The environment of a benchmark's forum processes: its own database, no Redis,
    throttles out of the way, quiet logs (bench_taxii.py shares it)."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SECRET_KEY": "bench-only-secret",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "CORDIALE_THROTTLE_READ": "1000000/min",
        "CORDIALE_THROTTLE_FEED_ROWS": "1000000000/min",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signals", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database for profiling")
    args = parser.parse_args()
    admin = args.pg
    url = database_recreate(admin, DB)
    env = server_env(url)
    server = None
    try:
        manage(env, "migrate", "-v0")
        t0 = time.perf_counter()
        key = load(url, args.signals, env)
        print(f"loaded {args.signals:,} signals in {time.perf_counter() - t0:.0f} s")
        server, base = start_gunicorn(env)
        http_rates, ceiling_rates, memories = [], [], []
        for run in range(args.runs):
            seconds, count, memory = http_pass(base, key, server.pid)
            assert count == args.signals, (count, args.signals)
            http_rates.append(count / seconds)
            memories.append(memory)
            c_seconds, c_count = ceiling_pass(url)
            assert c_count == args.signals
            ceiling_rates.append(c_count / c_seconds)
            print(
                f"run {run + 1}: HTTP {count / seconds:,.0f} snapshots/s "
                f"({seconds:.1f} s, {len(memory)} pages); ceiling {c_count / c_seconds:,.0f} "
                f"rows/s ({c_seconds:.1f} s)"
            )
        http = statistics.median(http_rates)
        ceiling = statistics.median(ceiling_rates)
        memory = memories[-1]
        print()
        print(f"signals                      {args.signals:>12,}")
        print(f"HTTP sync (median)           {http:>12,.0f} snapshots/s")
        print(f"ceiling: psycopg+orjson      {ceiling:>12,.0f} rows/s")
        print(f"ratio                        {http / ceiling:>12.2f}   (target >= 0.30)")
        print(f"absolute target              {30_000:>12,}   snapshots/s")
        print(
            "gunicorn workers RSS (MiB) after page 1 / middle / last: "
            f"{memory[0] / 1024:.0f} / {memory[len(memory) // 2] / 1024:.0f} / "
            f"{memory[-1] / 1024:.0f}"
        )
    finally:
        if server is not None:
            stop_gunicorn(server)
        if not args.keep:
            database_drop(admin, DB)


if __name__ == "__main__":
    main()

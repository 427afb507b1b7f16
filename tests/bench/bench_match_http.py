"""Over-HTTP figures for tests/bench/bench_match.py (run with its --http option).

    python tests/bench/bench_match.py --sizes 1000000 --http

For the same data as the in-process figures: a throwaway PostgreSQL database
(--http-database, dropped afterwards unless --keep-database) receives N pdq signals with
one forum assertion each, written with set-based SQL (COPY for the values; statements,
current rows and feed rows by INSERT ... SELECT; the JWS text is a realistic-length
dummy, the bench measures matching). The match index snapshot is written (timed: the
load of a good snapshot, checksum verified, against a rebuild from PostgreSQL), then
gunicorn serves the real application with 2 sync workers, each of which maps the
snapshot. Measured over HTTP on 127.0.0.1, the client in this process:

- first match per worker (opening the snapshot and catching up from the feed);
- single-query latency p50/p99 (one query per request, sequential);
- batched queries/s (requests of --batch queries, 2 client threads, one per worker),
  with the recall of the planted neighbours;
- freshness: a signed assertion submitted over HTTP until a match request finds it;
- memory per worker from /proc/<pid>/smaps_rollup: PSS (the shared mapping divided
  among the processes that map it) and anonymous (private) memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/cordiale_bench_match"
PLANTED_DISTANCES = (10, 20, 31)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http", action="store_true", help="also measure over HTTP (gunicorn)")
    parser.add_argument("--http-database", default=DEFAULT_DATABASE)
    parser.add_argument("--http-workers", type=int, default=2)
    parser.add_argument("--http-single", type=int, default=500, help="single requests timed")
    parser.add_argument("--http-batches", type=int, default=6, help="batched requests timed")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument(
        "--http-repeat", type=int, default=3, help="snapshot loads and rebuilds timed"
    )


def _env(args: argparse.Namespace, index_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DATABASE_URL=args.http_database,
        DJANGO_SETTINGS_MODULE="forum.settings",
        DJANGO_SECRET_KEY="bench-only-secret",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",  # plain HTTP on loopback, as behind a TLS proxy
        CORDIALE_THROTTLE_READ="100000000/min",
        CORDIALE_THROTTLE_SUBMIT="100000000/min",
        CORDIALE_THROTTLE_MATCH_HASHES="100000000/min",
        CORDIALE_THROTTLE_STATEMENTS="100000000/min",
        CORDIALE_MATCH_INDEX_DIR=index_dir,
        DJANGO_LOG_LEVEL="WARNING",
        # Persistent connections, as a deployment with PgBouncer in front gets.
        DJANGO_CONN_MAX_AGE="60",
        PYTHONPATH=str(ROOT),
    )
    return env


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def _load(hashes: np.ndarray) -> tuple[str, Any]:
    """Members, keys and N signals with one assertion each; (api key, private key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from django.db import connection

    from exchange.client import jws
    from members.services import api_key_issue, member_create, signing_key_register

    member = member_create(slug="bench", name="Bench", status="active", actor="bench")
    _, secret = api_key_issue(member=member, scopes=["read", "submit"], actor="bench")
    private = Ed25519PrivateKey.generate()
    key = signing_key_register(
        member=member, public_key=jws.public_key_x(private.public_key()), actor="bench"
    )
    n = len(hashes)
    text = hashes.tobytes().hex()
    now = int(time.time())
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3 cursor underneath Django's wrapper
        with raw.copy("COPY exchange_signal (id, signal_type, value, created_at) FROM STDIN") as cp:
            step = 100_000
            for start in range(0, n, step):
                rows = "".join(
                    f"{i + 1}\tpdq\t{text[64 * i : 64 * i + 64]}\t2024-01-01 00:00:00+00\n"
                    for i in range(start, min(n, start + step))
                )
                cp.write(rows.encode())
        # A compact JWS of a pdq assertion is ~480 characters; the text is a stand-in.
        cursor.execute(
            "INSERT INTO exchange_statement (id, member_id, signing_key_id, signal_id, "
            "member_slug, kid, jti, iat, op, labels, tlp, audience, group_id, exp, "
            "content_type, ref, jws, token_digest, received_at, withdrawn_reason, receipt) "
            "SELECT i, %s, %s, i, 'bench', %s, md5(i::text), %s, 'assert', "
            "'[\"recruitment\"]'::jsonb, 'green', 'forum', NULL, NULL, 'photo', '', "
            "'eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.' || repeat(md5(i::text), 11) || '.' "
            "|| repeat('s', 86), md5(i::text) || md5(i::text), now(), '', "
            # the forum's receipt (~380 characters), a stand-in as the JWS is
            "'eyJhbGciOiJFZERTQSJ9.' || repeat(md5(i::text), 9) || '.' || repeat('r', 86) "
            "FROM generate_series(1, %s) AS i",
            [member.pk, key.pk, key.kid, now - 3600, n],
        )
        cursor.execute(
            "INSERT INTO exchange_currentstatement "
            "(id, member_id, signal_id, statement_id, iat, audience, exp, lapsed) "
            "SELECT i, %s, i, i, %s, 0, NULL, FALSE FROM generate_series(1, %s) AS i",
            [member.pk, now - 3600, n],
        )
        cursor.execute(
            "INSERT INTO exchange_feedentry (seq, audience, signal_id, created_at) "
            "SELECT i, 0, i, now() FROM generate_series(1, %s) AS i",
            [n],
        )
        for table, column in (
            ("exchange_signal", "id"),
            ("exchange_statement", "id"),
            ("exchange_currentstatement", "id"),
            ("exchange_feedentry", "seq"),
        ):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT MAX({column}) FROM {table}))"
            )
        cursor.execute("ANALYZE")
    return secret, private


def _time_snapshot_load(path: Path, repeat: int) -> None:
    """Opening the host's snapshot (read the header, verify the SHA-256 of the payload,
    map the arrays) against the ceiling it exists to beat: a rebuild from PostgreSQL
    (read every active value, build the tables). Medians of ``repeat`` runs, the file
    in the page cache, as for every process of a host but the first."""
    from exchange.matching.service import MatchIndex

    def median_seconds(run: Any) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            assert run() is not None
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    load_s = median_seconds(lambda: MatchIndex.from_snapshot(path))
    rebuild_s = median_seconds(MatchIndex.from_database)
    size = path.stat().st_size
    print(
        f"snapshot: {size / 1e6:,.0f} MB; load (verify + map) median {load_s:.2f}s vs "
        f"rebuild from PostgreSQL median {rebuild_s:.2f}s (ceiling); "
        f"{rebuild_s / load_s:,.0f}x faster, {repeat} runs each",
        flush=True,
    )


def _memory(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                out[parts[0][:-1]] = int(parts[1]) * 1024
    return out


def _workers(master: int) -> list[int]:
    with open(f"/proc/{master}/task/{master}/children") as f:
        return [int(p) for p in f.read().split()]


def bench_http(data: tuple[Any, ...], args: argparse.Namespace, Row: Any) -> list[Any]:
    import httpx

    from tests.support.database import database_drop, database_recreate, database_url_named

    ids, hashes, queries, planted, dists = data
    index_dir = tempfile.mkdtemp(prefix="cordiale-match-index-")
    env = _env(args, index_dir)
    rows: list[Any] = []
    t = time.perf_counter()
    admin, name = (
        database_url_named(args.http_database, "postgres"),
        args.http_database.rsplit("/", 1)[1],
    )
    database_recreate(admin, name)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    _django(env)
    from django.db import connection

    from exchange.client import jws
    from exchange.matching.service import match_index_snapshot
    from tests.support.processes import start_gunicorn, stop_gunicorn

    migrate_s = time.perf_counter() - t
    t = time.perf_counter()
    secret, private = _load(hashes)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    snapshot_path = match_index_snapshot()
    snapshot_s = time.perf_counter() - t
    print(
        f"http: database {migrate_s:.1f}s, {len(ids):,} signals loaded {load_s:.1f}s, "
        f"snapshot from the database {snapshot_s:.1f}s",
        flush=True,
    )
    _time_snapshot_load(snapshot_path, args.http_repeat)
    connection.close()

    server, root = start_gunicorn(env, workers=args.http_workers, extra=("--worker-class", "sync"))
    base = f"{root}/api/v1"
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        qhex = [bytes(q).hex() for q in queries]
        planted_hex = {i: bytes(hashes[int(planted[i]) - 1]).hex() for i in range(len(qhex))}

        def post(client: httpx.Client, values: list[str]) -> list[list[str]]:
            response = client.post(
                f"{base}/match",
                json={"queries": [{"signal_type": "pdq", "value": v} for v in values]},
                headers=headers,
                timeout=300,
            )
            response.raise_for_status()
            return [
                [m["signal"]["value"] for m in r["matches"]] for r in response.json()["results"]
            ]

        # First request of each worker opens the snapshot: two at once land on both.
        first: list[float] = []

        def warm(i: int) -> None:
            with httpx.Client() as client:
                t0 = time.perf_counter()
                post(client, [qhex[i]])
                first.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=warm, args=(i,)) for i in range(args.http_workers)]
        [th.start() for th in threads]  # type: ignore[func-returns-value]
        [th.join() for th in threads]  # type: ignore[func-returns-value]

        row = Row(f"http gunicorn {args.http_workers}w", len(ids), build_s=snapshot_s)
        with httpx.Client() as client:
            for i in range(20):
                post(client, [qhex[i]])
            lat = []
            for i in range(args.http_single):
                t0 = time.perf_counter_ns()
                post(client, [qhex[i % len(qhex)]])
                lat.append(time.perf_counter_ns() - t0)
        arr = np.array(lat) / 1e6
        row.p50_ms, row.p99_ms = float(np.percentile(arr, 50)), float(np.percentile(arr, 99))

        batch = qhex[: args.batch]
        results: dict[int, list[list[str]]] = {}

        def client_loop(k: int) -> None:
            with httpx.Client() as client:
                for b in range(k, args.http_batches, args.http_workers):
                    results[b] = post(client, batch)

        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=client_loop, args=(k,)) for k in range(args.http_workers)
        ]
        [th.start() for th in threads]  # type: ignore[func-returns-value]
        [th.join() for th in threads]  # type: ignore[func-returns-value]
        row.batch_qps = args.http_batches * len(batch) / (time.perf_counter() - t0)
        found = results[0]
        for d in PLANTED_DISTANCES:
            sel = [i for i in range(len(batch)) if int(dists[i]) == d]
            row.recall[d] = sum(planted_hex[i] in found[i] for i in sel) / len(sel)

        fresh = _freshness(base, headers, private, jws)
        mem = [_memory(pid) for pid in _workers(server.pid)]
        row.rss_delta = max(m.get("Pss", 0) for m in mem)
        row.note = (
            f"first match per worker {max(first):.2f}s; 'RSS +' = PSS per worker; anon "
            + ", ".join(f"{m.get('Anonymous', 0) / 1e6:.0f}" for m in mem)
            + " MB; RSS "
            + ", ".join(f"{m.get('Rss', 0) / 1e6:.0f}" for m in mem)
            + f" MB; {len(batch)} queries/request, {args.http_workers} clients; "
            f"freshness assert->match {fresh:.3f}s"
        )
        rows.append(row)
    finally:
        stop_gunicorn(server)
        shutil.rmtree(index_dir, ignore_errors=True)
        if not args.keep_database:
            database_drop(admin, name)
    return rows


def _freshness(base: str, headers: dict[str, str], private: Any, jws: Any) -> float:
    """Seconds from a submitted assertion's 200 to the first match request that finds it."""
    import httpx

    value = (uuid.uuid4().hex + uuid.uuid4().hex)[:64]
    kid = jws.jwk_thumbprint(jws.public_key_x(private.public_key()))
    claims = {
        "iss": "bench",
        "iat": int(time.time()),
        "jti": uuid.uuid4().hex,
        "op": "assert",
        "signal_type": "pdq",
        "value": value,
        "labels": ["recruitment"],
        "tlp": "green",
        "audience": "forum",
    }
    token = jws.sign_compact(claims, private, kid)
    with httpx.Client(headers=headers, timeout=30) as client:
        response = client.post(f"{base}/statements", json={"statements": [token]})
        assert response.json()["accepted"] == 1, response.text
        t0 = time.perf_counter()
        body = {"queries": [{"signal_type": "pdq", "value": value}], "max_distance": 0}
        while not client.post(f"{base}/match", json=body).json()["results"][0]["matches"]:
            if time.perf_counter() - t0 > 10:
                return float("inf")
            time.sleep(0.005)
        return time.perf_counter() - t0

"""Ingest benchmark: signed statements through HTTP into gunicorn on PostgreSQL.

    python tests/bench/bench_ingest.py [--per-member 10000] [--runs 3] [--profile]

Creates a fresh PostgreSQL database (``cordiale_bench`` on 127.0.0.1:5432, user
postgres, or ``--pg``), migrates it, creates 2 members with signing keys, and pre-signs
``runs`` sets of statements (``pdq``, audience ``forum``). It starts ``gunicorn
forum.wsgi:application -w 2`` against that database (no Redis, submit throttles raised)
and, per run, 2 client processes (one per member) POST their statements in batches of
1,000 over HTTP at the same time. It prints accepted statements/s (median of the runs)
and, measured in the same run on the same statements, the ceiling: how many of those
tokens 2 processes verify per second with ``cryptography`` (``exchange.client.jws.parse_compact``
+ ``verify``), and the ratio (target >= 0.5); for reference also the bare signature
check on pre-split tokens.

``--profile`` then runs ``statement_submit`` in-process under cProfile on one fresh
batch of 1,000 and prints where the time goes. gunicorn is stopped and the database
dropped at the end. Not collected by pytest (the file is not ``test_*.py``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tests.bench  # noqa: E402, F401  (run as a script: the throwaway forum key)
from tests.support.database import database_drop, database_recreate  # noqa: E402
from tests.support.processes import start_gunicorn, stop_gunicorn  # noqa: E402

BATCH = 1_000
DB_NAME = "cordiale_bench"


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret")
    os.environ["DJANGO_SETTINGS_MODULE"] = "forum.settings"
    import django

    django.setup()


def _make_members() -> list[dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from django.core.management import call_command

    from exchange.client import jws
    from members.services import api_key_issue, member_create, signing_key_register

    call_command("migrate", verbosity=0)
    members = []
    for slug in ("bench-a", "bench-b"):
        member = member_create(slug=slug, name=slug, status="active", actor="bench")
        _, secret = api_key_issue(member=member, actor="bench")
        private = Ed25519PrivateKey.generate()
        x = jws.public_key_x(private.public_key())
        key = signing_key_register(member=member, public_key=x, actor="bench")
        members.append({"member": member, "api_key": secret, "private": private, "kid": key.kid})
    return members


def _sign(member: dict[str, Any], count: int) -> list[str]:
    from exchange.client import jws

    now = int(time.time())
    slug = member["member"].slug
    tokens = []
    for _ in range(count):
        claims = {
            "iss": slug,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "op": "assert",
            "signal_type": "pdq",
            "value": uuid.uuid4().hex + uuid.uuid4().hex,
            "labels": ["recruitment"],
            "tlp": "green",
            "audience": "forum",
        }
        tokens.append(jws.sign_compact(claims, member["private"], member["kid"]))
    return tokens


def _client(url: str, api_key: str, tokens: list[str], start: Any, out: Any) -> None:
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)
    accepted = 0
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=300
    ) as client:
        start.wait()
        for i in range(0, len(tokens), BATCH):
            response = client.post("/api/v1/statements", json={"statements": tokens[i : i + BATCH]})
            response.raise_for_status()
            accepted += response.json()["accepted"]
    out.put(accepted)


_VERIFY_KEYS: dict[str, Any] = {}


def _verify_init(keys: dict[str, str]) -> None:
    from exchange.client import jws

    _VERIFY_KEYS.update({kid: jws.public_key_from_x(x) for kid, x in keys.items()})


def _verify_chunk(tokens: list[str]) -> int:
    from exchange.client import jws

    ok = 0
    for token in tokens:
        parsed = jws.parse_compact(token)
        ok += jws.verify(parsed, _VERIFY_KEYS[parsed.kid])
    return ok


def _ceiling(tokens: list[str], keys: dict[str, str]) -> float:
    """Verifications per second of 2 processes on these tokens."""
    chunks = [tokens[i : i + BATCH] for i in range(0, len(tokens), BATCH)]
    with mp.get_context("fork").Pool(2, initializer=_verify_init, initargs=(keys,)) as pool:
        pool.map(_verify_chunk, chunks[:2])  # warm up both workers
        started = time.perf_counter()
        verified = sum(pool.map(_verify_chunk, chunks, chunksize=1))
        elapsed = time.perf_counter() - started
    assert verified == len(tokens)
    return len(tokens) / elapsed


def _signature_only(tokens: list[str], keys: dict[str, str]) -> float:
    """For reference: Ed25519 checks per second of one process on pre-split tokens.

    The ceiling above counts what verifying a statement takes (splitting and decoding
    the token, then the signature check); this is the check alone.
    """
    from exchange.client import jws

    public = {kid: jws.public_key_from_x(x) for kid, x in keys.items()}
    parsed = [jws.parse_compact(t) for t in tokens]
    started = time.perf_counter()
    ok = sum(jws.verify(p, public[p.kid]) for p in parsed)
    elapsed = time.perf_counter() - started
    assert ok == len(parsed)
    return len(parsed) / elapsed


def _start_gunicorn(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": "bench-only-secret",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback, as behind a TLS-terminating proxy.
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "CORDIALE_THROTTLE_SUBMIT": "1000000/min",
        "CORDIALE_THROTTLE_STATEMENTS": "100000000/min",
        "DJANGO_SETTINGS_MODULE": "forum.settings",
    }
    env.pop("REDIS_URL", None)
    return start_gunicorn(env)


def _spy(master: int, directory: str) -> list[subprocess.Popen[bytes]]:
    """Start ``py-spy record`` on each gunicorn worker (children of the master)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    Path(directory).mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                pid,
                "--format",
                "raw",
                "--rate",
                "200",
                "-o",
                str(Path(directory) / f"worker-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in children
    ]


def _run(url: str, members: list[dict[str, Any]], sets: list[list[str]]) -> float:
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(url, m["api_key"], tokens, start, out))
        for m, tokens in zip(members, sets, strict=True)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)
    started = time.perf_counter()
    start.set()
    accepted = sum(out.get() for _ in procs)
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"client failed with exit code {p.exitcode}")
    expected = sum(len(t) for t in sets)
    if accepted != expected:
        raise RuntimeError(f"accepted {accepted} of {expected}")
    return accepted / elapsed


def _profile(members: list[dict[str, Any]]) -> None:
    import cProfile
    import pstats

    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from exchange.services.statements import statement_submit

    member = members[0]
    tokens = _sign(member, BATCH)
    profiler = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        profiler.enable()
        body = statement_submit(member=member["member"], tokens=tokens)
        profiler.disable()
        elapsed = time.perf_counter() - started
    reset_queries()
    assert body["accepted"] == BATCH, body
    print(
        f"\nprofile: statement_submit of {BATCH} in-process: {elapsed * 1000:.0f} ms "
        f"({BATCH / elapsed:,.0f}/s, one process), {len(queries)} SQL queries"
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-member", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="record each gunicorn worker with py-spy during the first run (top-down text)",
    )
    args = parser.parse_args()

    admin_url = f"{args.pg}/postgres"
    database_url = f"{args.pg}/{DB_NAME}"
    database_recreate(admin_url, DB_NAME)
    gunicorn = None
    try:
        _setup_django(database_url)
        members = _make_members()
        print(f"signing {args.runs} x 2 x {args.per_member:,} statements ...", flush=True)
        runs = [[_sign(m, args.per_member) for m in members] for _ in range(args.runs)]
        keys = {m["kid"]: m["private"].public_key() for m in members}
        from exchange.client import jws

        keys_x = {kid: jws.public_key_x(k) for kid, k in keys.items()}
        from django.db import connection

        connection.close()  # no open connection across the fork of the clients

        gunicorn, url = _start_gunicorn(database_url)
        rates, ceilings = [], []
        for n, sets in enumerate(runs, 1):
            spies = _spy(gunicorn.pid, args.py_spy) if args.py_spy and n == 1 else []
            rate = _run(url, members, sets)
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            ceiling = _ceiling([t for tokens in sets for t in tokens], keys_x)
            rates.append(rate)
            ceilings.append(ceiling)
            total = sum(len(t) for t in sets)
            print(
                f"run {n}: {total:,} statements, ingest {rate:,.0f}/s, "
                f"verify ceiling (2 processes) {ceiling:,.0f}/s, ratio {rate / ceiling:.2f}",
                flush=True,
            )
        rate, ceiling = statistics.median(rates), statistics.median(ceilings)
        print(
            f"\ningest (HTTP, gunicorn -w 2, PostgreSQL, 2 clients, batches of {BATCH:,}): "
            f"{rate:,.0f} statements/s (median of {len(rates)})"
        )
        print(f"ceiling: Ed25519 verification with cryptography, 2 processes: {ceiling:,.0f}/s")
        print(f"ratio: {rate / ceiling:.2f} (target >= 0.50)")
        alone = _signature_only([t for tokens in runs[-1] for t in tokens], keys_x)
        print(
            f"for reference, the signature check alone (tokens already split and decoded), "
            f"one process: {alone:,.0f}/s, x2 = {2 * alone:,.0f}/s"
        )
        if args.profile:
            _profile(members)
    finally:
        if gunicorn is not None:
            stop_gunicorn(gunicorn)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: S110 - Django may not be set up yet
            pass
        database_drop(admin_url, DB_NAME)


if __name__ == "__main__":
    main()

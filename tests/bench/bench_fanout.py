"""Benchmark: webhook fan-out from commit to receipt, with real workers (not collected).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        python -m tests.bench.bench_fanout [--endpoints 50] [--statements 10000] \\
        [--batch 100] [--concurrency 8] [--workers 1]

Creates a scratch database on that server (dropped at the end), starts a private
redis-server, Celery worker processes and an HTTP receiver process on 127.0.0.1, creates
``--endpoints`` endpoints spread over members (10 each at most), then one member submits
``--statements`` pre-signed forum statements in batches through ``statement_submit``.
Every change must reach every endpoint. Prints deliveries/s, changes delivered/s and the
latency from a batch's commit to each endpoint's receipt of each change (p50/p95/p99),
against the ceiling p95 <= 2 s.

Without ``--pause`` the submitter commits as fast as it can, and every process (the
submitter, PostgreSQL, Redis, the workers and the receiver, which parses every body)
shares the machine's cores. Deliveries are then bound by CPU: each POST costs the worker
a few milliseconds (reading the shared page from Redis, the HTTP exchange, signing the
body, logging the attempt, storing the cursor), and latency is the backlog divided by
that rate. ``--pause`` spaces the batches out to measure latency at a sustained rate
instead; report the exact command with the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tests.bench  # noqa: E402, F401  (run as a script: the throwaway forum key)
from tests.support.database import database_drop, database_recreate  # noqa: E402
from tests.support.processes import Worker, free_port  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

P95_CEILING = 2.0


def _receiver(port: int) -> None:
    """Records, per request: path, receipt time, the values it carried.

    ``GET /count`` answers how many distinct (path, value) pairs arrived, cheap enough to
    poll while deliveries run; ``GET /records`` answers everything, once, at the end.
    """
    records: list[tuple[str, float, list[str]]] = []
    pairs: set[tuple[str, str]] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            at = time.time()
            # orjson: the receiver stands in for members' servers elsewhere, so it should
            # take as little of this machine's CPU as it can (stdlib json: ~4 core-s a run).
            values = [c["value"] for c in orjson.loads(body).get("changes", [])]
            with lock:
                records.append((self.path, at, values))
                pairs.update((self.path, v) for v in values)
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with lock:
                answer = {"pairs": len(pairs)} if self.path == "/count" else list(records)
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    server.serve_forever()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(args: argparse.Namespace, database_url: str, redis_url: str, tmp: Path) -> int:
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="forum.settings",
        DJANGO_SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret"),
        CORDIALE_WEBHOOK_ALLOW_PRIVATE="true",
        DJANGO_LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from django.conf import settings

    from exchange.models import WebhookDelivery, WebhookEndpoint
    from exchange.services.statements import statement_submit
    from exchange.webhooks.endpoints import webhook_create
    from tests.factories import make_party, pdq

    port = free_port()
    receiver = multiprocessing.Process(target=_receiver, args=(port,), daemon=True)
    receiver.start()

    submitter = make_party("bench-submitter")
    paths = []
    per_member = 10
    for i in range(args.endpoints):
        if i % per_member == 0:
            party = make_party(f"bench-reader-{i // per_member}")
        path = f"/e{i}"
        webhook_create(member=party.member, url=f"http://127.0.0.1:{port}{path}", actor="bench")
        paths.append(path)

    now = int(time.time())
    batches = []
    for b in range(0, args.statements, args.batch):
        batches.append(
            [
                submitter.statement("pdq", pdq(), iat=now - 60)
                for _ in range(min(args.batch, args.statements - b))
            ]
        )

    # Workers log at INFO, the production default: the harness waits for their "ready"
    # line, which a WARNING level hides.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_LOG_LEVEL": "INFO"}
    workers = [
        Worker(env=env, log=tmp / f"worker-{n}.log", concurrency=args.concurrency, beat=True)
        for n in range(args.workers)
    ]
    for worker in workers:
        worker.start()

    committed: dict[str, float] = {}
    started = time.time()
    try:
        for tokens in batches:
            result = statement_submit(member=submitter.member, tokens=tokens)
            at = time.time()
            assert result["accepted"] == len(tokens), result
            for item in result["results"]:
                committed[item["value"]] = at
            if args.pause:
                time.sleep(args.pause)
        submitted = time.time()

        expected = len(committed) * len(paths)
        deadline = time.time() + args.timeout
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/count") as response:
                got = json.loads(response.read())["pairs"]
            if got >= expected or time.time() > deadline:
                break
            time.sleep(0.25)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/records") as response:
            records = json.loads(response.read())
    finally:
        for worker in workers:
            worker.stop()
        receiver.kill()

    first: dict[tuple[str, str], float] = {}
    for path, at, values in records:
        for v in values:
            first.setdefault((path, v), at)
    latencies = [at - committed[v] for (_, v), at in first.items()]
    finished = max(at for _, at, _ in records)
    window = finished - started
    changes = sum(len(values) for _, _, values in records)
    attempts = WebhookDelivery.objects.count()
    http_ms = [d for d in WebhookDelivery.objects.values_list("latency_ms", flat=True) if d]

    print(f"endpoints            {len(paths)}")
    print(f"statements           {len(committed)} in {len(batches)} batches of {args.batch}")
    print(f"workers              {args.workers} x prefork {args.concurrency}")
    rate = len(committed) / (submitted - started)
    print(f"submission           {submitted - started:.2f} s ({rate:.0f} statements/s)")
    print(f"delivered            {len(first)} of {expected} (endpoint, change) pairs")
    print(f"deliveries (POSTs)   {len(records)} ({attempts} logged attempts)")
    print(f"deliveries/s         {len(records) / window:.0f}")
    print(f"changes delivered/s  {changes / window:.0f}")
    print(f"changes per POST     {changes / max(1, len(records)):.1f}")
    print(f"POST round trip      median {statistics.median(http_ms):.0f} ms")
    print(
        "commit-to-receipt    "
        f"p50 {percentile(latencies, 50):.3f} s  p95 {percentile(latencies, 95):.3f} s  "
        f"p99 {percentile(latencies, 99):.3f} s  max {max(latencies):.3f} s"
    )
    # Where a delivery's time goes: reading one page of the feed, as each endpoint does.
    from exchange.selectors import feed_page

    reader = WebhookEndpoint.objects.order_by("pk").first()
    assert reader is not None
    page_size = settings.CORDIALE_WEBHOOK_BATCH
    t0 = time.perf_counter()
    page, _, _ = feed_page(member_id=reader.member_id, cursor=None, limit=page_size)
    t1 = time.perf_counter()
    body = orjson.dumps({"type": "changes", "changes": page})
    t2 = time.perf_counter()
    print(
        f"one page of {len(page)}     feed_page {1000 * (t1 - t0):.0f} ms, "
        f"encode {1000 * (t2 - t1):.0f} ms, {len(body) // 1024} KiB"
    )
    ok = len(first) == expected and percentile(latencies, 95) <= P95_CEILING
    print(f"ceiling              p95 <= {P95_CEILING} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--statements", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between batches")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        print("DATABASE_URL must point to a PostgreSQL server", file=sys.stderr)
        return 2
    name = f"cordiale_bench_{os.getpid()}"
    database_url = database_recreate(base_url, name)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        try:
            return run(args, database_url, redis.url, Path(tmp))
        finally:
            redis.kill()
            from django.db import connections

            connections.close_all()
            database_drop(base_url, name)


if __name__ == "__main__":
    sys.exit(main())

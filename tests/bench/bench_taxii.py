"""TAXII benchmark: a fresh reader pages 1,000,000 indicators through TAXII 2.1.

    python tests/bench/bench_taxii.py [--n 1000000] [--runs 3] [--pg URL]

Loads the same data as ``bench_sync.py`` (a fresh database ``cordiale_bench_taxii``,
one submitting member and a fresh reader, N forum signals each with one current
statement and one feed row, through COPY), serves it with ``gunicorn forum.wsgi
-w 2``, and per run measures, one after the other on the same server:

- **TAXII**: the reader finds the forum collection (discovery, API root, collections)
  and pages ``GET .../collections/<forum>/objects/`` with the largest ``limit`` the
  server allows, following ``next`` until ``more`` is false; objects/s, counting
  every STIX object served (N indicators plus the identity, marking and extension
  definitions), and indicators/s;
- **feed** (the ceiling it is compared with): the same reader pages
  ``GET /api/v1/changes?limit=10000`` from no cursor until ``has_more`` is false;
  snapshots/s.

Prints the medians and the ratio objects/s ÷ snapshots/s (target >= 0.5). Each signal
is one snapshot in the feed and one indicator in TAXII, so the two rates count the
same work. The database is dropped at the end. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tests.bench  # noqa: E402, F401  (run as a script: the throwaway forum key)
from tests.bench.bench_sync import load, manage, server_env  # noqa: E402
from tests.support.database import database_drop, database_recreate  # noqa: E402
from tests.support.processes import start_gunicorn, stop_gunicorn  # noqa: E402

DB = "cordiale_bench_taxii"
FEED_PAGE = 10_000
# The largest limit TAXII honours (exchange.feed.MAX_LIMIT, shared with the feed); a
# larger one gets pages of this size. Checked on the first page of each run.
TAXII_LIMIT = 10_000
TAXII = "application/taxii+json;version=2.1"


def feed_pass(client: httpx.Client) -> tuple[float, int]:
    cursor = None
    total = 0
    start = time.perf_counter()
    while True:
        params: dict[str, str | int] = {"limit": FEED_PAGE}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/api/v1/changes", params=params)
        response.raise_for_status()
        body = orjson.loads(response.content)
        total += len(body["changes"])
        cursor = body["cursor"]
        if not body["has_more"]:
            return time.perf_counter() - start, total


def taxii_pass(client: httpx.Client, limit: int) -> tuple[float, Counter[str], int]:
    """Seconds, objects served by type, pages."""
    headers = {"Accept": TAXII}
    kinds: Counter[str] = Counter()
    pages = 0
    start = time.perf_counter()
    discovery = orjson.loads(client.get("/taxii2/", headers=headers).raise_for_status().content)
    root = discovery["default"]
    client.get(root, headers=headers).raise_for_status()
    listed = orjson.loads(
        client.get(f"{root}collections/", headers=headers).raise_for_status().content
    )
    forum = next(c["id"] for c in listed["collections"] if c["alias"] == "forum")
    url = f"{root}collections/{forum}/objects/"
    params: dict[str, str | int] = {"limit": limit}
    while True:
        response = client.get(url, params=params, headers=headers)
        response.raise_for_status()
        body = orjson.loads(response.content)
        pages += 1
        if pages == 1 and body.get("more"):
            assert len(body["objects"]) >= limit, ("the server capped limit", len(body["objects"]))
        kinds.update(o["type"] for o in body.get("objects", []))
        if not body.get("more"):
            return time.perf_counter() - start, kinds, pages
        params = {"limit": limit, "next": body["next"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="indicators to load")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=TAXII_LIMIT, help="TAXII page size")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database for profiling")
    args = parser.parse_args()
    admin = args.pg
    url = database_recreate(admin, DB)
    env = server_env(url)
    server = None
    limit = args.limit
    try:
        manage(env, "migrate", "-v0")
        t0 = time.perf_counter()
        key = load(url, args.n, env)
        with psycopg.connect(url, autocommit=True) as conn:
            # bench_sync's rows predate TAXII's date_added; give them one as feed_append
            # would: strictly increasing with seq.
            conn.execute(
                "UPDATE exchange_feedentry "
                "SET added_at = created_at + seq * interval '1 microsecond'"
            )
            conn.execute("VACUUM ANALYZE exchange_feedentry")
        print(f"loaded {args.n:,} indicators in {time.perf_counter() - t0:.0f} s")
        server, base = start_gunicorn(env)
        taxii_rates, indicator_rates, feed_rates = [], [], []
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300
        ) as client:
            for run in range(args.runs):
                t_seconds, kinds, pages = taxii_pass(client, limit)
                assert kinds["indicator"] == args.n, (kinds, args.n)
                objects = sum(kinds.values())
                taxii_rates.append(objects / t_seconds)
                indicator_rates.append(kinds["indicator"] / t_seconds)
                f_seconds, snapshots = feed_pass(client)
                assert snapshots == args.n, (snapshots, args.n)
                feed_rates.append(snapshots / f_seconds)
                print(
                    f"run {run + 1}: TAXII {objects / t_seconds:,.0f} objects/s "
                    f"({objects:,} objects, {pages} pages, {t_seconds:.1f} s); "
                    f"feed {snapshots / f_seconds:,.0f} snapshots/s ({f_seconds:.1f} s)"
                )
        taxii = statistics.median(taxii_rates)
        feed = statistics.median(feed_rates)
        print()
        print(f"indicators                   {args.n:>12,}")
        print(f"TAXII limit                  {limit:>12,}")
        print(f"TAXII (median)               {taxii:>12,.0f} objects/s")
        print(
            f"TAXII (median)               {statistics.median(indicator_rates):>12,.0f} "
            "indicators/s"
        )
        print(f"ceiling: pull feed (median)  {feed:>12,.0f} snapshots/s")
        print(f"ratio                        {taxii / feed:>12.2f}   (target >= 0.50)")
    finally:
        if server is not None:
            stop_gunicorn(server)
        if not args.keep:
            database_drop(admin, DB)


if __name__ == "__main__":
    main()

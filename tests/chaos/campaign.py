"""The campaign's command line and its order: start the installation, create the members
and their webhook endpoints, run the member drivers and the fault scheduler for the
chosen time, let everything settle, run the checks, print and write the summary.

Exit status 0 when every check passed, 1 otherwise (2 for a bad command line)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.chaos import checks
from tests.chaos.cluster import Cluster
from tests.chaos.drivers import MemberDriver
from tests.chaos.faults import Scheduler
from tests.chaos.ledger import Ledger
from tests.chaos.population import MemberSpec, django_setup, members_create
from tests.chaos.receivers import Hook, hooks_start
from tests.chaos.report import RssSampler, latency_table, render, write_json
from tests.support.processes import ROOT

# Shorter webhook retry and sweep periods than production's, so that a receiver that comes
# back is caught up within seconds and the run can end; everything else is production's.
SETTINGS = {
    "CORDIALE_WEBHOOK_SWEEP_INTERVAL": "5",
    "CORDIALE_WEBHOOK_RETRY_BASE": "1",
    "CORDIALE_WEBHOOK_RETRY_MAX": "10",
    "CORDIALE_WEBHOOK_TIMEOUT": "5",
    "CORDIALE_WEBHOOK_BATCH": "50",
}
PROFILES = {
    "ci": {"minutes": 1.5, "fault_interval": 10.0, "receiver_down": 30.0},
    "long": {"minutes": 20.0, "fault_interval": 60.0, "receiver_down": 180.0},
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    parser.add_argument("--minutes", type=float, help="minutes of load and faults")
    parser.add_argument("--fault-interval", type=float, help="seconds between faults")
    parser.add_argument("--receiver-down", type=float, help="seconds one receiver is down")
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--hooks", type=int, default=10, help="members with an endpoint")
    parser.add_argument("--pause", type=float, default=1.0, help="mean seconds between actions")
    parser.add_argument("--settle", type=float, default=180, help="seconds to wait for webhooks")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    for name, value in PROFILES[args.profile].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def forum_key() -> None:
    """Production-mode processes need a forum key: a throwaway one per checkout."""
    from members.forum_key import forum_key_file_ensure

    path = Path(
        os.environ.setdefault("CORDIALE_FORUM_KEY_FILE", str(ROOT / "var" / "chaos-forum-key.pem"))
    )
    forum_key_file_ensure(path)


def endpoints_create(specs: list[MemberSpec], hooks: list[Hook]) -> None:
    from exchange.webhooks.endpoints import webhook_create
    from members.models import Member

    for hook in hooks:
        member = Member.objects.get(slug=hook.member)
        endpoint, secret = webhook_create(
            member=member, url=hook.receiver.url(), signal_types=hook.signal_types or None,
            start="beginning", actor="chaos-campaign",
        )  # fmt: skip
        hook.endpoint_id, hook.secret = endpoint.pk, secret


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cluster = Cluster(workdir, settings=SETTINGS)
    hooks: list[Hook] = []
    try:
        print(f"starting the installation in {workdir}", flush=True)
        began = time.monotonic()
        cluster.start()
        django_setup(cluster.env())
        specs = members_create(args.members, args.groups)
        hooks = hooks_start([s.slug for s in specs[: args.hooks]])
        endpoints_create(specs, hooks)
        args.setup_seconds = round(time.monotonic() - began, 1)
        return _campaign(args, cluster, specs, hooks, workdir)
    finally:
        for hook in hooks:
            hook.close()
        cluster.stop()


def _campaign(
    args: argparse.Namespace, cluster: Cluster, specs: list[MemberSpec], hooks: list[Hook],
    workdir: Path,
) -> dict[str, Any]:  # fmt: skip
    ledger, stop = Ledger(), threading.Event()
    drivers = [
        MemberDriver(spec, cluster.base_url, ledger, stop, workdir / "replicas" / spec.slug,
                     pause=args.pause, seed=args.seed + i)
        for i, spec in enumerate(specs)
    ]  # fmt: skip
    load = args.minutes * 60
    scheduler = Scheduler(
        cluster, hooks, ledger, args.fault_interval, load, args.receiver_down, args.seed
    )
    sampler = RssSampler(cluster)
    print(f"load for {load:.0f} s, a fault every {args.fault_interval:.0f} s: {scheduler.plan}")
    started = time.monotonic()
    for thread in (*drivers, scheduler, sampler):
        thread.start()
    time.sleep(load)
    stop.set()
    scheduler.finish()
    for driver in drivers:
        driver.give_up_at = time.monotonic() + 120
    for driver in drivers:
        driver.join(180)
    load_seconds = time.monotonic() - started
    print(f"load stopped after {load_seconds:.0f} s; settling", flush=True)
    cluster.wait_healthy()
    oracles = {s.slug: checks.fresh_feed(cluster.base_url, s.api_key) for s in specs}
    settling = time.monotonic()
    converged = checks.wait_hooks(hooks, oracles, args.settle)
    args.settle_seconds = round(time.monotonic() - settling, 1)
    sampler.stop.set()
    return _summary(args, cluster, specs, hooks, ledger, scheduler, sampler, oracles,
                    converged, load_seconds, workdir)  # fmt: skip


def _summary(
    args: argparse.Namespace, cluster: Cluster, specs: list[MemberSpec], hooks: list[Hook],
    ledger: Ledger, scheduler: Scheduler, sampler: RssSampler, oracles: dict[str, Any],
    converged: float | None, load_seconds: float, workdir: Path,
) -> dict[str, Any]:  # fmt: skip
    statements = checks.check_statements(cluster.database_url, ledger)
    replica_problems: list[str] = []
    for spec in specs:
        state = workdir / "replicas" / spec.slug
        replica_problems += checks.check_replica(spec, cluster.base_url, state, oracles[spec.slug])
    hook_results = [checks.check_hook(h, oracles[h.member]) for h in hooks]
    leaks = checks.check_leaks(ledger, specs, hooks)
    errors = checks.check_5xx(ledger, scheduler.pg_windows)
    webhooks = {
        "endpoints": len(hooks),
        "deliveries": sum(r["deliveries"] for r in hook_results),
        "changes_delivered": sum(r["changes"] for r in hook_results),
        "duplicates": sum(r["duplicates"] for r in hook_results),
        "failed_attempts": sum(r["failed_attempts"] for r in hook_results),
        "converged_after_s": None if converged is None else round(converged, 1),
        "per_endpoint": [
            {"member": h.member, "mode": h.mode, **{k: r[k] for k in (
                "deliveries", "changes", "duplicates", "failed_attempts", "cursor_backwards")}}
            for h, r in zip(hooks, hook_results, strict=True)
        ],
    }  # fmt: skip
    problems = [*statements["problems"], *replica_problems, *leaks["problems"]]
    problems += [p for r in hook_results for p in r["problems"]]
    problems += errors["problems"] + [f"driver error: {e}" for e in ledger.errors]
    faults = [e for e in scheduler.events if e["kind"] != "crash"]
    problems += [f"fault not injected: {e['kind']}: {e['detail']}" for e in faults if not e["ok"]]
    # A process that died on its own was started again (as its supervisor would): not a
    # failed check, but quoted in the summary as a finding.
    crashes = [e["detail"] for e in scheduler.events if e["kind"] == "crash"]
    return {
        "passed": not problems,
        "run": {
            "profile": args.profile, "minutes": args.minutes, "fault_interval": args.fault_interval,
            "members": len(specs), "groups": args.groups, "seed": args.seed,
            "load_seconds": round(load_seconds, 1), "counters": dict(ledger.counters),
            "setup_seconds": args.setup_seconds, "settle_seconds": args.settle_seconds,
        },
        "faults": faults,
        "crashes": crashes,
        "pg_down_windows": scheduler.pg_windows,
        "statements": statements,
        "replicas": {"members": len(specs), "problems": len(replica_problems)},
        "webhooks": webhooks,
        "leaks": leaks,
        "errors_5xx": errors,
        "latency": latency_table(ledger.attempts),
        "rss": sampler.summary(),
        "rss_samples": sampler.samples,
        "problems": problems,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which("redis-server") is None:
        print("the campaign needs redis-server and the PostgreSQL server binaries", file=sys.stderr)
        return 2
    forum_key()
    workdir = Path(tempfile.mkdtemp(prefix="cordiale-chaos-"))
    try:
        summary = run(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(summary), flush=True)
    if args.json:
        write_json(summary, args.json)
        print(f"summary written to {args.json}")
    return 0 if summary["passed"] else 1

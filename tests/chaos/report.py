"""The campaign's summary: figures per check, p50/p99 latency per endpoint, worker RSS
over time, faults injected; printed as text and written as JSON."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.chaos.cluster import Cluster
from tests.chaos.ledger import Attempt


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_table(attempts: list[Attempt]) -> dict[str, dict[str, float]]:
    """Per endpoint: answered attempts, p50 and p99 in milliseconds (time to headers)."""
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    for attempt in attempts:
        if attempt.status:
            by_endpoint[attempt.endpoint].append(attempt.seconds * 1000)
    return {
        endpoint: {
            "n": len(ms),
            "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(percentile(ms, 99), 1),
        }
        for endpoint, ms in sorted(by_endpoint.items())
    }


class RssSampler(threading.Thread):
    """Samples the workers' resident memory every ``every`` seconds."""

    def __init__(self, cluster: Cluster, every: float = 5.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.cluster = cluster
        self.every = every
        self.samples: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            sizes = self.cluster.rss()
            self.samples.append({"t": round(time.monotonic() - self.started), **sizes})

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for role in ("web_max", "celery_max"):
            series = [s[role] for s in self.samples if role in s]
            if series:
                out[role] = {
                    "first_kib": series[0],
                    "peak_kib": max(series),
                    "last_kib": series[-1],
                }
        return out


def render(summary: dict[str, Any]) -> str:
    lines = ["", "== chaos campaign summary =="]
    run = summary["run"]
    lines.append(
        f"setup {run['setup_seconds']:.0f} s, load {run['load_seconds']:.0f} s, "
        f"settling {run['settle_seconds']:.0f} s, {run['members']} members, "
        f"{len(summary['faults'])} faults, verdict: {'PASS' if summary['passed'] else 'FAIL'}"
    )
    for event in summary["faults"]:
        clock = time.strftime("%H:%M:%S", time.localtime(event["at"]))
        lines.append(f"  {clock} {event['kind']:<14} {event['detail']}")
    lines += [f"  crash (restarted): {c}" for c in summary["crashes"]]
    s = summary["statements"]
    lines.append(
        f"statements: sent {s['sent']}, accepted {s['accepted']}, duplicate {s['duplicate']}, "
        f"stored {s['stored']}, lost {s['lost']}, stored twice {s['stored_twice']}, "
        f"unconfirmed {s['unconfirmed']}"
    )
    w = summary["webhooks"]
    lines.append(
        f"webhooks: {w['deliveries']} deliveries, {w['changes_delivered']} changes, "
        f"{w['duplicates']} duplicates, {w['failed_attempts']} failed attempts, "
        f"converged after {w['converged_after_s']} s"
    )
    lines.append(f"replicas: {summary['replicas']['members']} members compared")
    lk = summary["leaks"]
    lines.append(f"leaks: {lk['leaks']} in {lk['values_checked']} values shown")
    e = summary["errors_5xx"]
    lines.append(
        f"5xx: {e['5xx_in_pg_windows']} (503) inside PostgreSQL down windows, "
        f"{e['5xx_outside']} unexplained; by status {e.get('5xx_by_status', {})}; "
        f"{e['no_answer']} attempts without an answer; {e['attempts']} attempts"
    )
    lines.append("latency (ms, time to headers)      n      p50      p99")
    for endpoint, row in summary["latency"].items():
        lines.append(f"  {endpoint:<34} {row['n']:>6} {row['p50_ms']:>8} {row['p99_ms']:>8}")
    for role, row in summary["rss"].items():
        lines.append(
            f"rss {role}: {row['first_kib']} -> peak {row['peak_kib']} "
            f"-> last {row['last_kib']} KiB"
        )
    problems = summary["problems"]
    lines.append(f"problems: {len(problems)}")
    lines += [f"  - {p}" for p in problems[:60]]
    return "\n".join(lines)


def write_json(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, default=str))

"""``POST /api/v1/match`` bounds the work one request may cause.

The index prunes a PDQ search up to distance 47; beyond (or on a small index) every
indexed hash is compared with every query hash. A request whose query hashes times
the hashes each must be compared with exceeds ``CORDIALE_MATCH_WORK_BUDGET`` is refused
up front with a 413 ``match_too_costly`` problem that says how to split it, instead of
occupying a worker for seconds or minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import override_settings

from exchange.matching.service import match_index_reset
from tests.exchange.match_support import write_random_snapshot
from tests.factories import Party, make_party, pdq
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def index_dir(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "match-index"
    match_index_reset()
    with override_settings(CORDIALE_MATCH_INDEX_DIR=root):
        yield root
    match_index_reset()


def _queries(values: list[str]) -> list[dict[str, str]]:
    return [{"signal_type": "pdq", "value": v} for v in values]


def _post(party: Party, values: list[str], max_distance: int) -> Any:
    body = {"queries": _queries(values), "max_distance": max_distance}
    return party.client.post("/api/v1/match", body, format="json")


@override_settings(CORDIALE_MATCH_WORK_BUDGET=10_000)
def test_queries_times_index_size_past_the_budget_is_a_413_problem() -> None:
    """20 indexed values, a budget of 10,000 comparisons: 1,000 hashes at distance 64
    (20,000) are refused with match_too_costly and the figures; 100 hashes (2,000) and
    a single one are answered."""
    acme = make_party()
    values = [pdq() for _ in range(20)]
    assert acme.submit(*(acme.statement("pdq", v) for v in values))["accepted"] == 20
    refused = _post(acme, [pdq() for _ in range(1_000)], 64)
    assert_problem(refused, 413, "match_too_costly")
    assert "20,000" in refused.json()["detail"] and "10,000" in refused.json()["detail"]
    assert _post(acme, [pdq() for _ in range(100)], 64).status_code == 200
    found = _post(acme, values[:1], 31)
    assert found.status_code == 200
    assert found.json()["results"][0]["matches"][0]["signal"]["value"] == values[0]


def test_default_budget_refuses_a_thousand_full_scans_of_a_large_index(index_dir: Path) -> None:
    """At 600,000 indexed hashes and the default budget: 1,000 hashes at distance 64
    (600 million comparisons) are refused at once, and the problem points to distances
    the index prunes; 1,000 hashes at 31 (the tables: ~20 million) are answered."""
    write_random_snapshot(index_dir, 600_000)
    party = make_party()
    rng = np.random.default_rng(5)
    values = [bytes(h).hex() for h in rng.integers(0, 256, size=(1_000, 32), dtype=np.uint8)]
    assert _post(party, values[:1], 31).status_code == 200  # opens the index
    started = time.perf_counter()
    refused = _post(party, values, 64)
    refused_in = time.perf_counter() - started
    assert_problem(refused, 413, "match_too_costly")
    assert "max_distance 47 or less" in refused.json()["detail"]
    assert refused_in < 1.0, f"refusing took {refused_in:.2f} s: it searched first"
    answered = _post(party, values, 31)
    assert answered.status_code == 200
    assert len(answered.json()["results"]) == 1_000

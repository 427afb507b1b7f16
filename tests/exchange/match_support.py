"""A large match index without the database rows: a snapshot file, as a web process
writes it, that the process under test opens on its first match; and the fixtures the
/match tests share (a fresh index per test, both search paths of the index)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.test import override_settings

from exchange.matching import snapshots
from exchange.matching.pdq_index import PDQIndex
from exchange.matching.pdq_index import index as pdq_index
from exchange.matching.service import SNAPSHOT_FILE, _database_name, match_index_reset


def write_random_snapshot(root: Path, n: int, seed: int = 13) -> np.ndarray:
    """Write a snapshot of ``n`` random hashes (ids 1..n) under ``root``; return them."""
    hashes = np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    index = PDQIndex.build(np.arange(1, n + 1), hashes)
    snapshots.write(root / SNAPSHOT_FILE, index, cursor=0, database=_database_name())
    return hashes


@pytest.fixture(autouse=True)
def fresh_index(tmp_path: Path) -> Iterator[None]:
    """Each test starts with no index in the process and an empty snapshot directory."""
    match_index_reset()
    with override_settings(CORDIALE_MATCH_INDEX_DIR=tmp_path / "match-index"):
        yield
    match_index_reset()


@pytest.fixture(params=["tables", "scan"])
def search_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run through the multi-index tables, or through the index's linear scan."""
    if request.param == "tables":
        monkeypatch.setattr(pdq_index, "BRUTE_FORCE_BELOW", 0)
        monkeypatch.setattr(pdq_index, "CANDIDATE_COST_FACTOR", 0.0)
    else:
        monkeypatch.setattr(pdq_index, "BRUTE_FORCE_BELOW", 1 << 62)
    return str(request.param)

"""A large match index without the database rows: a snapshot file, as a web process
writes it, that the process under test opens on its first match."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exchange.matching import snapshots
from exchange.matching.pdq_index import PDQIndex
from exchange.matching.service import SNAPSHOT_FILE, _database_name


def write_random_snapshot(root: Path, n: int, seed: int = 13) -> np.ndarray:
    """Write a snapshot of ``n`` random hashes (ids 1..n) under ``root``; return them."""
    hashes = np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    index = PDQIndex.build(np.arange(1, n + 1), hashes)
    snapshots.write(root / SNAPSHOT_FILE, index, cursor=0, database=_database_name())
    return hashes

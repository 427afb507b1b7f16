"""Matching of submitted values against the forum's signals (no Django import here)."""

from exchange.matching.pdq_index import PDQIndex, hashes_from_hex, hex_to_bytes

__all__ = ["PDQIndex", "hashes_from_hex", "hex_to_bytes"]

"""Matching of submitted values against the forum's signals.

``pdq_index`` is the index itself and imports nothing from Django; ``service`` keeps one
per process fresh from the change feed; ``selectors`` answers ``POST /api/v1/match``.
"""

from exchange.matching.pdq_index import PDQIndex, hashes_from_hex, hex_to_bytes

__all__ = ["PDQIndex", "hashes_from_hex", "hex_to_bytes"]

"""The forum's signed decision on a dispute.

A decision is a statement of the forum: a compact JWS (RFC 7515) by the forum's key
(``members/forum_key.py``, the key that signs receipts, published in ``/api/v1/jwks``
with ``"forum": true``), with protected header
``{"alg": "EdDSA", "kid": <forum kid>, "typ": "cordiale-decision"}`` and exactly the
claims ``DECISION_CLAIMS``, e.g.::

    {"iss": "forum", "iat": 1764400000, "jti": "dec_3f2a...", "dispute": 12,
     "signal_type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e",
     "grounds": "not_tvec", "decision": "overturn", "labels": [],
     "rationale": "A news agency's photograph, not propaganda."}

``decision`` is ``uphold`` (the signal stands as its members stated it), ``overturn``
(the signal is withdrawn for every member) or ``relabel`` (the signal stands; the forum
says ``labels`` describe it, the members' statements are unchanged). ``labels`` is
empty unless the decision is ``relabel``. Signed once, when the decision becomes final,
and stored; the snapshot carries it verbatim as ``decisions[].jws``. Anyone verifies it
offline with ``exchange.client.verify.verify_decision`` against the JWKS.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from exchange.client.statement_format import DECISION_TYP
from members.forum_key import forum_key

FORUM_ISSUER = "forum"


def decision_claims(
    *,
    dispute_id: int,
    signal_type: str,
    value: str,
    grounds: str,
    decision: str,
    labels: list[str],
    rationale: str,
    iat: int | None = None,
    jti: str | None = None,
) -> dict[str, Any]:
    return {
        "iss": FORUM_ISSUER,
        "iat": int(time.time()) if iat is None else iat,
        "jti": jti or f"dec_{secrets.token_hex(16)}",
        "dispute": dispute_id,
        "signal_type": signal_type,
        "value": value,
        "grounds": grounds,
        "decision": decision,
        "labels": sorted(labels),
        "rationale": rationale,
    }


def decision_sign(claims: dict[str, Any]) -> str:
    """The compact JWS of ``claims`` by the forum's current key."""
    return forum_key().sign(claims, typ=DECISION_TYP)

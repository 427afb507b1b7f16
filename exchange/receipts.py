"""Receipts: the forum's signed word on when it received a statement.

A member's statement says what the member claims, including when it signed (``iat``),
and a thief holding the member's key can claim any ``iat``. What the thief cannot choose
is when the forum received the statement. So at ingest the forum countersigns each
accepted statement with its own key (``members/forum_key.py``): a compact JWS with
protected header ``{"alg": "EdDSA", "kid": <forum kid>, "typ": "cordiale-receipt"}`` and
exactly these claims::

    {"jti": "2f1c...", "member": "acme", "kid": "<the statement's signing key kid>",
     "received_at": 1764400000}

``received_at`` is the floor of the server's receipt time in Unix seconds. Every
statement in a signal snapshot carries its receipt next to its ``jws``. When a key is
revoked as compromised since T (stored in whole seconds, published as the key's
``revoked_at``), every statement received at or after T is withdrawn; an offline
verifier applies the same rule with ``received_at``, and gets the same answer since T
has no fraction.

Receipts are signed once, at ingest, and stored with the statement: the feed serves
tens of thousands of snapshots per second, signing on read would cost far more.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import orjson

from exchange.client import base64url, jws
from exchange.client.statement_format import RECEIPT_TYP
from members.forum_key import ForumKey, forum_key


@lru_cache(maxsize=4)
def _header_segment(kid: str) -> str:
    header = {"alg": jws.ALGORITHM, "kid": kid, "typ": RECEIPT_TYP}
    return base64url.encode(orjson.dumps(header))


def receipt_sign(
    *, jti: str, member: str, kid: str, received_at: datetime, key: ForumKey | None = None
) -> str:
    """The receipt of one statement: one Ed25519 signature, about half the cost of the
    verification ingest already pays per statement."""
    key = key or forum_key()
    claims = {"jti": jti, "member": member, "kid": kid, "received_at": int(received_at.timestamp())}
    signing_input = _header_segment(key.kid) + "." + base64url.encode(orjson.dumps(claims))
    signature = key.private_key.sign(signing_input.encode("ascii"))
    return signing_input + "." + base64url.encode(signature)

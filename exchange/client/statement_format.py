"""
The statement format: the claims a member signs, and the receipt the forum signs back.

Both are compact JWS (``exchange.client.jws`` explains the envelope). This module owns the
vocabulary inside it, which the server's checks (``exchange/services/statements/checks.py``),
the member-side client (``exchange/client/``), the forum's receipts
(``exchange/receipts.py``) and the demo command all read from here.

A statement's payload is a JSON object of claims::

    {"iss": "acme", "iat": 1764400000, "jti": "7", "op": "assert",
     "signal_type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e",
     "labels": ["recruitment"], "tlp": "green", "audience": "forum"}

- ``iss`` the issuing member's slug; ``iat`` when it signed, in Unix seconds;
- ``jti`` the member's own id for the statement, 1 to ``MAX_JTI_LENGTH`` characters;
- ``op`` one of ``OPS``: ``assert`` (the value is this kind of content) or ``retract``
  (withdraw the member's assertion about the value);
- ``signal_type`` and ``value``: a registered signal type and a value already in its
  canonical form (``exchange.client.signal_types``); these four and ``iat`` are ``REQUIRED_CLAIMS``;
- an assertion also carries ``labels`` (a non-empty list of label slugs), ``tlp`` (one of
  ``TLP_VALUES``) and ``audience``: ``"forum"`` (``AUDIENCE_FORUM``) or
  ``"group:<slug>"`` (``group_audience``) for one sharing group; and optionally ``exp``,
  Unix seconds after ``iat`` and at most ``MAX_TIMESTAMP``;
- optional on either op: ``content_type`` (one of ``CONTENT_TYPES``) and ``ref``, the
  member's own reference, at most ``MAX_REF_LENGTH`` characters.

Signed with the key of RFC 8037 appendix A, the example above is the token::

    eyJhbGciOiJFZERTQSIsImtpZCI6ImtQcktfcW14VldhWVZBOXd3QkY2SXVvM3ZWeno3VHhIQ1R3WEJ5Z3JT
    NGsifQ.eyJpc3MiOiJhY21lIiwiaWF0IjoxNzY0NDAwMDAwLCJqdGkiOiI3Iiwib3AiOiJhc3NlcnQiLCJz
    aWduYWxfdHlwZSI6Im1kNSIsInZhbHVlIjoiZDQxZDhjZDk4ZjAwYjIwNGU5ODAwOTk4ZWNmODQyN2UiLCJs
    YWJlbHMiOlsicmVjcnVpdG1lbnQiXSwidGxwIjoiZ3JlZW4iLCJhdWRpZW5jZSI6ImZvcnVtIn0.cl6W1VW5
    jpGc51wY69mZC-rALiqdcpFbtqyrvdvSmgGOkTI7Q6wTKOfo8bBgvqJntZfWv7nXVKBLpsY78IqjAA

(one string without the line breaks). At most ``MAX_BATCH`` statements go in one
submission.

The forum countersigns each accepted statement with its own key: a **receipt**, with
header ``typ`` ``RECEIPT_TYP`` and exactly the claims ``RECEIPT_CLAIMS``::

    {"jti": "7", "member": "acme", "kid": "<the statement's kid>", "received_at": 1764400000}

(``exchange/receipts.py`` says why, ``exchange/client/verify.py`` how it is checked.)

This module imports nothing from Django: the client imports it.
"""

from __future__ import annotations

OP_ASSERT = "assert"
OP_RETRACT = "retract"
OPS = (OP_ASSERT, OP_RETRACT)
REQUIRED_CLAIMS = ("iat", "op", "signal_type", "value")

TLP_VALUES = ("clear", "green", "amber", "amber+strict", "red")

AUDIENCE_FORUM = "forum"
AUDIENCE_GROUP_PREFIX = "group:"

CONTENT_TYPES: tuple[str, ...] = ("photo", "video", "pdf", "url", "text", "file")

MAX_JTI_LENGTH = 64
MAX_REF_LENGTH = 256
# 9999-12-31T23:59:59Z: ``exp`` is stored in a 64-bit column, and no real expiry is later.
MAX_TIMESTAMP = 253_402_300_799
MAX_BATCH = 10_000

RECEIPT_TYP = "cordiale-receipt"

# A key-addition proof (``POST /api/v1/signing-keys`` with ``proof``): a compact JWS signed
# by one of the member's active keys over exactly these claims, ``op`` being OP_ADD_KEY and
# ``kid`` the thumbprint of the key it vouches for. It is not a statement: its ``op`` is
# none of OPS, so it can never be submitted as one. ``iat`` must lie within
# KEY_PROOF_MAX_AGE seconds of the server's clock, either way.
OP_ADD_KEY = "add_key"
KEY_PROOF_CLAIMS = frozenset({"iss", "iat", "jti", "op", "kid"})
KEY_PROOF_MAX_AGE = 600
RECEIPT_CLAIMS = frozenset({"jti", "member", "kid", "received_at"})
# The forum's signed decision on a dispute (exchange/disputes/decisions.py).
DECISION_TYP = "cordiale-decision"
DECISION_CLAIMS = frozenset(
    {
        "iss",
        "iat",
        "jti",
        "dispute",
        "signal_type",
        "value",
        "grounds",
        "decision",
        "labels",
        "rationale",
    }
)
DECISION_VALUES = ("uphold", "overturn", "relabel")


def group_audience(slug: str) -> str:
    """The ``audience`` claim for the sharing group ``slug``."""
    return AUDIENCE_GROUP_PREFIX + slug


def audience_group_slug(audience: str) -> str | None:
    """The group slug an ``audience`` claim names, or None if it names no group."""
    if audience.startswith(AUDIENCE_GROUP_PREFIX):
        return audience[len(AUDIENCE_GROUP_PREFIX) :]
    return None

"""The forum's own entries on the known-benign list.

Members put values on the list with ordinary statements whose labels are of kind
``benign`` (``exchange/services/statements``). The forum does the same through a member
account of its own (say ``forum-staff``, created with ``create_member`` and given a key
of its own with ``cordiale keygen`` and ``register_signing_key``), so its entries are
signed statements like any other, verifiable offline against that member's JWKS, and
retracted, superseded and made visible by the same rules.

The forum's key (``members/forum_key.py``) never signs them: it vouches for what only
the forum knows (receipts, decisions, audit checkpoints), and a statement signed with it
would make the key a member key. Registration refuses the forum's key for any member
already; ``benign_statement_submit`` refuses it up front with a clear message.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client.statement_format import OP_ASSERT, OP_RETRACT
from exchange.client.statements import StatementError, build_statement, key_id, sign_statement
from exchange.models import Label
from exchange.services.statements import statement_submit
from forum.errors import DomainError
from members.forum_key import forum_public_keys
from members.models import Member


def benign_statement_submit(
    *,
    member: Member,
    private_key: Ed25519PrivateKey,
    signal_type: str,
    value: str,
    labels: list[str],
    tlp: str = "clear",
    audience: str = "forum",
    ref: str | None = None,
    retract: bool = False,
) -> dict[str, Any]:
    """Sign an assertion of ``value`` as known benign (or its retraction) as ``member``
    and submit it; returns the item's submission result with the statement's ``jws``."""
    if key_id(private_key) in forum_public_keys():
        raise DomainError(
            "That is the forum's own key: it signs receipts and decisions, never statements. "
            "Sign with the key of the forum's member account.",
            code="invalid_argument",
        )
    if not retract:
        _check_benign(labels)
    try:
        claims = build_statement(
            issuer=member.slug,
            signal_type=signal_type,
            value=value,
            op=OP_RETRACT if retract else OP_ASSERT,
            labels=labels,
            tlp=tlp,
            audience=audience,
            ref=ref,
        )
    except StatementError as exc:
        raise DomainError(exc.detail, code="invalid_argument") from exc
    token = sign_statement(claims, private_key)
    result: dict[str, Any] = statement_submit(member=member, tokens=[token])["results"][0]
    if result["status"] == "rejected":
        raise DomainError(result["detail"], code=result["code"])
    return {**result, "jws": token}


def _check_benign(labels: list[str]) -> None:
    """Only labels of kind ``benign``: this puts values on the known-benign list and
    nothing else (a TVEC assertion goes through ``cordiale submit`` like a member's)."""
    benign = set(Label.objects.filter(kind=Label.Kind.BENIGN).values_list("slug", flat=True))
    others = [label for label in labels if label not in benign]
    if not labels or others:
        raise DomainError(
            f"Not labels of kind 'benign': {', '.join(others) or '(none given)'}; "
            f"choose from {', '.join(sorted(benign))}.",
            code="invalid_argument",
        )

"""
The member-side library of the Cordiale forum: an HTTP client for every endpoint of the
wire contract, statement building and signing, offline verification and a local replica.

Nothing here imports Django, so members can use it (and the ``cordiale`` command built on
it) without the server's settings::

    from exchange.client import CordialeClient, build_statement, load_private_key, sign_statement

    key = load_private_key("acme.pem")
    claims = build_statement(
        issuer="acme", signal_type="md5", value="D41D8CD98F00B204E9800998ECF8427E",
        op="assert", labels=["recruitment"], tlp="green", audience="forum",
    )
    with CordialeClient("https://forum.example", api_key) as client:
        client.submit([sign_statement(claims, key)])
"""

from exchange.client.api import CordialeClient, CordialeError
from exchange.client.replica import Replica, SyncResult
from exchange.client.statements import (
    StatementError,
    build_statement,
    generate_key,
    key_id,
    load_private_key,
    sign_statement,
)
from exchange.client.verify import (
    KeyReport,
    VerificationResult,
    check_jwks,
    index_jwks,
    verify_snapshot,
    verify_statement,
)

__all__ = [
    "CordialeClient",
    "CordialeError",
    "KeyReport",
    "Replica",
    "StatementError",
    "SyncResult",
    "VerificationResult",
    "build_statement",
    "check_jwks",
    "generate_key",
    "index_jwks",
    "key_id",
    "load_private_key",
    "sign_statement",
    "verify_snapshot",
    "verify_statement",
]

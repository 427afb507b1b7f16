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

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        DecisionInvalid,
        KeyReport,
        VerificationResult,
        check_jwks,
        index_jwks,
        verify_decision,
        verify_snapshot,
        verify_statement,
    )

# The names above load on first use (PEP 562): the server imports the wire-format modules
# of this package (jws, signal_types, statement_format, base64url, json_input), and that
# must not drag in the HTTP client or the replica (tests/exchange/test_feed_imports.py).
_EXPORTS = {
    "CordialeClient": "api",
    "CordialeError": "api",
    "Replica": "replica",
    "SyncResult": "replica",
    "StatementError": "statements",
    "build_statement": "statements",
    "generate_key": "statements",
    "key_id": "statements",
    "load_private_key": "statements",
    "sign_statement": "statements",
    "KeyReport": "verify",
    "VerificationResult": "verify",
    "check_jwks": "verify",
    "index_jwks": "verify",
    "DecisionInvalid": "verify",
    "verify_decision": "verify",
    "verify_snapshot": "verify",
    "verify_statement": "verify",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CordialeClient",
    "CordialeError",
    "DecisionInvalid",
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
    "verify_decision",
    "verify_snapshot",
    "verify_statement",
]

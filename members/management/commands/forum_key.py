from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import CommandParser

from exchange.client import base64url
from members.forum_key import forum_key, forum_key_file_ensure, private_key_load

from ._base import CommandFailure, JsonCommand


class Command(JsonCommand):
    help = (
        "Print the forum key's kid and public x; with --generate PATH, write a new Ed25519 "
        "private key there (PEM, mode 0600) and print its kid and x instead; with "
        "--generate -, print a new key's private d too (for CORDIALE_FORUM_KEY)."
    )
    # --generate is how a deployment gets its first key: it must run without one.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--generate", metavar="PATH", help="Where to write a new key.")

    def run(self, **options: Any) -> dict[str, Any]:
        if options["generate"] == "-":
            # For secret stores that take values, not files (CORDIALE_FORUM_KEY).
            private = Ed25519PrivateKey.generate()
            raw = private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            key = private_key_load(base64url.encode(raw), source="--generate -")
            return {"kid": key.kid, "x": key.x, "d": base64url.encode(raw)}
        if options["generate"]:
            path = Path(options["generate"])
            if path.exists():
                raise CommandFailure(
                    f"{path} exists; a forum key is never overwritten.", code="conflict"
                )
            forum_key_file_ensure(path)
            key = private_key_load(path.read_text(), source=str(path))
        else:
            key = forum_key()
        return {"kid": key.kid, "x": key.x}

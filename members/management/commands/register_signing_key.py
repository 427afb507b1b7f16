from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.services import signing_key_register

from ._base import CommandFailure, KeyArgumentCommand, get_member


class Command(KeyArgumentCommand):
    help = (
        "Register an Ed25519 public key for a member, active at once: a PEM or JWK file "
        "(what `cordiale keygen` writes next to the private key), a JWK as JSON text, or the "
        "base64url x."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "public_key",
            help="path of a PEM public key or a public JWK file, a JWK as JSON, or the base64url x",
        )

    def run(self, **options: Any) -> dict[str, Any]:
        member = get_member(options["slug"])
        text = options["public_key"]
        path = Path(text)
        if "-----BEGIN" not in text and not text.lstrip().startswith("{") and len(text) != 43:
            if not path.is_file():
                raise CommandFailure(
                    f"{text!r} is neither a PEM or JWK file, a JWK, nor a base64url key.",
                    code="invalid_argument",
                )
            text = path.read_text()
        key = signing_key_register(member=member, public_key=text, actor=COMMAND_ACTOR)
        return {"member": member.slug, "kid": key.kid}

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.services import signing_key_register

from ._base import CommandFailure, KeyArgumentCommand, get_member


class Command(KeyArgumentCommand):
    help = "Register an Ed25519 public key (PEM file path or base64url x) for a member."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("public_key", help="path of a PEM public key, or the base64url x")

    def run(self, **options: Any) -> dict[str, Any]:
        member = get_member(options["slug"])
        text = options["public_key"]
        path = Path(text)
        if "-----BEGIN" not in text and len(text) != 43:
            if not path.is_file():
                raise CommandFailure(
                    f"{text!r} is neither a PEM file nor a base64url key.", code="invalid_argument"
                )
            text = path.read_text()
        key = signing_key_register(member=member, public_key=text, actor=COMMAND_ACTOR)
        return {"member": member.slug, "kid": key.kid}

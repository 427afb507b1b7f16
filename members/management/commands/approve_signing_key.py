from typing import Any

from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.models import SigningKey
from members.services import signing_key_approve

from ._base import CommandFailure, KeyArgumentCommand


class Command(KeyArgumentCommand):
    help = (
        "Approve a signing key that a member registered without a proof (status pending). "
        "Compare the kid with the one the member gives you out of band first: it is the "
        "key's RFC 7638 thumbprint, so equal kids mean equal keys."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kid", help="the pending key's kid (thumbprint)")

    def run(self, **options: Any) -> dict[str, Any]:
        key = SigningKey.objects.filter(kid=options["kid"]).first()
        if key is None:
            raise CommandFailure(f"No signing key {options['kid']!r}.", code="not_found")
        key = signing_key_approve(key=key, actor=COMMAND_ACTOR)
        return {"kid": key.kid, "status": key.status}

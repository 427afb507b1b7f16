from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.models import SigningKey
from members.services import signing_key_revoke

from ._base import CommandFailure, KeyArgumentCommand


def parse_rfc3339(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandFailure(
            f"{text!r} is not an RFC 3339 time.", code="invalid_argument"
        ) from None
    if at.tzinfo is None:
        raise CommandFailure(
            f"{text!r} has no time zone; add Z or an offset.", code="invalid_argument"
        )
    return at.astimezone(UTC)


class Command(KeyArgumentCommand):
    help = "Revoke a signing key; with --compromised-since, withdraw what it signed since then."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kid")
        parser.add_argument("--compromised-since", help="RFC 3339 time")

    def run(self, **options: Any) -> dict[str, Any]:
        key = SigningKey.objects.filter(kid=options["kid"]).first()
        if key is None:
            raise CommandFailure(f"No signing key {options['kid']!r}.", code="not_found")
        since = options["compromised_since"]
        key = signing_key_revoke(
            key=key,
            compromised_since=parse_rfc3339(since) if since else None,
            actor=COMMAND_ACTOR,
        )
        return {"kid": key.kid, "status": key.status}

from typing import Any

from django.core.management.base import CommandParser

from exchange.client.statements import load_private_key
from exchange.services.benign import benign_statement_submit
from members.management.commands._base import CommandFailure, JsonCommand, get_member


class Command(JsonCommand):
    help = (
        "Put a value on the known-benign list as the forum: sign, with the key of the "
        "forum's member account (never the forum's own key), an assertion with labels of "
        "kind 'benign', and submit it. --retract takes it off again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("signal_type")
        parser.add_argument("value", help="normalised before signing, as `cordiale submit` does")
        parser.add_argument(
            "--labels", default="", help="benign label slugs, comma-separated (news-reporting,...)"
        )
        parser.add_argument("--member", required=True, help="slug of the forum's member account")
        parser.add_argument(
            "--signing-key", required=True, help="PEM private key file of that member"
        )
        parser.add_argument("--tlp", default="clear")
        parser.add_argument("--audience", default="forum", help="forum or group:<slug>")
        parser.add_argument("--ref", default=None, help="the forum's own reference (a ticket)")
        parser.add_argument("--retract", action="store_true", help="retract the assertion")

    def run(self, **options: Any) -> dict[str, Any]:
        member = get_member(options["member"])
        try:
            private_key = load_private_key(options["signing_key"])
        except (OSError, ValueError) as exc:
            raise CommandFailure(
                f"Cannot read the signing key: {exc}", code="invalid_argument"
            ) from exc
        return benign_statement_submit(
            member=member,
            private_key=private_key,
            signal_type=options["signal_type"],
            value=options["value"],
            labels=[s.strip() for s in options["labels"].split(",") if s.strip()],
            tlp=options["tlp"],
            audience=options["audience"],
            ref=options["ref"],
            retract=options["retract"],
        )

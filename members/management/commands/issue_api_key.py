from typing import Any

from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.services import api_key_issue

from ._base import JsonCommand, get_member


class Command(JsonCommand):
    help = "Issue an API key for a member (printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--scopes", help="comma-separated: read,submit,feedback,manage")
        parser.add_argument("--name", default="")

    def run(self, **options: Any) -> dict[str, Any]:
        member = get_member(options["slug"])
        scopes = None
        if options["scopes"] is not None:
            scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        key, secret = api_key_issue(
            member=member, scopes=scopes, name=options["name"], actor=COMMAND_ACTOR
        )
        return {"member": member.slug, "api_key": secret, "scopes": key.scopes}

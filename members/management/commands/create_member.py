from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from forum.actors import COMMAND_ACTOR
from members.models import Member
from members.services import api_key_issue, member_create

from ._base import JsonCommand


class Command(JsonCommand):
    help = "Create an active member with an all-scope API key (printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--contact-email", default="")

    def run(self, **options: Any) -> dict[str, Any]:
        with transaction.atomic():
            member = member_create(
                slug=options["slug"],
                name=options["name"],
                contact_email=options["contact_email"],
                status=Member.Status.ACTIVE,
                actor=COMMAND_ACTOR,
            )
            _, secret = api_key_issue(member=member, actor=COMMAND_ACTOR)
        return {"member": member.slug, "api_key": secret}

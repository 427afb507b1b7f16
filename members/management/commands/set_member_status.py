from typing import Any

from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.models import Member
from members.services import member_set_status

from ._base import JsonCommand, get_member


class Command(JsonCommand):
    help = "Move a member through its lifecycle (active, suspended, expelled)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "status",
            choices=[Member.Status.ACTIVE, Member.Status.SUSPENDED, Member.Status.EXPELLED],
        )

    def run(self, **options: Any) -> dict[str, Any]:
        member = member_set_status(
            member=get_member(options["slug"]), status=options["status"], actor=COMMAND_ACTOR
        )
        return {"member": member.slug, "status": member.status}

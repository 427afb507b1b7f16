from typing import Any

from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.services import sharing_group_create

from ._base import JsonCommand, member_list


class Command(JsonCommand):
    help = "Create a sharing group with its members."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--members", required=True, help="comma-separated member slugs")
        parser.add_argument("--name", default="")

    def run(self, **options: Any) -> dict[str, Any]:
        members = member_list(options["members"])
        group = sharing_group_create(
            slug=options["slug"], name=options["name"], members=members, actor=COMMAND_ACTOR
        )
        return {"group": group.slug, "members": sorted(m.slug for m in members)}

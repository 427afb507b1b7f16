from typing import Any

from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.models import SharingGroup
from members.services import sharing_group_set_members

from ._base import CommandFailure, JsonCommand, member_list


class Command(JsonCommand):
    help = "Replace a sharing group's member list."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--members", required=True, help="comma-separated member slugs")

    def run(self, **options: Any) -> dict[str, Any]:
        group = SharingGroup.objects.filter(slug=options["slug"]).first()
        if group is None:
            raise CommandFailure(f"No sharing group {options['slug']!r}.", code="not_found")
        members = member_list(options["members"])
        sharing_group_set_members(group=group, members=members, actor=COMMAND_ACTOR)
        return {"group": group.slug, "members": sorted(m.slug for m in members)}

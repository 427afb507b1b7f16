"""Shared shape of the administration commands: act through a service, print one JSON line."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from forum.errors import DomainError
from members.models import Member

ACTOR = "cli"


class JsonCommand(BaseCommand):
    def emit(self, payload: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(payload, default=str))

    def run(self, **options: Any) -> dict[str, Any]:
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            payload = self.run(**options)
        except DomainError as exc:
            raise CommandError(f"{exc.detail} ({exc.code})") from exc
        self.emit(payload)


def get_member(slug: str) -> Member:
    try:
        return Member.objects.get(slug=slug)
    except Member.DoesNotExist:
        raise CommandError(f"No member {slug!r}.") from None


def member_list(value: str) -> list[Member]:
    slugs = [s.strip() for s in value.split(",") if s.strip()]
    found = {m.slug: m for m in Member.objects.filter(slug__in=slugs)}
    missing = [s for s in slugs if s not in found]
    if missing:
        raise CommandError(f"No member(s): {', '.join(missing)}.")
    return [found[s] for s in slugs]

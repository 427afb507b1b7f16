"""Shared shape of the administration commands: act through a service, print one JSON line."""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from forum.errors import DomainError
from members.models import Member


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


_B64URL_KEY = re.compile(r"^-[A-Za-z0-9_-]{42}$")


class KeyArgumentCommand(JsonCommand):
    """A command whose positional argument may be a base64url key or kid.

    Those are 43 characters of ``[A-Za-z0-9_-]`` and one in 64 starts with ``-``, which
    argparse would take for an option; such a token is passed after ``--``.
    """

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_args = parser.parse_args

        def parse(args: Any = None, namespace: Any = None) -> Any:
            if args is not None and "--" not in args:
                keys = [a for a in args if isinstance(a, str) and _B64URL_KEY.match(a)]
                rest = [a for a in args if a not in keys]
                args = [*rest, "--", *keys] if keys else rest
            return parse_args(args, namespace)

        parser.parse_args = parse  # type: ignore[method-assign]
        return parser

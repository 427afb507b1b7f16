"""Shared shape of the administration commands: act through a service, print one JSON line.

Every command here is a tool for scripts as much as for people (README, "Administration
from the command line"): what it prints for scripts goes to stdout and ends with one
JSON line; logs and messages for people go to stderr (``manage.py`` sends the logs
there). A failure ends stdout with ``{"error": {"code": ..., "detail": ...}}`` and exits
1, a usage error (bad arguments) or incomplete settings exit 2::

    $ python manage.py issue_api_key nobody
    {"error": {"code": "not_found", "detail": "No member 'nobody'."}}
    $ echo $?
    1

Called through ``call_command`` (tests, other code), a command raises ``CommandError``
as Django's own do, and prints nothing of the kind.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from typing import Any, NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError

from forum.errors import DomainError
from members.models import Member

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandFailure(CommandError):
    """A command error with a stable ``code`` for the JSON error line."""

    def __init__(self, detail: str, *, code: str = "failed") -> None:
        super().__init__(detail)
        self.code = code


def failure_code(exc: CommandError) -> str:
    if isinstance(exc, CommandFailure):
        return exc.code
    if isinstance(exc, SystemCheckError):
        return "system_check_failed"
    return "failed"


class ToolCommand(BaseCommand):
    """A command that fails like a tool when run from the command line (module docstring)."""

    def emit(self, payload: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(payload, default=str))

    def emit_error(self, code: str, detail: str) -> None:
        self.emit({"error": {"code": code, "detail": detail}})

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if parser.called_from_command_line:
            usage_error = parser.error

            def error(message: str) -> NoReturn:
                self.emit_error("usage", message)
                usage_error(message)  # argparse: usage on stderr, exit 2
                raise AssertionError("unreachable")

            parser.error = error  # type: ignore[method-assign]
        return parser

    def execute(self, *args: Any, **options: Any) -> Any:
        if not getattr(self, "_called_from_command_line", False):
            return super().execute(*args, **options)
        try:
            return super().execute(*args, **options)
        except CommandError as exc:
            self.emit_error(failure_code(exc), str(exc))
            raise  # Django writes it on stderr and exits with its return code (1)
        except DomainError as exc:
            self.emit_error(exc.code, exc.detail)
            self.stderr.write(f"{exc.detail} ({exc.code})")
            sys.exit(EXIT_FAILURE)
        except ImproperlyConfigured as exc:
            self.emit_error("improperly_configured", str(exc))
            self.stderr.write(f"Settings are incomplete: {exc}")
            sys.exit(EXIT_USAGE)
        except Exception as exc:
            if options.get("traceback"):
                raise
            self.stderr.write(traceback.format_exc())
            self.emit_error("internal_error", f"{type(exc).__name__}: {exc}")
            sys.exit(EXIT_FAILURE)


class JsonCommand(ToolCommand):
    def run(self, **options: Any) -> dict[str, Any]:
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            payload = self.run(**options)
        except DomainError as exc:
            raise CommandFailure(f"{exc.detail} ({exc.code})", code=exc.code) from exc
        self.emit(payload)


def get_member(slug: str) -> Member:
    try:
        return Member.objects.get(slug=slug)
    except Member.DoesNotExist:
        raise CommandFailure(f"No member {slug!r}.", code="not_found") from None


def member_list(value: str) -> list[Member]:
    slugs = [s.strip() for s in value.split(",") if s.strip()]
    found = {m.slug: m for m in Member.objects.filter(slug__in=slugs)}
    missing = [s for s in slugs if s not in found]
    if missing:
        raise CommandFailure(f"No member(s): {', '.join(missing)}.", code="not_found")
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

#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

A tool for scripts: logs go to stderr, so that stdout holds only what a command prints
(an audit archive, its JSON result line). Settings that are missing or wrong are
explained in one line, with ``{"error": ...}`` on stdout and exit status 2, rather than
a traceback.
"""

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "forum.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from forum.logs import log_to_stderr

    log_to_stderr()
    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        if settings.configured:
            raise  # the settings loaded; something else is wrong: keep the traceback
        print(json.dumps({"error": {"code": "improperly_configured", "detail": str(exc)}}))
        print(
            f'manage.py: {exc} Settings come from environment variables (README, "Configuration").',
            file=sys.stderr,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()

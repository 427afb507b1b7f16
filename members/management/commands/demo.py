"""``python manage.py demo``: a working forum on this machine in one command.

Migrates the database, creates (or reuses) an admin user, two active demo members with
fresh all-scope API keys and an Ed25519 signing key each, a sharing group and a few
signed statements, prints how to use them (the admin, the API, a ``cordiale`` session
to copy into a shell), then serves on 127.0.0.1. Running it again reuses everything and
issues new API keys. Debug mode only: it prints secrets.

The served process accepts webhook receivers on this machine (``http://127.0.0.1:...``),
which a forum refuses unless ``CORDIALE_WEBHOOK_ALLOW_PRIVATE``: the demo turns that on
for itself alone, so that a member can try webhooks with a local receiver. A port that
is taken fails before anything is set up or printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser

from exchange.client import jws
from exchange.client.statement_format import AUDIENCE_FORUM, OP_ASSERT, group_audience
from exchange.services.statements import statement_submit
from forum.actors import DEMO_ACTOR
from members.models import Member, SharingGroup, SigningKey
from members.services import (
    api_key_issue,
    member_create,
    member_set_status,
    sharing_group_create,
    signing_key_register,
)

from ._base import CommandFailure, ToolCommand

ADMIN_USERNAME = "admin"
DEMO_MEMBERS = {"demo-acme": "Acme Video (demo)", "demo-globex": "Globex Social (demo)"}
DEMO_GROUP = "demo-group"
# The rows `cordiale submit` sends in the printed session: labels the demo forum has.
SAMPLE_HEADER = "signal_type,value,labels,tlp,audience"


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _demo_value(signal_type: str, seed: str) -> str:
    digest = hashlib.sha256(f"cordiale-demo-{signal_type}-{seed}".encode()).hexdigest()
    return digest[:32] if signal_type == "md5" else digest


def _port_free(port: int) -> bool:
    """Whether runserver could listen on 127.0.0.1:``port`` (it reuses TIME_WAIT ports too)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Command(ToolCommand):
    help = "Set up a demo forum (admin, two members with keys, statements) and serve it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="set up, print, and exit")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "The demo prints passwords and keys: run it with DJANGO_DEBUG=true, "
                "never against a production database."
            )
        if not options["no_serve"] and not _port_free(options["port"]):
            raise CommandFailure(
                f"Port {options['port']} on 127.0.0.1 is in use (another demo?); stop "
                "that server or choose another port with --port N.",
                code="port_in_use",
            )
        demo_dir = Path(settings.VAR_DIR) / "demo"
        demo_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        call_command("migrate", interactive=False, verbosity=0)

        password = self._admin(demo_dir)
        members = {slug: self._member(slug, name) for slug, name in DEMO_MEMBERS.items()}
        keys = {slug: self._signing_key(m, demo_dir) for slug, m in members.items()}
        self._group(list(members.values()))
        api_keys = {
            slug: api_key_issue(member=m, name="demo", actor=DEMO_ACTOR)[1]
            for slug, m in members.items()
        }
        submitted = {slug: self._statements(members[slug], keys[slug]) for slug in members}

        sample = self._sample_file(demo_dir)

        url = f"http://127.0.0.1:{options['port']}/"
        self._print_summary(url, password, api_keys, demo_dir, submitted, sample)
        if not options["no_serve"]:
            # Demo only, and for this process only: receivers on this machine may get
            # webhooks (forum/settings.py reads the variable once; targets read it lazily).
            allow_private = settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE
            settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
            try:
                call_command("runserver", f"127.0.0.1:{options['port']}", use_reloader=False)
            finally:
                settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = allow_private

    def _admin(self, demo_dir: Path) -> str:
        """The admin user's password: reused while it still works, else a new one."""
        user_model = get_user_model()
        user = user_model.objects.filter(username=ADMIN_USERNAME).first()
        password_file = demo_dir / "admin-password"
        if user is not None and password_file.exists():
            password = password_file.read_text().strip()
            if user.check_password(password):
                return password
        password = secrets.token_urlsafe(12)
        if user is None:
            user_model.objects.create_superuser(
                username=ADMIN_USERNAME, email="admin@cordiale.invalid", password=password
            )
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        password_file.unlink(missing_ok=True)
        _write_private(password_file, password.encode())
        return password

    def _member(self, slug: str, name: str) -> Member:
        member = Member.objects.filter(slug=slug).first()
        if member is None:
            return member_create(
                slug=slug, name=name, status=Member.Status.ACTIVE, actor=DEMO_ACTOR
            )
        if member.status == Member.Status.EXPELLED:
            raise CommandError(f"Demo member {slug} was expelled; use a fresh database.")
        return member_set_status(member=member, status=Member.Status.ACTIVE, actor=DEMO_ACTOR)

    def _signing_key(self, member: Member, demo_dir: Path) -> tuple[Ed25519PrivateKey, str]:
        path = demo_dir / f"{member.slug}.pem"
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise CommandError(f"{path} is not an Ed25519 private key.")
            private = loaded
        else:
            private = Ed25519PrivateKey.generate()
            _write_private(
                path,
                private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        x = jws.public_key_x(private.public_key())
        kid = jws.jwk_thumbprint(x)
        existing = SigningKey.objects.filter(kid=kid).first()
        if existing is None:
            signing_key_register(member=member, public_key=x, actor=DEMO_ACTOR)
        elif existing.member_id != member.pk or existing.status != SigningKey.Status.ACTIVE:
            raise CommandError(f"{path} holds key {kid}, which is not an active key of {member}.")
        return private, kid

    def _group(self, members: list[Member]) -> None:
        if not SharingGroup.objects.filter(slug=DEMO_GROUP).exists():
            sharing_group_create(
                slug=DEMO_GROUP, name="Demo sharing group", members=members, actor=DEMO_ACTOR
            )

    def _statements(self, member: Member, key: tuple[Ed25519PrivateKey, str]) -> dict[str, Any]:
        """Sign a few statements as the member would, and submit them through the service."""
        private, kid = key
        now = int(time.time())
        rows = [
            ("pdq", ["recruitment"], AUDIENCE_FORUM),
            ("md5", ["glorification", "branded-publication"], AUDIENCE_FORUM),
            ("sha256", ["instruction"], group_audience(DEMO_GROUP)),
        ]
        tokens = []
        for signal_type, labels, audience in rows:
            claims = {
                "iss": member.slug,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "op": OP_ASSERT,
                "signal_type": signal_type,
                # Each member states its own signals, so the two feeds differ.
                "value": _demo_value(signal_type, member.slug),
                "labels": labels,
                "tlp": "green",
                "audience": audience,
                "content_type": "video" if signal_type != "md5" else "file",
            }
            tokens.append(jws.sign_compact(claims, private, kid))
        result = statement_submit(member=member, tokens=tokens)
        rejected = [r for r in result["results"] if r["status"] == "rejected"]
        if rejected:
            raise CommandError(f"Demo statements were rejected: {rejected}")
        return {k: result[k] for k in ("accepted", "duplicate", "stale", "rejected")}

    def _sample_file(self, demo_dir: Path) -> Path:
        """A CSV for ``cordiale submit``: fresh values on each run, so they are accepted."""
        seed = secrets.token_hex(8)
        rows = [
            f"md5,{_demo_value('md5', seed)},recruitment,green,forum",
            f"sha256,{_demo_value('sha256', seed)},glorification|instruction,amber,forum",
        ]
        path = demo_dir / "sample.csv"
        path.write_text("\n".join([SAMPLE_HEADER, *rows]) + "\n")
        return path

    def _print_summary(
        self,
        url: str,
        password: str,
        api_keys: dict[str, str],
        demo_dir: Path,
        submitted: dict[str, dict[str, Any]],
        sample: Path,
    ) -> None:
        first = next(iter(api_keys))
        lines = [
            "",
            "Cordiale demo forum is ready.",
            "",
            f"  URL:          {url}",
            f"  Admin:        {url}admin/  user {ADMIN_USERNAME!r}  password {password!r}",
            f"  API docs:     {url}api/v1/docs/",
            "",
        ]
        for slug, secret in api_keys.items():
            lines += [
                f"  Member {slug}:",
                f"    API key:      {secret}",
                f"    signing key:  {demo_dir / (slug + '.pem')}  (private, mode 0600)",
            ]
        lines += [
            "",
            "  Try:",
            f'    curl -H "Authorization: Bearer {api_keys[first]}" {url}api/v1/me',
            f'    curl -H "Authorization: Bearer {api_keys[first]}" {url}api/v1/changes',
            "",
            f"  The cordiale command as {first} (in another shell, from this checkout):",
            *self._cli_session(url, first, api_keys[first], demo_dir, sample),
            "",
            "  Webhooks: receivers on this machine (http://127.0.0.1:PORT/...) are allowed",
            "  in this demo only (CORDIALE_WEBHOOK_ALLOW_PRIVATE for this process); try",
            "    .venv/bin/cordiale webhooks create http://127.0.0.1:9000/hook",
            "",
        ]
        self.stdout.write("\n".join(lines))
        summary = {
            "url": url,
            "sample_file": str(sample),
            "admin": {"username": ADMIN_USERNAME, "password": password},
            "members": {
                slug: {
                    "api_key": secret,
                    "signing_key": str(demo_dir / f"{slug}.pem"),
                    "statements": submitted[slug],
                }
                for slug, secret in api_keys.items()
            },
        }
        self.stdout.write(json.dumps(summary))

    def _cli_session(
        self, url: str, slug: str, api_key: str, demo_dir: Path, sample: Path
    ) -> list[str]:
        return [
            f"    export CORDIALE_URL={url.rstrip('/')}",
            f"    export CORDIALE_API_KEY={api_key}",
            f"    export CORDIALE_SIGNING_KEY={demo_dir / (slug + '.pem')}",
            f"    .venv/bin/cordiale sync --state {demo_dir / (slug + '-replica')}",
            f"    .venv/bin/cordiale submit {sample}",
            f"    .venv/bin/cordiale verify --state {demo_dir / (slug + '-replica')}",
        ]

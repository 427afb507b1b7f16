"""A new member's engineer, from nothing to syncing, following only the README and docs/
(docs/integration.md, docs/client.md): in a fresh copy of the repository the demo runs as
the README's Quick start says; the forum's admin creates the member and approves its key
with management commands; the member does everything else with the ``cordiale`` command,
each step a real process against the served demo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exchange.client.hashing import file_hashes
from tests.support.processes import free_port, http_get, wait_for
from tests.support.receivers import Receiver

ROOT = Path(__file__).resolve().parents[2]
HEADER = "signal_type,value,labels,tlp,audience\n"


def fresh_copy(target: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked and new, not ignored):
    no var/, no state of an earlier demo."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            destination = target / name.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


class Machine:
    """A shell on the member's (or the admin's) machine in the fresh copy."""

    def __init__(self, checkout: Path, home: Path) -> None:
        self.checkout, self.home = checkout, home
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "CORDIALE_", "DATABASE_URL", "REDIS_URL"))
        }
        self.env["PYTHONPATH"] = str(checkout)

    def run(self, *args: str, extra: dict[str, str] | None = None) -> tuple[int, Any, str]:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=self.home,
            env={**self.env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        lines = done.stdout.strip().splitlines()
        return done.returncode, json.loads(lines[-1]) if lines else None, done.stderr

    def manage(self, *args: str) -> Any:
        """``DJANGO_DEBUG=true python manage.py ...`` in the checkout, as the README says."""
        code, last, err = self.run(
            str(self.checkout / "manage.py"), *args, extra={"DJANGO_DEBUG": "true"}
        )
        assert code == 0, err
        return last

    def cordiale(self, *args: str, **env: str) -> tuple[int, Any, str]:
        return self.run("-m", "exchange.client", *args, extra=env)


@pytest.mark.slow
def test_a_new_member_goes_from_nothing_to_syncing(tmp_path: Path) -> None:
    """Demo up; admin: create_member; member: keygen, keys register (pending); admin:
    approve_signing_key; member: submit a CSV, sync, verify, match an image by md5 and
    PDQ, create a webhook and receive a delivery, rotate the key, submit again."""
    pytest.importorskip("pdqhash")
    checkout = fresh_copy(tmp_path / "cordiale")
    home = tmp_path / "home"
    home.mkdir()
    shell = Machine(checkout, home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port)],
        cwd=checkout,
        env={**shell.env, "DJANGO_DEBUG": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    receiver = Receiver()
    try:
        wait_for(lambda: _answers(url), 120, "the demo to serve")
        assert http_get(url + "/")[0] == 200  # the landing page the demo points to

        api_key = shell.manage("create_member", "newco", "--name", "NewCo")["api_key"]
        me = {"CORDIALE_URL": url, "CORDIALE_API_KEY": api_key}
        me["CORDIALE_SIGNING_KEY"] = str(home / "newco.pem")

        code, keygen, err = shell.cordiale("keygen", "--out", "newco.pem")
        assert code == 0, err
        assert (home / "newco.pub.jwk").exists()
        code, registered, err = shell.cordiale("keys", "register", **me)
        assert code == 0 and registered["status"] == "pending", err
        assert shell.manage("approve_signing_key", keygen["kid"])["status"] == "active"

        image = home / "photo.png"
        _draw(image)
        hashes = dict(file_hashes(image).hashes)
        data = home / "hashes.csv"
        data.write_text(
            HEADER
            + f"md5,{hashes['md5']},recruitment,green,forum\n"
            + f"pdq,{hashes['pdq']},recruitment,green,forum\n"
        )
        code, submitted, err = shell.cordiale("submit", "hashes.csv", **me)
        assert code == 0 and submitted["accepted"] == 2, err

        code, synced, err = shell.cordiale("sync", "--state", "state", **me)
        assert code == 0 and synced["signals"] >= 2, err
        code, verified, err = shell.cordiale("verify", "--state", "state")
        assert code == 0 and verified["failed"] == 0 and verified["verified"] >= 2, err

        code, matched, err = shell.cordiale("match", "photo.png", **me)
        assert code == 0, err
        assert matched == {"queries": 3, "matched": 2}  # md5 and PDQ; sha256 not shared

        code, hook, err = shell.cordiale("webhooks", "create", receiver.url("/hooks"), **me)
        assert code == 0 and hook["secret"].startswith("whsec_"), err
        late = home / "late.csv"
        late.write_text(HEADER + "md5,0cc175b9c0f1b6a831c399e269772661,recruitment,green,forum\n")
        assert shell.cordiale("submit", "late.csv", **me)[1]["accepted"] == 1
        wait_for(
            lambda: any(b"0cc175b9c0f1b6a831c399e269772661" in r.body for r in receiver.requests),
            60,
            "the webhook delivery of the new statement",
        )

        code, rotated, err = shell.cordiale(
            "keys", "rotate", "--new-key", "newco-2.pem", "--retire-old", **me
        )
        assert code == 0 and rotated["status"] == "active", err
        me["CORDIALE_SIGNING_KEY"] = str(home / "newco-2.pem")
        again = home / "again.csv"
        again.write_text(HEADER + "md5,92eb5ffee6ae2fec3ad71c777531578f,recruitment,green,forum\n")
        code, resubmitted, err = shell.cordiale("submit", "again.csv", **me)
        assert code == 0 and resubmitted["accepted"] == 1, err
    finally:
        receiver.close()
        demo.terminate()
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            demo.kill()


def _answers(url: str) -> bool:
    try:
        return http_get(url + "/healthz")[0] == 200
    except OSError:
        time.sleep(0.2)
        return False


def _draw(path: Path) -> None:
    from PIL import Image

    image = Image.new("RGB", (96, 96))
    for x in range(96):
        for y in range(96):
            image.putpixel((x, y), ((x * 7) % 256, (y * 5) % 256, ((x ^ y) * 3) % 256))
    image.save(path)

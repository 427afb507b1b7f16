"""``deploy/compose.yaml`` passes every documented setting to the Cordiale containers:
they read ``deploy/.env`` (``env_file``), and ``deploy/.env.example`` lists every setting
of the README's "Configuration" table, so an operator finds each one there."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
APP_IMAGE = "cordiale"
# Read by the deploy/ scripts and images rather than by the settings (deploy/README.md).
DEPLOY_KNOBS = {"WEB_CONCURRENCY", "CELERY_CONCURRENCY", "POSTGRES_PASSWORD"}
# Compose builds these for its own postgres and redis services.
BUILT_BY_COMPOSE = {"DATABASE_URL", "REDIS_URL"}


def readme_settings() -> set[str]:
    """The variables of the README's "Configuration" table."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", table, re.M))


def example_keys() -> tuple[set[str], set[str]]:
    """The keys ``deploy/.env.example`` sets, and those it shows commented out."""
    text = (DEPLOY / ".env.example").read_text()
    active = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M))
    commented = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", text, re.M))
    return active, commented


def test_every_app_container_reads_the_env_file() -> None:
    """web, the workers, beat and migrate take every variable of deploy/.env; the
    postgres and redis services do not (they get no Cordiale secret)."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for name, service in services.items():
        is_app = service.get("image", "").startswith(APP_IMAGE)
        env_files = service.get("env_file", [])
        env_files = [env_files] if isinstance(env_files, str) else env_files
        assert (env_files == [".env"]) == is_app, name


def test_the_example_env_file_lists_every_documented_setting() -> None:
    """Each README setting is in deploy/.env.example, set or commented out with its
    default, except the two URLs compose builds itself; nothing else is there."""
    documented = readme_settings()
    assert len(documented) > 40  # the table was found
    active, commented = example_keys()
    assert not active & commented
    assert documented - BUILT_BY_COMPOSE <= active | commented
    assert active | commented <= documented | DEPLOY_KNOBS

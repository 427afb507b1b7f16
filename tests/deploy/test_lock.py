"""The hash-locked requirement files agree with pyproject.toml (offline: both are parsed).

CI and the container image install from ``requirements/*.txt`` with ``--require-hashes``
and then the project with ``--no-deps``: a dependency added to pyproject.toml but not to
the lock would be missing at run time, and a version the lock pins but pyproject.toml
no longer allows would be installed anyway. Regenerate with
``sh requirements/compile.sh`` (docs/operations.md).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
REGENERATE = "out of date: run `sh requirements/compile.sh` (see docs/operations.md)"
# The platform the lock files are compiled for (requirements/compile.sh).
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def read_lock(name: str) -> dict[str, tuple[Version, int]]:
    """``{canonical name: (pinned version, number of hashes)}`` of one lock file."""
    pins: dict[str, tuple[Version, int]] = {}
    current = None
    for line in (REQUIREMENTS / name).read_text().splitlines():
        pin = _PIN.match(line)
        if pin:
            current = canonicalize_name(pin.group(1))
            assert current not in pins, f"{name} pins {current} twice"
            pins[current] = (Version(pin.group(2)), 0)
        elif current and _HASH.search(line):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            pytest.fail(f"{name}: unexpected line {line!r}")
    return pins


def local_sources() -> dict[str, Path]:
    """Distributions of this checkout that the server depends on (``[tool.uv.sources]``):
    installed from their path, so the lock files carry their dependencies, not them."""
    sources = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["sources"]
    return {canonicalize_name(name): ROOT / source["path"] for name, source in sources.items()}


def declared(*extras: str, project_dir: Path = ROOT) -> list[Requirement]:
    """What a project asks for, a local source replaced by its own requirements."""
    project = tomllib.loads((project_dir / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    local = local_sources()
    expanded = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name in local:
            expanded += declared(*sorted(requirement.extras), project_dir=local[name])
        else:
            expanded.append(requirement)
    return [r for r in expanded if r.marker is None or r.marker.evaluate(TARGET)]


def assert_pinned(requirements: list[Requirement], lock: str) -> None:
    pins = read_lock(lock)
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{requirement.name} is not pinned in requirements/{lock}: {REGENERATE}"
        )
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {name}=={version}, outside {requirement}: {REGENERATE}"
        )
        assert hashes, f"{name} has no hash in requirements/{lock}"


def test_runtime_lock_pins_every_dependency() -> None:
    """Every runtime dependency is pinned in lock.txt, within its declared range."""
    assert_pinned(declared(), "lock.txt")


def test_dev_lock_pins_every_dependency_and_dev_tool() -> None:
    """Every runtime and dev dependency is pinned in dev-lock.txt, within its range."""
    assert_pinned(declared("dev"), "dev-lock.txt")


def test_every_pin_has_hashes_and_ci_tests_what_the_image_ships() -> None:
    """Each pin carries hashes (pip's --require-hashes needs them), and the runtime lock
    pins exactly the versions the dev lock pins."""
    runtime, dev = read_lock("lock.txt"), read_lock("dev-lock.txt")
    for name, (_version, hashes) in {**dev, **runtime}.items():
        assert hashes, name
    for name, (version, _) in runtime.items():
        assert name in dev and dev[name][0] == version, f"{name}: {REGENERATE}"


def test_local_client_is_locked_through_its_dependencies_only() -> None:
    """The server's dependency on cordiale-client resolves to exchange/client/ in this
    checkout, at the client's own version; no lock file pins the client (pip installs it
    from the path, which ``--require-hashes`` could not check) and the dev lock pins
    everything its extras need."""
    local = local_sources()
    assert set(local) == {"cordiale-client"}
    client = tomllib.loads((local["cordiale-client"] / "pyproject.toml").read_text())["project"]
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [Requirement(r) for r in server["dependencies"]]
    pinned = [r for r in pinned if canonicalize_name(r.name) == "cordiale-client"]
    assert [str(r.specifier) for r in pinned] == [f"=={client['version']}"]
    for lock in ("lock.txt", "dev-lock.txt", "bootstrap.txt"):
        assert "cordiale-client" not in read_lock(lock), lock
    assert_pinned(declared(project_dir=local["cordiale-client"]), "lock.txt")
    extras = sorted(client["optional-dependencies"])
    assert_pinned(declared(*extras, project_dir=local["cordiale-client"]), "dev-lock.txt")


@pytest.mark.parametrize("project", [".", "exchange/client"])
def test_bootstrap_provides_the_build_backend(project: str) -> None:
    """bootstrap.txt pins pip and a setuptools that the build system of the server's and
    the client's pyproject.toml accepts (CI and the image build both without fetching an
    unpinned backend)."""
    build = tomllib.loads((ROOT / project / "pyproject.toml").read_text())["build-system"]
    assert build["build-backend"] == "setuptools.build_meta"
    assert_pinned([Requirement(r) for r in build["requires"]], "bootstrap.txt")
    assert "pip" in read_lock("bootstrap.txt")


def pip_installs(path: Path) -> list[str]:
    """Every ``pip install`` command in a shell script or Dockerfile, one line each."""
    text = re.sub(r"\\\n", " ", path.read_text())
    commands = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        commands += [c.strip() for c in re.split(r"&&|;|\|\|", line) if "pip install" in c]
    return commands


@pytest.mark.parametrize("path", [".ci/run", "deploy/Dockerfile"])
def test_ci_and_image_install_nothing_unpinned(path: str) -> None:
    """CI and the image install dependencies only from the lock files with their hashes
    checked, and the project itself without dependencies."""
    commands = pip_installs(ROOT / path)
    assert commands, path
    for command in commands:
        locked = re.search(r"--require-hashes -r requirements/\S+\.txt", command)
        assert locked or "--no-deps" in command, f"{path}: {command}"
    assert any("requirements/bootstrap.txt" in c for c in commands), path
    lock = "requirements/dev-lock.txt" if path == ".ci/run" else "requirements/lock.txt"
    assert any(lock in c for c in commands), path


@pytest.mark.parametrize("path", [".ci/run", "deploy/Dockerfile"])
def test_ci_and_image_install_the_client_from_the_checkout(path: str) -> None:
    """The server depends on cordiale-client, which no index has: CI and the image
    install it from exchange/client/ in the same command as the server, so that
    ``pip check`` finds it."""
    commands = [c for c in pip_installs(ROOT / path) if "--no-deps" in c]
    assert commands, path
    for command in commands:
        words = command.split()
        assert "./exchange/client" in words and "." in words, f"{path}: {command}"

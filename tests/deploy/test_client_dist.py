"""The member-side distribution, ``cordiale-client``, built and installed without the server.

One fresh virtualenv for the module: pip and setuptools from ``requirements/bootstrap.txt``
(what CI and the image build with), the client's wheel and sdist and the server's wheel
built in it offline (``--no-build-isolation --no-index``) from a copy of the sources, then
the client's dependencies alone installed from ``requirements/lock.txt`` with their
hashes, and the client wheel. In that venv, outside the checkout: ``cordiale`` runs, every
``exchange.client`` module imports (a client module that imports a server module fails
here), no Django, Celery or gunicorn is installed; with python-threatexchange added from
the dev lock, ``threatexchange config extensions add exchange.client.threatexchange``
works as CONTRACT.md says. The two wheels share no file and ship every module once.

Installing the locked dependencies needs the package index (as CI does): without it the
module skips loudly, and fails under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import types
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.services import unavailable

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "exchange" / "client"
SERVER_ONLY = ("django", "djangorestframework", "celery", "gunicorn", "psycopg", "kombu")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "*.egg-info")


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A command with the checkout out of sight: no PYTHONPATH, no Django settings."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME")
    }
    return subprocess.run(
        args, cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=900
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def lock_entries(lock: str) -> dict[str, str]:
    """``{canonical name: the pin with its hash lines}`` of a requirements/*.txt file."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "requirements" / lock).read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if pin:
            current = canonicalize_name(pin.group(1))
            entries[current] = [line]
        elif current and line.lstrip().startswith("--hash="):
            entries[current].append(line)
        else:
            current = None
    return {name: "\n".join(lines) for name, lines in entries.items()}


def closure(requirements: Iterable[Requirement]) -> set[str]:
    """Every distribution these requirements pull in, as this environment (installed from
    the dev lock, at the locked versions) declares them; ``pip check`` in the fresh venv
    then proves the set complete."""
    seen: set[str] = set()
    todo = [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for raw in distribution(name).requires or []:
            needed = Requirement(raw)
            extras = requirement.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                todo.append(needed)
    return seen


def install_locked(venv: Venv, names: set[str], lock: str, tmp: Path) -> None:
    """Exactly these distributions at their pins, hash-checked, nothing else."""
    entries = lock_entries(lock)
    missing = sorted(names - set(entries))
    assert not missing, f"requirements/{lock} lacks {missing}"
    subset = tmp / f"subset-{lock}"
    subset.write_text("\n".join(entries[n] for n in sorted(names)) + "\n")
    result = run(
        [
            str(venv.python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "-r",
            str(subset),
        ],
        tmp,
    )
    if result.returncode != 0:
        unavailable(
            f"CI=true but installing from requirements/{lock} failed:\n{result.stderr[-2000:]}",
            f"SKIPPED LOUDLY: no package index for requirements/{lock}: {result.stderr[-500:]}",
        )


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def payload(names: set[str]) -> set[str]:
    """A wheel's files without its .dist-info metadata."""
    return {n for n in names if ".dist-info/" not in n}


@dataclass
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def installed(self) -> set[str]:
        code = (
            "import importlib.metadata as m, json;"
            "print(json.dumps(sorted({d.metadata['Name'] for d in m.distributions()})))"
        )
        out = ok(run([str(self.python), "-c", code], self.path)).stdout
        return {canonicalize_name(n) for n in json.loads(out)}


@dataclass
class Built:
    tmp: Path
    venv: Venv
    client_wheel: Path
    client_sdist: Path
    server_wheel: Path


def build_wheel(venv: Venv, source: Path, out: Path) -> Path:
    """``pip wheel`` offline with the venv's pinned setuptools, as CI and the image build."""
    ok(
        run(
            [
                str(venv.python),
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-w",
                str(out),
                str(source),
            ],
            out.parent,
        )
    )
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("client-dist")
    venv = Venv(tmp / "venv")
    ok(run([sys.executable, "-m", "venv", str(venv.path)], tmp))
    bootstrap = run(
        [
            str(venv.python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "-r",
            str(ROOT / "requirements" / "bootstrap.txt"),
        ],
        tmp,
    )
    if bootstrap.returncode != 0:
        unavailable(
            f"CI=true but installing requirements/bootstrap.txt failed:\n{bootstrap.stderr}",
            f"SKIPPED LOUDLY: no package index for requirements/bootstrap.txt: "
            f"{bootstrap.stderr[-500:]}",
        )

    client_src = tmp / "src" / "client"
    shutil.copytree(CLIENT, client_src, ignore=IGNORED)
    client_wheel = build_wheel(venv, client_src, tmp / "client-dist")
    sdist_dir = tmp / "client-sdist"
    code = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    name = ok(run([str(venv.python), "-c", code, str(sdist_dir)], client_src)).stdout.split()[-1]

    server_src = tmp / "src" / "server"
    for part in ("forum", "members", "exchange"):
        shutil.copytree(ROOT / part, server_src / part, ignore=IGNORED)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, server_src / part)
    server_wheel = build_wheel(venv, server_src, tmp / "server-dist")
    return Built(tmp, venv, client_wheel, sdist_dir / name, server_wheel)


@pytest.fixture(scope="module")
def client_venv(built: Built) -> Venv:
    """The built venv with the client's locked dependencies and the client wheel only."""
    with zipfile.ZipFile(built.client_wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    requires = [
        Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")
    ]
    install_locked(built.venv, closure(requires), "lock.txt", built.tmp)
    pip = [str(built.venv.python), "-m", "pip"]
    ok(
        run(
            [*pip, "install", "--quiet", "--no-deps", "--no-index", str(built.client_wheel)],
            built.tmp,
        )
    )
    ok(run([*pip, "check"], built.tmp))
    return built.venv


def test_client_wheel_ships_the_client_package_only(built: Built) -> None:
    """Every file of the client wheel is under exchange/client/ (no exchange/__init__.py,
    no server module, no pyproject.toml) and it declares the ``cordiale`` command."""
    names = wheel_names(built.client_wheel)
    files = payload(names)
    assert files, names
    assert all(n.startswith("exchange/client/") and n.endswith(".py") for n in files), files
    assert "exchange/__init__.py" not in names
    sources = {
        f"exchange/client/{p.relative_to(CLIENT).as_posix()}"
        for p in CLIENT.rglob("*.py")
        if not {"build", "__pycache__"} & set(p.relative_to(CLIENT).parts)
    }
    assert files == sources
    with zipfile.ZipFile(built.client_wheel) as archive:
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "cordiale = exchange.client.cli:main" in archive.read(entry_points).decode()


def test_client_sdist_builds_the_same_wheel(built: Built) -> None:
    """The sdist is self-contained: unpacked elsewhere, it builds a wheel with the same
    files as the one built from the checkout."""
    unpacked = built.tmp / "sdist-unpacked"
    with tarfile.open(built.client_sdist) as archive:
        archive.extractall(unpacked, filter="data")
    (source,) = unpacked.iterdir()
    again = build_wheel(built.venv, source, built.tmp / "from-sdist")
    assert payload(wheel_names(again)) == payload(wheel_names(built.client_wheel))


def test_server_and_client_wheels_share_no_file_and_miss_none(built: Built) -> None:
    """The server wheel ships no client file and no ``cordiale`` command; together the two
    ship every module of forum/, members/ and exchange/ exactly once, and the server keeps
    exchange/__init__.py (its Django app)."""
    client, server = wheel_names(built.client_wheel), wheel_names(built.server_wheel)
    assert not payload(client) & payload(server)
    assert not any(n.startswith("exchange/client/") for n in server)
    assert "exchange/__init__.py" in server
    entry_points = [n for n in server if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(built.server_wheel) as archive:
        assert all("cordiale" not in archive.read(n).decode() for n in entry_points)
    modules = {
        p.relative_to(ROOT).as_posix()
        for part in ("forum", "members", "exchange")
        for p in (ROOT / part).rglob("*.py")
        if not {"build", "__pycache__"} & set(p.relative_to(ROOT).parts)
    }
    shipped = {n for n in payload(client) | payload(server) if n.endswith(".py")}
    assert shipped == modules


def test_client_installs_and_runs_without_the_server(client_venv: Venv, tmp_path: Path) -> None:
    """Outside the checkout, with the client wheel and its locked dependencies only:
    ``cordiale --help`` and ``--version`` work, every exchange.client module but the
    threatexchange extension imports without Django, and nothing of the server is
    installed."""
    installed = client_venv.installed()
    assert "cordiale-client" in installed
    assert not {canonicalize_name(n) for n in (*SERVER_ONLY, "cordiale")} & installed
    cordiale = str(client_venv.path / "bin" / "cordiale")
    help_run = ok(run([cordiale, "--help"], tmp_path))
    assert "submit" in help_run.stdout and "sync" in help_run.stdout
    version = ok(run([cordiale, "--version"], tmp_path))
    assert "0.1.0" in version.stdout + version.stderr
    modules = sorted(
        f"exchange.client.{p.stem}"
        for p in CLIENT.glob("*.py")
        if p.stem not in ("__init__", "__main__", "threatexchange")
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "import exchange.client\n"
        "assert exchange.client.__file__.startswith(sys.prefix), exchange.client.__file__\n"
        "server = [m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', "
        "'celery', 'forum', 'members')]\n"
        "assert not server, server\n"
    )
    ok(run([str(client_venv.python), "-c", code], tmp_path))
    keygen = ok(run([cordiale, "keygen", "--out", str(tmp_path / "k.pem")], tmp_path))
    assert "kid" in json.loads(keygen.stdout.strip().splitlines()[-1])


def test_threatexchange_extension_loads_from_the_client_wheel(
    client_venv: Venv, tmp_path: Path
) -> None:
    """With python-threatexchange added (from the dev lock), ``threatexchange config
    extensions add exchange.client.threatexchange`` registers the extension, still
    without the server."""
    try:
        distribution("threatexchange")
    except PackageNotFoundError:
        pytest.skip("python-threatexchange is not installed here (dev extra)")
    names = closure([Requirement("threatexchange")]) - client_venv.installed()
    install_locked(client_venv, names, "dev-lock.txt", tmp_path)
    ok(run([str(client_venv.python), "-m", "pip", "check"], tmp_path))
    home = tmp_path / "home"
    home.mkdir()
    added = ok(
        run(
            [
                str(client_venv.path / "bin" / "threatexchange"),
                "config",
                "extensions",
                "add",
                "exchange.client.threatexchange",
            ],
            tmp_path,
            HOME=str(home),
            TX_STATEDIR=str(tmp_path / "tx-state"),
        )
    )
    assert "cordiale" in added.stdout
    assert not {canonicalize_name(n) for n in SERVER_ONLY} & client_venv.installed()


def test_exchange_app_finds_its_directory_when_exchange_is_a_namespace() -> None:
    """With the client installed editable next to the server (README, .ci/run), a process
    started outside the checkout imports ``exchange`` as a namespace package whose only
    __path__ entry is setuptools' import hook: Django would take that for the app's
    directory and miss its templates. The app says where it is."""
    from django.apps import AppConfig

    from exchange.apps import ExchangeConfig

    hooked = types.ModuleType("exchange")
    hooked.__path__ = ["__editable__.cordiale_client-0.1.0.finder.__path_hook__"]
    assert AppConfig("exchange", hooked).path == hooked.__path__[0]  # the hazard
    config = ExchangeConfig("exchange", hooked)
    assert Path(config.path) == ROOT / "exchange"
    assert (Path(config.path) / "templates" / "exchange").is_dir()

"""The deployment files in deploy/ are consistent with each other and with the project.

They cannot be exercised without a container engine or a cluster, so these tests read
them as data: every file parses, every Deployment is probed, sized and runs as a
non-root user, every command is a script in deploy/bin (or a program the image has),
every environment variable is one the project documents, and kustomization.yaml
applies every manifest.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
BIN = DEPLOY / "bin"

# The settings the project reads from the environment (CONTRACT.md, "Processes and
# configuration", and the settings documented in the README).
DOCUMENTED_ENV = {
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "CORDIALE_WEBHOOK_ALLOW_PRIVATE",
    "CORDIALE_WEBHOOK_MAX_IN_FLIGHT_PER_MEMBER",
    "CORDIALE_METRICS_TOKEN",
    "CORDIALE_WORKER_METRICS_PORT",
    "CORDIALE_WORKER_METRICS_ADDR",
    "CORDIALE_REPLICA_DATABASE_URL",
    "CORDIALE_REPLICA_MAX_LAG",
    "CORDIALE_FORUM_KEY",
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    "WEB_CONCURRENCY",
    "CELERY_CONCURRENCY",
}
# Read by the official postgres image, not by Cordiale.
POSTGRES_IMAGE_ENV = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}

# First argument of the image's entrypoint, each backed by a script in deploy/bin.
ENTRYPOINT_COMMANDS = {"web", "worker", "beat", "migrate"}
# Programs other than our scripts that a container or probe may run.
KNOWN_PROGRAMS = {"sleep", "pg_isready", "redis-cli", "redis-server"}

QUEUES = {"fanout", "delivery", "maintenance", "priority"}
APP_IMAGE = "cordiale"


def load_all(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def example_files() -> list[Path]:
    return sorted((K8S / "examples").glob("*.yaml"))


def all_manifests() -> list[dict[str, Any]]:
    return [doc for path in manifest_files() for doc in load_all(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in all_manifests() if doc["kind"] == kind]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in all_manifests():
        if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def compose() -> dict[str, Any]:
    return load_all(DEPLOY / "compose.yaml")[0]


def app_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").split(":")[0] == APP_IMAGE
    }


def assert_runnable(argv: list[str], where: str) -> None:
    """argv starts with an entrypoint command, a deploy/bin script or a known program."""
    program = argv[0]
    if program in ENTRYPOINT_COMMANDS:
        script = BIN / program
    elif program.startswith("/app/deploy/bin/"):
        script = BIN / program.removeprefix("/app/deploy/bin/")
    else:
        assert program in KNOWN_PROGRAMS, f"{where}: unknown program {program!r}"
        return
    assert script.is_file(), f"{where}: {script.name} is not in deploy/bin"
    assert os.access(script, os.X_OK), f"{where}: {script.name} is not executable"
    if program == "worker" and len(argv) > 1:
        assert set(argv[1].split(",")) <= QUEUES, f"{where}: unknown queue in {argv[1]!r}"


# --- files parse -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [DEPLOY / "compose.yaml", *sorted(K8S.rglob("*.yaml"))],
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_yaml_parses_into_objects(path: Path) -> None:
    """Every YAML file parses; every Kubernetes document names its kind and itself."""
    docs = load_all(path)
    assert docs
    if path.is_relative_to(K8S) and path.name != "kustomization.yaml":
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
            assert doc["metadata"].get("name"), path
            assert "namespace" not in doc["metadata"], f"{path}: manifests are namespace-agnostic"


@pytest.mark.parametrize(
    "script", sorted(p for p in BIN.iterdir() if p.is_file()), ids=lambda p: p.name
)
def test_scripts_are_valid_posix_sh(script: Path) -> None:
    """Every script in deploy/bin is POSIX sh that `sh -n` accepts, with `set -eu`."""
    subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text()
    if not script.name.startswith("_"):
        assert text.startswith("#!/bin/sh\n")
        assert "\nset -eu\n" in text
        assert os.access(script, os.X_OK)


# --- kustomization -----------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml applies every manifest in deploy/k8s and nothing else."""
    kustomization = load_all(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in manifest_files()}


def test_examples_are_not_applied() -> None:
    """The example Secret holds placeholders and is never part of `apply -k`."""
    kustomization = load_all(K8S / "kustomization.yaml")[0]
    assert not any(r.startswith("examples") for r in kustomization["resources"])
    secret = next(d for p in example_files() for d in load_all(p) if d["kind"] == "Secret")
    assert all("PLACEHOLDER" in value for value in secret["stringData"].values())


# --- workloads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,spec", list(pod_specs()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_pods_are_locked_down_and_sized(name: str, spec: dict[str, Any]) -> None:
    """Non-root, read-only root filesystem with an emptyDir /tmp, resources set."""
    assert spec["securityContext"]["runAsNonRoot"] is True, name
    assert spec["securityContext"]["runAsUser"] != 0, name
    assert spec.get("automountServiceAccountToken") is False, name
    tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    for container in spec["containers"]:
        assert container["image"] == APP_IMAGE, name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert any(
            m["mountPath"] == "/tmp" and m["name"] in tmp_volumes for m in container["volumeMounts"]
        ), f"{name}: /tmp must be a writable emptyDir"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys(), name


@pytest.mark.parametrize("deployment", of_kind("Deployment"), ids=lambda d: d["metadata"]["name"])
def test_deployments_have_probes(deployment: dict[str, Any]) -> None:
    """Every Deployment's containers have a liveness probe; web also a readiness probe."""
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert "livenessProbe" in container, deployment["metadata"]["name"]


def test_web_probes_use_health_endpoints() -> None:
    """Web: liveness on /healthz, readiness on /readyz/web (the database only, so that a
    Redis outage leaves the pods in service), on the port the Service targets."""
    (web,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "cordiale-web"]
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz/web"
    ports = {p["name"] for p in container["ports"]}
    (service,) = of_kind("Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    assert (
        service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    )


def test_beat_is_a_single_recreated_pod() -> None:
    """Two beats would schedule everything twice: one replica, never two during a rollout."""
    (beat,) = [
        d
        for d in of_kind("Deployment")
        if d["spec"]["template"]["spec"]["containers"][0]["args"] == ["beat"]
    ]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_workers_cover_every_queue() -> None:
    """The worker Deployments together consume every Celery queue, each queue once."""
    consumed: list[str] = []
    for deployment in of_kind("Deployment"):
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        if args[0] == "worker":
            consumed += args[1].split(",")
    assert sorted(consumed) == sorted(QUEUES)


def test_migrations_run_as_a_job() -> None:
    """Migrations run as one Kubernetes Job running ``migrate``, never restarted."""
    (job,) = of_kind("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_autoscalers_and_budgets_target_real_workloads() -> None:
    """HPAs for web and delivery workers; PDBs select pods of existing Deployments."""
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind("HorizontalPodAutoscaler")}
    assert targets <= deployments.keys()
    assert {"cordiale-web", "cordiale-worker-delivery"} <= targets
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    covered: set[str] = set()
    for pdb in of_kind("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        matches = [labels for labels in pod_labels if selector.items() <= labels.items()]
        assert matches, pdb["metadata"]["name"]
        covered |= {labels["app.kubernetes.io/component"] for labels in matches}
    assert {"web", "worker-fanout", "worker-delivery", "worker-maintenance"} <= covered


# --- commands ----------------------------------------------------------------------


def test_kubernetes_commands_exist() -> None:
    """Container args and exec probes name a deploy/bin script or a known program."""
    for name, spec in pod_specs():
        for container in spec["containers"]:
            assert_runnable(container.get("command") or container["args"], name)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if "exec" in container.get(probe, {}):
                    assert_runnable(container[probe]["exec"]["command"], f"{name} {probe}")
            pre_stop = container.get("lifecycle", {}).get("preStop", {})
            if "exec" in pre_stop:
                assert_runnable(pre_stop["exec"]["command"], f"{name} preStop")


def test_compose_commands_exist() -> None:
    """Compose commands and health checks name a deploy/bin script or a known program."""
    for name, service in compose()["services"].items():
        if name in app_services():
            assert_runnable(service["command"], name)
        test = service.get("healthcheck", {}).get("test")
        if test:
            assert test[0] == "CMD"
            assert_runnable(test[1:], f"{name} healthcheck")


def test_dockerfile_uses_the_scripts() -> None:
    """The image's entrypoint and health check are scripts in deploy/bin."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for path in re.findall(r'"/app/deploy/bin/([^"]+)"', dockerfile):
        assert (BIN / path).is_file(), path
    assert re.search(
        r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.M
    )
    assert re.search(r"^USER (?!0\b|root\b)", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "ENTRYPOINT" in dockerfile


# --- environment -------------------------------------------------------------------


def test_kubernetes_env_is_documented() -> None:
    """Every variable set by env, the ConfigMap or the Secret is a documented setting."""
    config_maps = {c["metadata"]["name"]: c for c in of_kind("ConfigMap")}
    secrets = {
        d["metadata"]["name"]: d
        for p in example_files()
        for d in load_all(p)
        if d["kind"] == "Secret"
    }
    for config_map in config_maps.values():
        assert set(config_map["data"]) <= DOCUMENTED_ENV
    for secret in secrets.values():
        assert set(secret["stringData"]) <= DOCUMENTED_ENV
    for name, spec in pod_specs():
        for container in spec["containers"]:
            assert {e["name"] for e in container.get("env", [])} <= DOCUMENTED_ENV, name
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, name


def test_compose_env_is_documented() -> None:
    """Compose sets and interpolates only documented settings (and postgres' own)."""
    services = compose()["services"]
    for name, service in services.items():
        allowed = DOCUMENTED_ENV if name in app_services() else POSTGRES_IMAGE_ENV
        assert set(service.get("environment", {})) <= allowed, name
    text = (DEPLOY / "compose.yaml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    assert interpolated <= DOCUMENTED_ENV | {"POSTGRES_PASSWORD"}
    example = (DEPLOY / ".env.example").read_text()
    keys = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, re.M))
    assert interpolated <= keys <= DOCUMENTED_ENV | {"POSTGRES_PASSWORD"}


# --- compose topology --------------------------------------------------------------


def test_compose_services_and_dependencies() -> None:
    """Everything waits for a completed migration; the stores are health-checked volumes."""
    services = compose()["services"]
    assert {
        "web",
        "worker",
        "worker-maintenance",
        "beat",
        "migrate",
        "postgres",
        "redis",
    } <= services.keys()
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in app_services().keys() - {"migrate"}:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    named_volumes = set(compose()["volumes"])
    for store in ("postgres", "redis"):
        assert services[store]["healthcheck"]["test"]
        assert {v.split(":")[0] for v in services[store]["volumes"]} <= named_volumes


# --- match index snapshots -----------------------------------------------------------


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's runtime stage (NAME=value pairs, continued lines)."""
    dockerfile = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = dockerfile.split(" AS runtime", 1)[1]
    pairs: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", runtime, re.M):
        pairs.update(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", line))
    return pairs


def test_match_index_directory_is_a_writable_volume_everywhere() -> None:
    """The image points CORDIALE_MATCH_INDEX_DIR outside the installed code, creates it
    for the app user, and both compose (a named volume) and Kubernetes (an emptyDir,
    under a read-only root filesystem) mount a writable volume there for web."""
    directory = image_env()["CORDIALE_MATCH_INDEX_DIR"]
    assert directory.startswith("/var/") and not directory.startswith(("/opt/venv", "/app"))
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(rf"install -d -o 10001 -g 10001 .*{re.escape(directory)}$", dockerfile, re.M)
    # The settings' default outside debug mode is the same path.
    assert f'"{directory}"' in (DEPLOY.parent / "forum" / "settings.py").read_text()

    web = compose()["services"]["web"]
    mounts = dict(v.split(":", 1)[::-1] for v in web["volumes"])
    assert mounts[directory] in compose()["volumes"]
    assert web["read_only"] is True

    (deployment,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "cordiale-web"]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume and not mount.get("readOnly", False)

"""What runs in production is what the tests ran: every process of ``sendpromptly/processes.py`` is
started by ``make up``, is a service of docker-compose.yml and a workload of deploy/k8s/, is scraped,
alerted on and shown on the dashboard, and is in the docs; the manifests are valid Kubernetes
objects and the compose file parses; images, ports, settings and probe paths are the processes' own.
(That the processes really serve those paths and metrics: tests/test_metrics_served.py.)"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from common.config import PREFIX, Settings
from sendpromptly.mailcatcher import DIR_ENV
from sendpromptly.processes import PROCESSES, Process
from tests.support.tools import REPO, installed_tool

K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"
DEFAULTS = Settings()
# The variables the processes read: every Settings field, directly or as a _FILE, and the mail
# catcher's own.
SETTINGS = {PREFIX + field.name.upper() for field in dataclasses.fields(Settings)}
MAILCATCHER_SETTINGS = {DIR_ENV, f"{PREFIX}MAILCATCHER_SMTP_PORT", f"{PREFIX}MAILCATCHER_WEB_PORT"}


def container_port(process: Process) -> int:
    """The port the process listens on in its own container or pod: its setting's default."""
    port: int = getattr(DEFAULTS, process.port_setting)
    return port


def assert_settings(names: set[str], where: str) -> None:
    unknown = {name for name in names if name.removesuffix("_FILE") not in SETTINGS | MAILCATCHER_SETTINGS}
    assert not unknown, f"{where} sets variables no process reads: {sorted(unknown)}"


# --- make up --------------------------------------------------------------------------------------

def test_make_up_runs_every_process() -> None:
    status = subprocess.run(["bash", "scripts/stack.sh", "status"], cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=False)
    listed = {line.split()[0] for line in status.stdout.splitlines() if " running" in line}
    assert {process.name for process in PROCESSES} <= listed, status.stdout + status.stderr


# --- docker-compose.yml ---------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_every_process_with_its_port_and_checks() -> None:
    services = compose()["services"]
    for process in PROCESSES:
        service = services.get(process.name)
        assert service is not None, f"docker-compose.yml has no service {process.name}"
        assert tuple(service["command"]) == process.args
        port = container_port(process)
        assert any(str(published).endswith(f":{port}") for published in service["ports"]), \
            f"{process.name}: container port {port} is not published"
        assert service["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/readyz"
        assert service["image"] == "sendpromptly:local"
        assert_settings(set(service["environment"]), f"docker-compose.yml service {process.name}")


def test_compose_prometheus_scrapes_every_process_under_its_job() -> None:
    config = yaml.safe_load((REPO / "deploy" / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs == {process.job: [f"{process.name}:{container_port(process)}"] for process in PROCESSES}


def test_compose_file_parses_with_docker_compose(tmp_path: Path) -> None:
    # docker-compose 1.x (Debian's) predates the top-level `name`; everything else it checks.
    spec = compose()
    del spec["name"]
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(spec))
    checked = subprocess.run(
        [installed_tool("docker-compose"), "--project-directory", str(REPO), "-f",
         str(tmp_path / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stderr


def test_compose_prometheus_config_and_rules_load(tmp_path: Path) -> None:
    # Laid out as docker-compose.yml mounts them: the rules beside the configuration.
    for source in ("deploy/compose/prometheus.yml", "deploy/prometheus/alerts.yaml"):
        shutil.copy(REPO / source, tmp_path)
    checked = subprocess.run([installed_tool("promtool"), "check", "config", "prometheus.yml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- deploy/k8s -----------------------------------------------------------------------------------

def manifests() -> list[dict[str, Any]]:
    """Every object the kustomization applies, in its files' order (before kustomize's edits)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"]
            for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def test_every_manifest_is_a_valid_kubernetes_object() -> None:
    for doc in manifests():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    for extra in ("secret.example.yaml",):
        for doc in yaml.safe_load_all((K8S / extra).read_text()):
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kubernetes_runs_every_process_with_probes_resources_and_a_disruption_budget() -> None:
    workloads = {**objects("Deployment"), **objects("StatefulSet")}
    budgets = objects("PodDisruptionBudget")
    for process in PROCESSES:
        workload = workloads.get(process.job)
        assert workload is not None, f"deploy/k8s has no workload {process.job}"
        template = workload["spec"]["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == process.job
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(container_port(process))
        (container,) = template["spec"]["containers"]
        assert container["image"] == "sendpromptly"
        assert tuple(container["args"]) == process.args
        assert container["ports"] == [{"name": "http", "containerPort": container_port(process)}]
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, f"{process.job} {probe}"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert process.job in budgets, f"{process.job} has no PodDisruptionBudget"
        selector = budgets[process.job]["spec"]["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": process.job}


def sink_shape(process: Process) -> str:
    """A sink's manifest file after its opening comment (which says what the sink does), with its
    name written NAME."""
    lines = (K8S / f"{process.name}.yaml").read_text().splitlines(keepends=True)
    body = "".join(itertools.dropwhile(lambda line: line.startswith("#"), lines))
    return body.replace(process.args[1], "NAME")


def test_kubernetes_runs_each_sink_from_one_shape_listed_in_the_processes_order() -> None:
    """A new sink is a line in sendpromptly/processes.py and a copy of any sink's file under its
    name: the files differ in nothing else."""
    sinks = [process for process in PROCESSES if process.sink_module]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert [name for name in kustomization["resources"] if name.startswith("sink-")] == \
        [f"{process.name}.yaml" for process in sinks]
    first, *others = sinks
    for other in others:
        assert sink_shape(other) == sink_shape(first), \
            f"deploy/k8s/{other.name}.yaml differs from {first.name}.yaml beyond the sink's name"


def test_kubernetes_settings_are_the_processes_own() -> None:
    names = {line.split("=", 1)[0] for line in (K8S / "config.env").read_text().splitlines()
             if line and not line.startswith("#")}
    assert_settings(names, "deploy/k8s/config.env")
    for process in PROCESSES:
        assert f"{process.port_variable}={container_port(process)}" in (K8S / "config.env").read_text()
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    files = {line.split("=", 1)[1].rsplit("/", 1)[1] for line in (K8S / "config.env").read_text().splitlines()
             if line.startswith(PREFIX) and line.split("=", 1)[0].endswith("_FILE")}
    assert files == set(secret["stringData"]), "every mounted secret file must be a key of the Secret"


def test_kustomize_renders_valid_objects() -> None:
    # No kustomize binary is served by a package registry here; kubectl has one built in.
    kubectl = installed_tool("kubectl")
    rendered = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                              check=True).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"].get("namespace", "sendpromptly") == "sendpromptly"
    config_maps = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "ConfigMap"]
    assert len(config_maps) == 1 and config_maps[0].startswith("sendpromptly-config-")
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            assert container["image"] == "registry.example.com/sendpromptly:0.1.0"
            assert container["envFrom"] == [{"configMapRef": {"name": config_maps[0]}}]


# --- alerts, dashboard, image, docs ---------------------------------------------------------------

def test_every_process_is_alerted_on_when_it_is_gone() -> None:
    rules = [rule for group in yaml.safe_load((REPO / "deploy/prometheus/alerts.yaml").read_text())["groups"]
             for rule in group["rules"]]
    absent = {match for rule in rules for match in re.findall(r'absent\(up\{job="([^"]+)"\}', rule["expr"])}
    assert absent == {process.job for process in PROCESSES}


def test_the_dashboard_shows_every_process() -> None:
    dashboard = json.loads((REPO / "deploy/grafana/sendpromptly.json").read_text())
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    shown = set(re.findall(r'up\{job="([^"]+)"\}', exprs))
    assert shown == {process.job for process in PROCESSES}


def test_the_image_exposes_every_port() -> None:
    exposed = re.search(r"^EXPOSE (.+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert exposed is not None
    assert {str(container_port(process)) for process in PROCESSES} <= set(exposed.group(1).split())


@pytest.mark.parametrize("doc", ["ARCHITECTURE.md", "deploy/README.md", "docs/scaling.md"])
def test_the_docs_name_every_process(doc: str) -> None:
    text = (REPO / doc).read_text()
    missing = [process.name for process in PROCESSES if f"sendpromptly {' '.join(process.args)}" not in text]
    assert not missing, f"{doc} does not name the command of {missing}"

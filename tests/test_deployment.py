"""What runs in production is what the tests ran: every process of ``sendpromptly/processes.py`` is
started by ``make up``, is a service of docker-compose.yml and a workload of deploy/k8s/, is scraped,
alerted on and shown on the dashboard, and is in the docs; what the deploy files say per process is
what ``make deploy-files`` renders from the registry now, and a sink added there appears everywhere;
the manifests are valid Kubernetes objects and the compose file parses; images, ports, settings and
probe paths are the processes' own. (That the processes really serve those paths and metrics:
tests/test_metrics_served.py.)"""

from __future__ import annotations

import dataclasses
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
from sendpromptly.deploy_files import render, stale
from sendpromptly.mailcatcher import DIR_ENV
from sendpromptly.processes import PROCESSES, SINKS, SinkSpec, sink_process
from tests.support.tools import REPO, installed_tool, promtool_test_rules

K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"
# The variables the processes read: every Settings field, directly or as a _FILE, and the mail
# catcher's own.
SETTINGS = {PREFIX + field.name.upper() for field in dataclasses.fields(Settings)}
MAILCATCHER_SETTINGS = {DIR_ENV, f"{PREFIX}MAILCATCHER_SMTP_PORT", f"{PREFIX}MAILCATCHER_WEB_PORT"}


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
        port = process.container_port
        assert any(str(published).endswith(f":{port}") for published in service["ports"]), \
            f"{process.name}: container port {port} is not published"
        assert service["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/readyz"
        assert service["image"] == "sendpromptly:local"
        assert_settings(set(service["environment"]), f"docker-compose.yml service {process.name}")


def compose_config_errors(text: str, tmp_path: Path) -> str:
    """What ``docker-compose config`` says is wrong with a compose file of this text ('' if nothing)."""
    # docker-compose 1.x (Debian's) predates the top-level `name`; everything else it checks.
    spec = yaml.safe_load(text)
    del spec["name"]
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(spec))
    checked = subprocess.run(
        [installed_tool("docker-compose"), "--project-directory", str(REPO), "-f",
         str(tmp_path / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True, timeout=120, check=False)
    return checked.stderr if checked.returncode else ""


def test_compose_file_parses_with_docker_compose(tmp_path: Path) -> None:
    assert compose_config_errors((REPO / "docker-compose.yml").read_text(), tmp_path) == ""


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
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(process.container_port)
        (container,) = template["spec"]["containers"]
        assert container["image"] == "sendpromptly"
        assert tuple(container["args"]) == process.args
        assert container["ports"] == [{"name": "http", "containerPort": process.container_port}]
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, f"{process.job} {probe}"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert process.job in budgets, f"{process.job} has no PodDisruptionBudget"
        selector = budgets[process.job]["spec"]["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": process.job}


def test_kubernetes_settings_are_the_processes_own() -> None:
    names = {line.split("=", 1)[0] for line in (K8S / "config.env").read_text().splitlines()
             if line and not line.startswith("#")}
    assert_settings(names, "deploy/k8s/config.env")
    for process in PROCESSES:
        assert f"{process.port_variable}={process.container_port}" in (K8S / "config.env").read_text()
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    files = {line.split("=", 1)[1].rsplit("/", 1)[1] for line in (K8S / "config.env").read_text().splitlines()
             if line.startswith(PREFIX) and line.split("=", 1)[0].endswith("_FILE")}
    assert files == set(secret["stringData"]), "every mounted secret file must be a key of the Secret"


def kustomize(directory: Path) -> list[dict[str, Any]]:
    # No kustomize binary is served by a package registry here; kubectl has one built in.
    rendered = subprocess.run([installed_tool("kubectl"), "kustomize", str(directory)], capture_output=True,
                              text=True, timeout=60, check=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def test_kustomize_renders_valid_objects() -> None:
    docs = kustomize(K8S)
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
    """One stat panel repeated over the `job` variable, whose query selects every process's job."""
    dashboard = json.loads((REPO / "deploy/grafana/sendpromptly.json").read_text())
    (variable,) = [variable for variable in dashboard["templating"]["list"] if variable["name"] == "job"]
    selector = re.fullmatch(r'label_values\(up\{job=~"(.+)"\}, job\)', variable["query"]["query"])
    assert selector is not None, variable["query"]
    assert all(re.fullmatch(selector.group(1), process.job) for process in PROCESSES)
    assert variable["includeAll"] and variable["current"]["value"] == ["$__all"]
    (panel,) = [panel for panel in dashboard["panels"] if panel.get("repeat") == "job"]
    assert [target["expr"] for target in panel["targets"]] == ['sum(up{job="$job"}) or vector(0)']


def test_the_image_exposes_every_port() -> None:
    exposed = re.search(r"^EXPOSE (.+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert exposed is not None
    assert {str(process.container_port) for process in PROCESSES} <= set(exposed.group(1).split())


@pytest.mark.parametrize("doc", ["ARCHITECTURE.md", "docs/scaling.md"])
def test_the_docs_name_every_process(doc: str) -> None:
    """What each process reads and writes, and how it scales, are prose no registry renders."""
    text = (REPO / doc).read_text()
    missing = [process.name for process in PROCESSES if f"sendpromptly {' '.join(process.args)}" not in text]
    assert not missing, f"{doc} does not name the command of {missing}"


# --- what sendpromptly/processes.py renders --------------------------------------------------------

def test_the_deploy_files_say_what_the_processes_render_now() -> None:
    out_of_date = list(stale(REPO))
    assert not out_of_date, (f"{', '.join(out_of_date)} differ from what sendpromptly/processes.py renders: "
                             "run `make deploy-files`")


def test_a_sink_added_to_the_registry_is_deployed_scraped_and_alerted_on(tmp_path: Path) -> None:
    """A hypothetical ledger sink, rendered into copies: it is a workload that kustomize applies, a
    compose service that parses, a scrape job, and its own SendPromptlySinkDown rule that promtool
    sees firing when it goes, and only then."""
    ledger = sink_process("ledger", SinkSpec("sinks.ledger", does="a ledger of every repair.",
                                             when_down="the ledger stops growing", sends_mail=True))
    rendered = render(REPO, (*PROCESSES, ledger))

    shutil.copytree(K8S, tmp_path / "k8s")
    (tmp_path / "k8s" / "sinks.yaml").write_text(rendered["deploy/k8s/sinks.yaml"])
    applied = {(doc["kind"], doc["metadata"]["name"]): doc for doc in kustomize(tmp_path / "k8s")}
    assert ("PodDisruptionBudget", ledger.job) in applied
    deployment = applied["Deployment", ledger.job]
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert tuple(container["args"]) == ledger.args
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "sink"

    (tmp_path / "compose").mkdir()
    assert compose_config_errors(rendered["docker-compose.yml"], tmp_path / "compose") == ""
    service = yaml.safe_load(rendered["docker-compose.yml"])["services"][ledger.name]
    assert service["command"] == list(ledger.args)
    after_the_last_sink = Settings().sink_metrics_port + len(SINKS)
    assert service["ports"] == [f"127.0.0.1:{after_the_last_sink}:{ledger.container_port}"]
    assert "mailcatcher" in service["depends_on"]
    scrape = yaml.safe_load(rendered["deploy/compose/prometheus.yml"])["scrape_configs"]
    assert {"job_name": ledger.job, "static_configs": [{"targets": [f"{ledger.name}:8082"]}]} in scrape

    rules = [rule for group in yaml.safe_load(rendered["deploy/prometheus/alerts.yaml"])["groups"]
             for rule in group["rules"] if rule["labels"].get("sink") == "ledger"]
    assert [rule["expr"] for rule in rules] == [f'absent(up{{job="{ledger.job}"}} == 1)']
    assert "the ledger stops growing" in rules[0]["annotations"]["description"]
    (tmp_path / "promtool").mkdir()
    tested = promtool_test_rules(rendered["deploy/prometheus/alerts.yaml"],
                                 rendered["deploy/prometheus/alerts.test.yaml"], tmp_path / "promtool")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert f'up{{job="{ledger.job}"' in rendered["deploy/prometheus/alerts.test.yaml"]

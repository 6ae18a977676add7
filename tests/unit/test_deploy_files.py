"""``sendpromptly deploy-files`` on a copy of the deploy files: ``--check`` names what is out of date
and says how to fix it, a run brings it up to date keeping the hand-written parts, and a file whose
markers are gone is refused with what to put back."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from sendpromptly.cli import main
from sendpromptly.deploy_files import TARGETS
from sendpromptly.deploy_files.layout import BEGIN
from tests.support.tools import REPO


def copy_of_the_deploy_files(root: Path) -> Path:
    for target in TARGETS:
        (root / target.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / target.path, root / target.path)
    return root


def deploy_files(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["deploy-files", "--root", str(root), *args])
    return result.exit_code, result.output


def test_check_names_a_file_edited_by_hand_and_a_run_restores_it(tmp_path: Path) -> None:
    root = copy_of_the_deploy_files(tmp_path)
    assert deploy_files(root, "--check") == (0, "")
    compose = root / "docker-compose.yml"
    edited = compose.read_text().replace('command: ["sink", "audit"]', 'command: ["sink", "audit", "-v"]')
    compose.write_text(edited.replace("name: sendpromptly\n", "name: mine\n"))
    (root / "deploy/k8s/sinks.yaml").unlink()

    code, output = deploy_files(root, "--check")
    assert code == 1
    assert "out of date: deploy/k8s/sinks.yaml, docker-compose.yml; run `make deploy-files`" in output

    assert deploy_files(root) == (0, "wrote deploy/k8s/sinks.yaml\nwrote docker-compose.yml\n")
    assert (root / "deploy/k8s/sinks.yaml").read_text() == (REPO / "deploy/k8s/sinks.yaml").read_text()
    # The hand-written part keeps its edit; the rendered one is the registry's again.
    assert compose.read_text() == (REPO / "docker-compose.yml").read_text().replace(
        "name: sendpromptly\n", "name: mine\n")
    assert deploy_files(root, "--check") == (0, "")


def test_a_file_without_its_markers_is_refused_saying_what_to_put_back(tmp_path: Path) -> None:
    root = copy_of_the_deploy_files(tmp_path)
    rules = root / "deploy/prometheus/alerts.yaml"
    rules.write_text("".join(line for line in rules.read_text().splitlines(keepends=True)
                             if line.strip() != BEGIN))

    code, output = deploy_files(root)
    assert code == 1
    assert "deploy/prometheus/alerts.yaml needs exactly one line" in output
    assert BEGIN in output

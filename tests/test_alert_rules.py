"""The alert rules of deploy/prometheus/ are valid, and each fires when it should and not before
(``promtool test rules`` on deploy/prometheus/alerts.test.yaml)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.support.tools import REPO, installed_tool, promtool_test_rules

RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts.test.yaml"


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([installed_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_rules_and_their_templates_are_valid() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_fires_when_it_should_and_not_before(tmp_path: Path) -> None:
    tested = promtool_test_rules(RULES.read_text(), RULE_TESTS.read_text(), tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested quiet"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_runbook() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    runbooks = set(re.findall(r"^### (\S+)$", (REPO / "docs" / "operations.md").read_text(), re.MULTILINE))
    assert alerts - runbooks == set(), "alerts without a runbook in docs/operations.md"

"""Command-line tools the deployment tests run, as scripts/test-tools.sh installs them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".run" / "tools" / "bin"


def installed_tool(name: str) -> str:
    """The path of ``name`` (in .run/tools/bin or on PATH). Missing, the test is skipped saying how
    to install it, except in CI, where `make test` installs it, and so the test fails."""
    found = shutil.which(name, path=f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found:
        return found
    why = f"{name} is not installed: run scripts/test-tools.sh (make test does)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def promtool_test_rules(rules: str, rule_tests: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of ``rule_tests`` (which loads ``alerts.yaml``) against ``rules``
    with their annotations set aside: those are prose for people (``promtool check rules`` checks
    their templates), and promtool would compare them word for word."""
    loaded = yaml.safe_load(rules)
    for group in loaded["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (workdir / "alerts.yaml").write_text(yaml.safe_dump(loaded))
    (workdir / "alerts.test.yaml").write_text(rule_tests)
    return subprocess.run([installed_tool("promtool"), "test", "rules", "alerts.test.yaml"], cwd=workdir,
                          capture_output=True, text=True, timeout=120, check=False)

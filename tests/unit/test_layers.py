"""Imports point one way: the CLI on top, then the agents, the sinks and the gateway side by side
(never importing each other), the store, the shared low pieces (``common``), the topics. The
contract is pyproject.toml's ``[tool.importlinter]``; import-linter checks it here."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def test_no_package_imports_a_layer_above_it_or_a_process_beside_it() -> None:
    # Not cached: the cache would be written into the work tree, and the check takes well under 1 s.
    result = subprocess.run([Path(sys.executable).with_name("lint-imports"), "--no-cache", "--no-logo"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (
        "an import points the wrong way; move the imported piece down to the layer where both can "
        "reach it (pyproject.toml [tool.importlinter] lists the layers):\n" + result.stdout + result.stderr)


def test_every_package_of_the_project_has_its_layer() -> None:
    project = _pyproject()
    installed = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {name.removesuffix("*") for name in installed}
    linter = project["tool"]["importlinter"]
    (layers,) = [contract["layers"] for contract in linter["contracts"] if contract["id"] == "layers"]
    layered = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    assert set(linter["root_packages"]) == packages, "import-linter must see every package that is installed"
    assert layered == packages, "each package must sit in one layer of the contract"

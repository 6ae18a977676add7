"""Command-line tools the deployment tests run, as scripts/test-tools.sh installs them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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

"""The lock files pin what pyproject.toml asks for: an edit of its dependencies without ``make lock``
fails here, so images and virtualenvs never install something other than what was declared."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(text) for text in PROJECT["dependencies"]]
DEV = RUNTIME + [Requirement(text) for extra in ("test", "dev")
                 for text in PROJECT["optional-dependencies"][extra]]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
DIRECT = "sendpromptly (pyproject.toml)"


def pins(lock: str) -> tuple[dict[str, str], set[str]]:
    """The lock's pinned versions by name, and the names pinned because pyproject.toml asks for them."""
    versions: dict[str, str] = {}
    direct: set[str] = set()
    name = ""
    for line in (REPO / "requirements" / lock).read_text().splitlines():
        if pinned := PIN.match(line):
            name = canonicalize_name(pinned[1])
            versions[name] = pinned[2]
        elif line.lstrip("# ").removeprefix("via ").strip() == DIRECT:
            direct.add(name)
    return versions, direct


def mismatches(lock: str, declared: list[Requirement]) -> list[str]:
    versions, direct = pins(lock)
    wanted = {canonicalize_name(requirement.name): requirement for requirement in declared}
    found = [f"{requirement} is pinned at {versions.get(name, 'nothing')}"
             for name, requirement in wanted.items()
             if name not in versions or not requirement.specifier.contains(versions[name], prereleases=True)]
    found += [f"{name} is pinned for pyproject.toml, which no longer asks for it"
              for name in direct - set(wanted)]
    return found


@pytest.mark.parametrize(("lock", "declared"), [("runtime.txt", RUNTIME), ("dev.txt", DEV)])
def test_the_lock_pins_every_declared_dependency_within_its_range(lock: str,
                                                                   declared: list[Requirement]) -> None:
    assert mismatches(lock, declared) == [], f"pyproject.toml changed: run `make lock` (requirements/{lock})"


def test_the_image_and_the_virtualenv_install_the_same_versions() -> None:
    runtime, _ = pins("runtime.txt")
    dev, _ = pins("dev.txt")
    differ = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert differ == {}


def test_a_dependency_pyproject_no_longer_declares_or_a_range_the_pin_left_is_seen() -> None:
    narrowed = [Requirement("aiohttp<1") if r.name == "aiohttp" else r for r in RUNTIME if r.name != "click"]
    assert sorted(mismatches("runtime.txt", narrowed)) == [
        f"aiohttp<1 is pinned at {pins('runtime.txt')[0]['aiohttp']}",
        "click is pinned for pyproject.toml, which no longer asks for it",
    ]

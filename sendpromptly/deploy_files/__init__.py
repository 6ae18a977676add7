"""What the deploy files say per process, rendered from ``sendpromptly/processes.py``.

Users apply the deploy files with kubectl and compose without running our code, so what this
renders is checked in: whole files under a "generated" header, and marked regions of hand-written
files. Everything else in the deploy files selects the processes by label or regex (the
PodMonitor, the instance-down alerts, the dashboard) and needs nothing rendered.
``sendpromptly deploy-files`` (``make deploy-files``) writes them; with ``--check``, and in
``tests/test_deployment.py``, a file that differs from what the registry renders now fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sendpromptly.deploy_files import alerts, compose, kubernetes
from sendpromptly.deploy_files.layout import MarkersMissing, into_region, whole_file
from sendpromptly.processes import PROCESSES, Process

__all__ = ["TARGETS", "MarkersMissing", "Target", "render", "stale", "write"]


@dataclass(frozen=True)
class Target:
    path: str
    render: Callable[[tuple[Process, ...]], str]
    # True: rendered into the marked region of a hand-written file; False: the whole file.
    region: bool


TARGETS = (
    Target("deploy/k8s/sinks.yaml", kubernetes.sink_workloads, region=False),
    Target("docker-compose.yml", compose.sink_services, region=True),
    Target("deploy/compose/prometheus.yml", compose.scrape_jobs, region=True),
    Target("deploy/prometheus/alerts.yaml", alerts.sink_down_rules, region=True),
    Target("deploy/prometheus/alerts.test.yaml", alerts.sink_down_tests, region=True),
)


def render(root: Path, processes: tuple[Process, ...] = PROCESSES) -> dict[str, str]:
    """Every target's whole text as ``processes`` render it, by its path under ``root`` (a
    region's file is read from there, its hand-written parts kept)."""
    rendered = {}
    for target in TARGETS:
        text = target.render(processes)
        rendered[target.path] = (into_region((root / target.path).read_text(), text, target.path)
                                 if target.region else whole_file(text))
    return rendered


def stale(root: Path, processes: tuple[Process, ...] = PROCESSES) -> dict[str, str]:
    """The targets under ``root`` whose text differs from what ``processes`` render, with the text
    they should have."""
    return {path: text for path, text in render(root, processes).items()
            if not (root / path).exists() or (root / path).read_text() != text}


def write(root: Path) -> list[str]:
    """Bring the targets under ``root`` up to date; returns the paths it wrote."""
    changed = stale(root)
    for path, text in changed.items():
        (root / path).write_text(text)
    return list(changed)

"""The long-running processes of SendPromptly, declared once.

Everything that runs or watches them is checked against this list by ``tests/test_deployment.py``:
``make up`` (``scripts/stack.sh`` reads it through ``sendpromptly processes``), ``docker-compose.yml``,
``deploy/k8s/``, the alert rules, the Grafana dashboard and the docs. Adding a sink here and
forgetting one of those places fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config import PREFIX, Settings


@dataclass(frozen=True)
class Process:
    """One long-running process: ``sendpromptly <args>``, serving ``/healthz``, ``/readyz`` and
    ``/metrics`` on the port of ``port_setting``."""

    name: str
    args: tuple[str, ...]
    # The Settings field of the port its health and metrics server listens on.
    port_setting: str
    # Its consumer group, before SENDPROMPTLY_TOPIC_PREFIX (None: it consumes nothing).
    group: str | None
    # For a sink, the module whose ``build(pool, settings)`` gives its handlers; imported only by
    # that sink's process, so that each process registers only the metrics it serves.
    sink_module: str | None = None

    @property
    def job(self) -> str:
        """Its name in Kubernetes (``app.kubernetes.io/name``) and its Prometheus job."""
        return f"sendpromptly-{self.name}"

    @property
    def port_variable(self) -> str:
        return PREFIX + self.port_setting.upper()


def _sink(name: str, module: str) -> Process:
    return Process(name=f"sink-{name}", args=("sink", name), port_setting="sink_metrics_port",
                   group=f"sendpromptly-sink-{name}", sink_module=module)


PROCESSES: tuple[Process, ...] = (
    Process(name="gateway", args=("gateway",), port_setting="http_port", group=None),
    Process(name="agents", args=("agents",), port_setting="agents_web_port", group="sendpromptly-agents"),
    _sink("read-model", "sinks.read_model"),
    _sink("callbacks", "sinks.callbacks"),
    _sink("alerts", "sinks.alerts"),
    _sink("audit", "sinks.audit_log"),
)

SINKS: dict[str, Process] = {process.args[1]: process for process in PROCESSES if process.sink_module}


def one_host_ports(settings: Settings) -> dict[str, int]:
    """Each process's port when all run on one host (``make up``, the tests): the gateway's and the
    agents' own settings, and the sinks' from ``sink_metrics_port`` upwards in the order above."""
    ports: dict[str, int] = {}
    sinks_seen = 0
    for process in PROCESSES:
        port = getattr(settings, process.port_setting)
        if process.sink_module:
            port, sinks_seen = port + sinks_seen, sinks_seen + 1
        ports[process.name] = port
    return ports

"""The long-running processes of SendPromptly, declared once.

Everything that runs or watches them follows this list: ``make up`` (``scripts/stack.sh`` reads it
through ``sendpromptly processes``) and the ``sink`` command read it; ``make deploy-files``
(``sendpromptly/deploy_files/``) renders from it what must name each process in the deploy files
(each sink's Kubernetes workload, its compose service, the compose scrape jobs, the
``SendPromptlySinkDown`` rules and their tests); the rest selects sinks by label or regex. Adding
a sink is a ``sink_process(...)`` entry here, its module under ``sinks/``, then ``make deploy-files``.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config import PREFIX, Settings


@dataclass(frozen=True)
class SinkSpec:
    """What a sink's process adds: its code, and what the deploy files say about it."""

    # The module whose ``build(pool, settings)`` gives its handlers; imported only by that sink's
    # process, so that each process registers only the metrics it serves.
    module: str
    # What it does and why several replicas are safe (a sentence or two, said above its
    # Kubernetes Deployment).
    does: str
    # What stops while no replica runs (said by its SendPromptlySinkDown alert).
    when_down: str
    # It sends email: docker-compose.yml starts it after the mail catcher.
    sends_mail: bool = False


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
    # What a sink adds (None: not a sink).
    sink: SinkSpec | None = None

    @property
    def job(self) -> str:
        """Its name in Kubernetes (``app.kubernetes.io/name``) and its Prometheus job."""
        return f"sendpromptly-{self.name}"

    @property
    def port_variable(self) -> str:
        return PREFIX + self.port_setting.upper()

    @property
    def container_port(self) -> int:
        """The port it listens on in its own container or pod (the deploy files): its setting's
        default."""
        port: int = getattr(Settings(), self.port_setting)
        return port


def sink_process(name: str, sink: SinkSpec) -> Process:
    """A sink's process: ``sendpromptly sink <name>``, named ``sink-<name>``, its consumer group
    ``sendpromptly-sink-<name>``."""
    return Process(name=f"sink-{name}", args=("sink", name), port_setting="sink_metrics_port",
                   group=f"sendpromptly-sink-{name}", sink=sink)


PROCESSES: tuple[Process, ...] = (
    Process(name="gateway", args=("gateway",), port_setting="http_port", group=None),
    Process(name="agents", args=("agents",), port_setting="agents_web_port", group="sendpromptly-agents"),
    sink_process("read-model", SinkSpec(
        "sinks.read_model",
        does="the flows and incidents tables the API reads, from the audit and incidents topics. Several "
             "replicas are safe: they split the partitions, and every upsert is version-checked, so a "
             "record handled twice (after a rebalance) changes nothing.",
        when_down="the flow and incident read model in PostgreSQL is no longer updated, so the API and "
                  "console show stale state")),
    sink_process("callbacks", SinkSpec(
        "sinks.callbacks",
        does="repair callbacks to customers' URLs, the payload snapshots they carry, replay outcomes, and "
             "the hourly purge of snapshots older than 30 days (the purge runs here, in every replica: it "
             "deletes nothing twice). Several replicas are safe: each delivery is claimed with a lease in "
             "PostgreSQL before an attempt, so one replica makes it.",
        when_down="repair callbacks are not delivered (nor retried), payload snapshots are not stored, and "
                  "the hourly snapshot purge does not run")),
    sink_process("alerts", SinkSpec(
        "sinks.alerts",
        does="email and Slack alerts for incidents and exhausted callbacks; needs SENDPROMPTLY_SMTP_URL "
             "(config.env or the Secret) for email. Several replicas are safe: each alert is claimed with "
             "a lease in PostgreSQL before it is sent, so one replica sends it.",
        when_down="customers are not told about incidents by email or Slack, nor about repair callbacks "
                  "that ran out of retries",
        sends_mail=True)),
    sink_process("audit", SinkSpec(
        "sinks.audit_log",
        does="the hash-chained audit log, from the audit topic (keyed by project, so a project's events "
             "arrive in order on one partition). Several replicas are safe: an append takes its chain's "
             "advisory lock and skips an event id already there, so even two replicas briefly holding "
             "one partition during a rebalance keep every chain whole.",
        when_down="the audit log stops growing: operator actions and flow transitions wait in Kafka and "
                  "are missing from GET .../audit-log and flow timelines")),
)

SINKS: dict[str, Process] = {process.args[1]: process for process in PROCESSES if process.sink}


def one_host_ports(settings: Settings, processes: tuple[Process, ...] = PROCESSES) -> dict[str, int]:
    """Each process's port when all run on one host (``make up``, the tests, compose's published
    ports): the gateway's and the agents' own settings, and the sinks' from ``sink_metrics_port``
    upwards in the order above."""
    ports: dict[str, int] = {}
    sinks_seen = 0
    for process in processes:
        port = getattr(settings, process.port_setting)
        if process.sink:
            port, sinks_seen = port + sinks_seen, sinks_seen + 1
        ports[process.name] = port
    return ports

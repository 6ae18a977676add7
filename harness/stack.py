"""A whole SendPromptly stack (gateway, agents, sinks) on the test services, isolated by a topic
prefix and a database of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common.keyring import Keyring
from harness.processes import ManagedProcess, free_port
from sendpromptly.processes import SINKS

# One keyring per test session: fresh random keys, never real ones.
TEST_SECRET_KEYS = Keyring.generate_spec("test-secrets-1")
TEST_SNAPSHOT_KEYS = Keyring.generate_spec("test-snapshots-1")


# The sink processes a test stack may run (``sendpromptly sink <name>``): all there are.
SINK_NAMES = tuple(SINKS)
# What a test's stack runs unless it asks for more: the sinks behind the read APIs. The callbacks
# and alerts sinks reach out to peers a test must set up, so the tests of those ask for them.
DEFAULT_SINKS = ("read-model", "audit")


@dataclass
class Stack:
    env: dict[str, str]
    gateway: ManagedProcess
    agents: ManagedProcess
    sinks: dict[str, ManagedProcess]
    base_url: str
    agents_url: str
    sink_urls: dict[str, str]

    @property
    def read_model(self) -> ManagedProcess:
        return self.sinks["read-model"]

    @property
    def processes(self) -> list[ManagedProcess]:
        return [self.gateway, self.agents, *self.sinks.values()]

    def start(self) -> None:
        for process in self.processes:
            process.start()
        self.gateway.wait_ready(self.base_url + "/readyz")
        self.agents.wait_ready(self.agents_url + "/readyz")
        for name, process in self.sinks.items():
            process.wait_ready(self.sink_urls[name] + "/readyz")

    def stop(self) -> None:
        # Signal every process first, then wait: they shut down side by side, not one by one.
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.log_tail()}" for p in self.processes)


def stack_env(*, kafka_bootstrap: str, database_url: str, topic_prefix: str, workdir: Path,
              extra: dict[str, str] | None = None) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SENDPROMPTLY_")}
    return {
        **inherited,
        "SENDPROMPTLY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SENDPROMPTLY_DATABASE_URL": database_url,
        "SENDPROMPTLY_TOPIC_PREFIX": topic_prefix,
        "SENDPROMPTLY_FLOW_PARTITIONS": "2",
        "SENDPROMPTLY_AGENTS_DATADIR": str(workdir / "agents-data"),
        "SENDPROMPTLY_ALLOW_PRIVATE_TARGETS": "1",
        "SENDPROMPTLY_LOG_LEVEL": "INFO",
        "SENDPROMPTLY_SECRET_KEYS": TEST_SECRET_KEYS,
        "SENDPROMPTLY_SNAPSHOT_KEYS": TEST_SNAPSHOT_KEYS,
        **(extra or {}),
    }


def build_stack(env: dict[str, str], workdir: Path, sinks: tuple[str, ...] = SINK_NAMES) -> Stack:
    unknown = set(sinks) - set(SINK_NAMES)
    assert not unknown, f"no such sinks: {unknown}"
    http, agents = free_port(), free_port()
    sink_ports = {name: free_port() for name in sinks}

    def process(name: str, args: list[str], port_var: str, port: int) -> ManagedProcess:
        return ManagedProcess(name, args, {**env, port_var: str(port)}, workdir / f"{name}.log")

    return Stack(
        env=env,
        gateway=process("gateway", ["gateway"], "SENDPROMPTLY_HTTP_PORT", http),
        agents=process("agents", ["agents"], "SENDPROMPTLY_AGENTS_WEB_PORT", agents),
        sinks={name: process(name, ["sink", name], "SENDPROMPTLY_SINK_METRICS_PORT", port)
               for name, port in sink_ports.items()},
        base_url=f"http://127.0.0.1:{http}",
        agents_url=f"http://127.0.0.1:{agents}",
        sink_urls={name: f"http://127.0.0.1:{port}" for name, port in sink_ports.items()},
    )


@contextmanager
def lone_gateway(env: dict[str, str], workdir: Path, name: str = "gateway", *,
                 ready_path: str = "/readyz") -> Iterator[tuple[ManagedProcess, str]]:
    """A gateway process alone (no agents, no sinks) on ``env``'s services, answering ``ready_path``
    (``/healthz`` for one whose services are away); yields it and its base URL, and stops it
    afterwards."""
    port = free_port()
    gateway = ManagedProcess(name, ["gateway"], {**env, "SENDPROMPTLY_HTTP_PORT": str(port)},
                             workdir / f"{name}.log")
    gateway.start()
    try:
        url = f"http://127.0.0.1:{port}"
        gateway.wait_ready(url + ready_path)
        yield gateway, url
    finally:
        gateway.stop()

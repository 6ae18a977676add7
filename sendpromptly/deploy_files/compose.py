"""The parts of the compose stack that name each process: the sinks' services in
``docker-compose.yml`` and the scrape jobs in ``deploy/compose/prometheus.yml``."""

from __future__ import annotations

import json

from common.config import Settings
from sendpromptly.processes import Process, one_host_ports


def sink_services(processes: tuple[Process, ...]) -> str:
    """One service per sink (``<<: *sink`` in docker-compose.yml says what they share), published
    on the host port ``make up`` gives it."""
    host_ports = one_host_ports(Settings(), processes)
    services = []
    for process in processes:
        if process.sink is None:
            continue
        service = (f"{process.name}:\n"
                   "  <<: *sink\n"
                   f"  command: {json.dumps(list(process.args))}\n"
                   "  ports:\n"
                   f'    - "127.0.0.1:{host_ports[process.name]}:{process.container_port}"\n')
        if process.sink.sends_mail:
            service += ("  depends_on:\n"
                        "    <<: *after-setup\n"
                        "    mailcatcher:\n"
                        "      condition: service_healthy\n")
        services.append(service)
    return "\n".join(services)


def scrape_jobs(processes: tuple[Process, ...]) -> str:
    """One job per process, named as the alert rules and the dashboard expect, at its compose
    service's port."""
    return "".join(f"- job_name: {process.job}\n"
                   "  static_configs:\n"
                   f'    - targets: ["{process.name}:{process.container_port}"]\n'
                   for process in processes)

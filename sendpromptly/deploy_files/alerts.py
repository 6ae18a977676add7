"""The ``SendPromptlySinkDown`` rules of ``deploy/prometheus/alerts.yaml`` and their cases in
``alerts.test.yaml``: one rule per sink, because ``absent()`` cannot tell which job of a regex
has vanished."""

from __future__ import annotations

import textwrap

from sendpromptly.processes import Process

ALERT = "SendPromptlySinkDown"


def sink_down_rules(processes: tuple[Process, ...]) -> str:
    rules = []
    for process in processes:
        if process.sink is None:
            continue
        name = process.args[1]
        description = textwrap.fill(
            f"No target in job {process.job} is reachable: {process.sink.when_down}. Nothing is lost "
            f"(events wait in Kafka). Check the {process.job} pods, their logs (database unreachable, "
            "migrations missing) and events.",
            # Under 100 characters a line once in alerts.yaml's region (indented 6 more).
            width=94, initial_indent=" " * 6, subsequent_indent=" " * 6, break_long_words=False,
            break_on_hyphens=False)
        rules.append(f"- alert: {ALERT}\n"
                     f'  expr: absent(up{{job="{process.job}"}} == 1)\n'
                     "  for: 5m\n"
                     "  labels:\n"
                     "    severity: critical\n"
                     f"    sink: {name}\n"
                     "  annotations:\n"
                     f'    summary: "Sink {name} has no instance up"\n'
                     "    description: >-\n"
                     f"{description}\n")
    return "\n".join(rules)


def sink_down_tests(processes: tuple[Process, ...]) -> str:
    """A case per sink: every sink up for 10 minutes, then that one goes, and only its rule fires;
    and one where no sink was ever scraped, and every rule fires."""
    sinks = [process for process in processes if process.sink is not None]

    def series(process: Process, values: str) -> str:
        return (f"""    - series: 'up{{job="{process.job}", instance="{process.name}-1"}}'\n"""
                f"      values: '{values}'\n")

    def firing(among: list[Process]) -> str:
        return ("    - eval_time: 20m\n"
                f"      alertname: {ALERT}\n"
                "      exp_alerts:\n"
                + "".join(f"        - exp_labels: {{severity: critical, sink: {process.args[1]}}}\n"
                          for process in among))

    quiet = f"    - {{eval_time: 4m, alertname: {ALERT}, exp_alerts: []}}\n"
    cases = [f"# {gone.name} goes after 10 minutes; the other sinks stay.\n"
             "- interval: 1m\n"
             "  input_series:\n"
             + "".join(series(process, "1x10 0x20" if process is gone else "1x30") for process in sinks)
             + "  alert_rule_test:\n" + quiet + firing([gone])
             for gone in sinks]
    cases.append("# No sink was ever scraped.\n"
                 "- interval: 1m\n"
                 "  input_series:\n"
                 "    - series: 'up{job=\"sendpromptly-gateway\", instance=\"gateway-1\"}'\n"
                 "      values: '1x30'\n"
                 "  alert_rule_test:\n" + quiet + firing(sinks))
    return "\n".join(cases)

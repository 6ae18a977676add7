"""``sendpromptly send --file`` end to end: the real CLI, as a subprocess, against a lone gateway on
real Kafka and PostgreSQL. Each accepted line reaches its topic once, however often the file is
sent; the summary names every rejected line; progress never mixes into stdout."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.kafka import read_topic
from harness.services import Services
from tests.conftest import ProjectKey
from tests.support.cli import Ran, clean_env, sendpromptly
from topics import RECEIPTS, RESULTS, Receipt, Result, decode

pytestmark = pytest.mark.e2e


def receipt(key: str, reference: str, **fields: Any) -> dict[str, Any]:
    return {"idempotency_key": key, "reference": reference, "event_type": "invoice.paid",
            "effect_type": "grant_access", **fields}


def result(key: str, reference: str, status: str = "succeeded", **fields: Any) -> dict[str, Any]:
    return {"kind": "result", "idempotency_key": key, "reference": reference, "status": status, **fields}


def jsonl(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def env_for(gateway_url: str, project: ProjectKey) -> dict[str, str]:
    return clean_env(SENDPROMPTLY_URL=gateway_url, SENDPROMPTLY_API_KEY=project.api_key)


async def keys_on(services: Services, topic_prefix: str) -> tuple[Counter[str], Counter[str]]:
    """How often each idempotency_key is on the receipts topic, and on the results topic."""
    receipts = await read_topic(services.kafka_bootstrap, RECEIPTS.name(topic_prefix))
    results = await read_topic(services.kafka_bootstrap, RESULTS.name(topic_prefix))
    return (Counter(decode(Receipt, value).idempotency_key for _, value in receipts),
            Counter(decode(Result, value).idempotency_key for _, value in results))


async def test_each_line_is_answered_and_a_second_run_accepts_nothing_new(
        gateway_url: str, project: ProjectKey, services: Services, topic_prefix: str, tmp_path: Path) -> None:
    signals = jsonl(tmp_path / "signals.jsonl", [
        receipt("r-1", "inv_1"),
        receipt("r-2", "inv_2", timeout_seconds=120),
        result("res-1", "inv_1"),
        {"idempotency_key": "r-bad", "reference": "inv_3"},  # event_type and effect_type missing
        receipt("r-1", "inv_1"),  # line 1 again: the same signal, a replay
        receipt("r-2", "inv_other"),  # line 2's key for another signal
        result("res-2", "inv_2", "failed", detail="card declined"),
    ])
    env = env_for(gateway_url, project)

    first = sendpromptly("send", "--file", str(signals), "--kind", "receipt", env=env)

    assert first.code == 1, first.err
    summary, *rejections = first.out.splitlines()
    assert summary == "7 of 7 signals answered: 4 accepted, 1 replayed, 2 rejected"
    assert rejections[0] == ("line 4 (idempotency_key r-bad): Invalid fields (422): These fields are "
                             "invalid: effect_type, event_type.")
    assert {line.split(":")[0].strip() for line in rejections[1:3]} == {"effect_type", "event_type"}
    assert rejections[3].startswith("line 6 (idempotency_key r-2): Idempotency-Key reused (422): This "
                                    "idempotency_key was used with a different signal")
    assert len(rejections) == 4
    # Not a terminal: one plain line per batch on stderr. File order: receipts, result, receipts, result.
    *progress, error = first.err.splitlines()
    assert [line.split(":")[0] for line in progress] == ["batch 1/4", "batch 2/4", "batch 3/4", "batch 4/4"]
    assert error.startswith("Error: 2 line(s) rejected (listed with the summary): fix them")
    assert "batch 3/4: lines 4-6 (receipts): 0 accepted, 1 replayed, 2 rejected" in first.err
    expected = (Counter({"r-1": 1, "r-2": 1}), Counter({"res-1": 1, "res-2": 1}))
    assert await keys_on(services, topic_prefix) == expected

    again = sendpromptly("send", "--file", str(signals), "--kind", "receipt", "--json", env=env)

    assert again.code == 1, again.err
    said = again.json()
    assert {k: said[k] for k in ("accepted", "replayed", "rejected", "not_sent")} == {
        "accepted": 0, "replayed": 5, "rejected": 2, "not_sent": 0}
    assert [(r["line"], r["idempotency_key"], r["problem"]["status"]) for r in said["rejections"]] == [
        (4, "r-bad", 422), (6, "r-2", 422)]
    assert await keys_on(services, topic_prefix) == expected, "nothing reached Kafka twice"


def run_with_stderr_on_a_terminal(args: list[str], env: dict[str, str]) -> Ran:
    """The command with stdout piped and stderr a terminal (a pseudo-terminal), as when a person
    runs ``sendpromptly send ... > summary.txt``."""
    controller, terminal = pty.openpty()
    seen: list[bytes] = []

    def drain() -> None:
        try:
            while chunk := os.read(controller, 65536):
                seen.append(chunk)
        except OSError:  # EIO: the command and every copy of the terminal's end are gone
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with subprocess.Popen([sys.executable, "-m", "sendpromptly", *args], env=env, stdout=subprocess.PIPE,
                          stderr=terminal, text=True) as process:
        os.close(terminal)
        out, _ = process.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(controller)
    return Ran(process.returncode, out, b"".join(seen).decode(errors="replace"))


async def test_a_long_file_goes_in_several_batches_with_a_bar_that_stays_off_stdout(
        gateway_url: str, project: ProjectKey, services: Services, topic_prefix: str, tmp_path: Path) -> None:
    # 2400 small receipts (cut at 1000), then 100 of 30 KB each: about 3 MB, cut at 1 MiB.
    small = [receipt(f"s-{n}", f"inv_{n}") for n in range(2400)]
    large = [receipt(f"l-{n}", f"inv_l{n}", payload={"pad": "x" * 30_000}) for n in range(100)]
    signals = jsonl(tmp_path / "signals.jsonl", [*small, *large])
    env = env_for(gateway_url, project)
    args = ["send", "--file", str(signals), "--kind", "receipt"]

    shown = run_with_stderr_on_a_terminal(args, env)

    assert shown.code == 0, shown.err
    assert shown.out == "2500 of 2500 signals answered: 2500 accepted, 0 replayed, 0 rejected\n"
    assert "sending" in shown.err and "2500/2500" in shown.err, "the bar, on the terminal"
    on_kafka, _ = await keys_on(services, topic_prefix)
    assert len(on_kafka) == 2500 and set(on_kafka.values()) == {1}

    piped = sendpromptly(*args, env=env)

    assert piped.code == 0, piped.err
    assert piped.out == "2500 of 2500 signals answered: 0 accepted, 2500 replayed, 0 rejected\n"
    batches = piped.err.splitlines()
    assert batches[0].startswith("batch 1/") and ": lines 1-1000 (receipts): 0 accepted, 1000 replayed" in (
        batches[0])
    assert ": lines 1001-2000 (receipts)" in batches[1] and ": lines 2001-" in batches[2]
    assert len(batches) >= 5, "the large lines cannot fit in one or two requests of 1 MiB"
    assert await keys_on(services, topic_prefix) == (on_kafka, Counter())


async def test_a_file_with_a_malformed_line_or_a_line_without_a_key_sends_nothing(
        gateway_url: str, project: ProjectKey, services: Services, topic_prefix: str, tmp_path: Path) -> None:
    signals = jsonl(tmp_path / "signals.jsonl", [
        receipt("r-1", "inv_1"),
        '{"idempotency_key": "r-2", "reference": ',
        {"reference": "inv_3", "event_type": "invoice.paid", "effect_type": "grant_access"},
        "",
        result("res-1", "inv_1"),
    ])

    env = env_for(gateway_url, project)
    refused = sendpromptly("send", "--file", str(signals), "--kind", "receipt", env=env)

    assert refused.code == 2 and refused.out == ""
    assert "nothing was sent; fix these lines and run it again:" in refused.err
    assert "line 2: not valid JSON: Expecting value at column" in refused.err
    assert "line 3: has no idempotency_key" in refused.err
    assert "line 1:" not in refused.err and "line 5:" not in refused.err
    assert await keys_on(services, topic_prefix) == (Counter(), Counter())


def test_without_an_api_key_it_says_which_variable_to_set(tmp_path: Path) -> None:
    signals = jsonl(tmp_path / "signals.jsonl", [receipt("r-1", "inv_1")])
    ran = sendpromptly("send", "--file", str(signals), "--kind", "receipt", env=clean_env())
    assert ran.code == 1 and "SENDPROMPTLY_API_KEY is not set" in ran.err

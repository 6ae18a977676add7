"""The ``sendpromptly`` command run as a subprocess, as an operator runs it: its exit code and output,
and an operator's token made by ``sendpromptly operator create``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from typing import Any

from harness.stack import Stack


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        (line,) = self.out.splitlines()
        return json.loads(line)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


def sendpromptly(*args: str, env: dict[str, str]) -> Ran:
    done = subprocess.run([sys.executable, "-m", "sendpromptly", *args], env=env, capture_output=True,
                          text=True, timeout=60)
    return Ran(done.returncode, done.stdout, done.stderr)


def clean_env(**settings: str) -> dict[str, str]:
    # The test run's own SENDPROMPTLY_* (Kafka, database) must not leak into the commands.
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SENDPROMPTLY_")}, **settings}


@dataclass(frozen=True)
class Operator:
    email: str
    token: str


def bootstrap(database_url: str, *args: str) -> Ran:
    """``sendpromptly operator ...``: straight to the database, as on a fresh install."""
    ran = sendpromptly("operator", *args, env=clean_env(SENDPROMPTLY_DATABASE_URL=database_url))
    assert ran.code == 0, ran.err
    return ran


def create_operator(database_url: str, email: str, *flags: str) -> Operator:
    created = bootstrap(database_url, "create", "--email", email, *flags, "--json").json()
    return Operator(created["email"], created["token"])


class Cli:
    """The operator commands as one operator, against one gateway."""

    def __init__(self, stack: Stack, operator: Operator):
        self.env = clean_env(SENDPROMPTLY_URL=stack.base_url, SENDPROMPTLY_OPERATOR_TOKEN=operator.token)

    def __call__(self, *args: str) -> Ran:
        return sendpromptly(*args, env=self.env)

    def ok(self, *args: str) -> Ran:
        ran = self(*args)
        assert ran.code == 0, f"sendpromptly {' '.join(args)} exited {ran.code}:\n{ran.err}"
        return ran

    def json(self, *args: str) -> Any:
        return self.ok(*args, "--json").json()


def api_get(stack: Stack, operator: Operator, path: str) -> Any:
    """What the API itself answers, read without the CLI."""
    authorization = {"Authorization": f"Bearer {operator.token}"}
    request = urllib.request.Request(stack.base_url + path, headers=authorization)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)

"""The real SendPromptly processes, started as subprocesses for end-to-end tests."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Below the kernel's ephemeral range (Linux 32768+, macOS 49152+). A port handed out by bind(0)
# comes from that range, and any outgoing connection (a client to Kafka, say) may take it as its
# local port before our server binds it: CI once lost an agents worker to EADDRINUSE that way.
_LISTEN_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port no one listens on, outside the ephemeral range, not handed out before in this run."""
    for port in random.sample(_LISTEN_PORTS, 200):
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port found in {_LISTEN_PORTS}: is something holding them all?")


class ManagedProcess:
    """One ``sendpromptly`` subcommand with its own log file; can be stopped, killed and restarted."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.argv = [sys.executable, "-m", "sendpromptly", *args]
        self.env = env
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal); None before."""
        return None if self._proc is None else self._proc.poll()

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM) without waiting; ``stop`` waits."""
        if self.alive:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive:
            return
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: no chance to flush, commit or say goodbye."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        """Wait until the process's log shows ``text``; fail early, with the log, if it dies. (On a
        port several processes share, a readiness probe may be answered by another of them.)"""
        deadline = time.monotonic() + timeout
        while text not in self.log_tail():
            if not self.alive:
                raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {text!r} after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        """Poll ``url`` until it answers 200; fail early, with the log, if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready at {url} after {timeout}s:\n{self.log_tail()}")

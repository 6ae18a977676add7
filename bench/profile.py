"""Sampling the gateway with py-spy while wrk drives it, and the top costs of what it recorded.

    .venv/bin/python -m bench.profile /tmp/gateway.raw     # summarise a recording made earlier

py-spy (``pip install py-spy``) writes collapsed stacks ("frame;frame;... count" per line); the
summary adds them up per package and per function: *self* (on top of the stack) and *inclusive*
(anywhere on it), each as a share of all samples. Coroutine stacks are often cut short at the
event loop, so self time is the figure to trust.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def start_recording(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy on ``pid`` and its subprocesses for ``seconds``, in the
    background. Only samples holding the GIL count: a gateway process is busy when it holds it, and
    threads waiting in librdkafka or libpq would otherwise look busy. Non-blocking: py-spy does not
    pause the process, so the load it sees stays real."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--format", "raw",
         "--output", str(output), "--subprocesses", "--function", "--gil", "--nonblocking", "--rate", "200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def summary(raw: Path, top: int = 30) -> str:
    own: Counter[str] = Counter()
    own_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        # The first frame names the process and thread (py-spy adds it with --subprocesses).
        frames = stack.split(";")[1:]
        total += count
        if frames:
            own[frames[-1]] += count
            own_package[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    rows = [f"{total} samples", "", "self %  package"]
    rows += [f"{100 * n / total:5.1f}  {package}" for package, n in own_package.most_common(top)]
    rows += ["", "self %  function"]
    rows += [f"{100 * n / total:5.1f}  {frame}" for frame, n in own.most_common(top)]
    rows += ["", "incl %  function"]
    rows += [f"{100 * n / total:5.1f}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(rows)


def _package(frame: str) -> str:
    """``aiohttp`` for "StreamWriter._writelines (aiohttp/http_writer.py:106)"; C code has no path."""
    location = frame.rpartition(" (")[2]
    return location.split("/", 1)[0] if "/" in location else location.split(":", 1)[0].rstrip(")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", type=Path, help="a py-spy --format raw recording")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summary(args.raw, args.top))


if __name__ == "__main__":
    main()

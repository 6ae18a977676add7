"""``sendpromptly send --file signals.jsonl``: a file of signals posted with a project's API key, in
batch requests, safe to run again.

The file is read and checked whole first (``sendpromptly.signal_file``); a line that is not a
signal refuses the file and nothing is sent. Each batch's Idempotency-Key is a digest of its
content (``IngestClient.send_batch``) and each line keeps its own ``idempotency_key``, so running
the same file again sends nothing twice: what was accepted comes back as replayed. Progress goes to
stderr (a bar on a terminal, a line per batch otherwise), the summary to stdout. Exit 0 when every
line was accepted or replayed, 1 when a line was rejected or a batch failed for good, 2 when the
file was refused.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import click

from sendpromptly.cli_operator_api import URL_OPTION, _echo_json
from sendpromptly.client import (
    KINDS,
    Answer,
    ClientError,
    Document,
    IngestClient,
    Kind,
    Retry,
    describe_problem,
)
from sendpromptly.signal_file import Batch, FileRefused, Signal, plan_batches, read_signals

API_KEY_ENV = "SENDPROMPTLY_API_KEY"
OUTCOMES = ("accepted", "replayed", "rejected")
SHOWN_PROBLEMS = 20  # of a refused file's lines; the rest are counted


@dataclass
class Tally:
    """What the batches sent so far came to: counts per outcome, and each rejected line with its
    problem document."""

    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[tuple[Signal, Document]] = field(default_factory=list)

    def add(self, batch: Batch, answer: Answer) -> Counter[str]:
        """Count one batch's answer; returns that batch's own counts."""
        counts: Counter[str] = Counter()
        for signal, result in zip(batch.signals, answer.doc["items"], strict=True):
            outcome = _outcome(result["outcome"], answer.replayed)
            counts[outcome] += 1
            if outcome == "rejected":
                self.rejected.append((signal, result["problem"]))
        self.counts.update(counts)
        return counts


def _outcome(said: str, batch_replayed: bool) -> str:
    # A replayed batch is the stored answer of the same batch sent before: what it calls accepted
    # was accepted by that earlier request, and is nothing new now.
    return "replayed" if batch_replayed and said == "accepted" else said


@dataclass(frozen=True)
class Failure:
    """The batch that failed for good, and why: neither it nor any later batch was sent (unless
    the error says its outcome is unknown: then it may have been)."""

    number: int
    batch: Batch
    error: ClientError


@click.command("send")
@click.option("--file", "source", type=click.File("rb"), required=True,
              help="JSON Lines, one signal a line: the single endpoint's body with its own "
                   "idempotency_key, and \"kind\" if not --kind ('-': stdin).")
@click.option("--kind", type=click.Choice(KINDS), help="The kind of the lines that carry no \"kind\".")
@click.option("--api-key", envvar=API_KEY_ENV, show_envvar=True,
              help="The project's API key (sk_...); better from the environment than on a command line.")
@URL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def send(source: BinaryIO, kind: Kind | None, api_key: str | None, url: str, as_json: bool) -> None:
    """Send a file of receipts and results in batches; running it again sends nothing twice."""
    try:
        signals = read_signals(source, kind)
    except FileRefused as refused:
        raise click.BadParameter(_refusal(refused.problems), param_hint="--file") from None
    if not signals:
        raise click.BadParameter("holds no signal: nothing to send.", param_hint="--file")
    try:
        client = IngestClient(url, _api_key(api_key), retry=Retry(on_retry=_say_retry))
    except ClientError as refused:
        raise click.BadParameter(str(refused), param_hint="--url") from None
    tally, failure = _send_all(client, plan_batches(signals))
    _summary(tally, failure, len(signals), as_json)
    if failure is not None:
        raise click.ClickException(_failed(failure))
    if tally.rejected:
        raise click.ClickException(
            f"{len(tally.rejected)} line(s) rejected (listed with the summary): fix them, with a new "
            "idempotency_key where one was reused, and run the file again; the rest come back as replayed.")


def _refusal(problems: list[str]) -> str:
    shown = problems[:SHOWN_PROBLEMS]
    more = len(problems) - len(shown)
    return "\n".join(["nothing was sent; fix these lines and run it again:", *shown,
                      *([f"... and {more} more line(s)"] if more else [])])


def _api_key(given: str | None) -> str:
    key = (given or "").strip()
    if not key:
        raise click.ClickException(f"{API_KEY_ENV} is not set and no --api-key given; use the project's "
                                   "API key (sk_...), e.g. from 'sendpromptly keys create'.")
    return key


def _say_retry(error: ClientError, wait: float, attempt: int) -> None:
    first_line = str(error).splitlines()[0]
    click.echo(f"{first_line}; attempt {attempt} in {wait:.1f} s, with the same Idempotency-Key", err=True)


def _send_all(client: IngestClient, batches: list[Batch]) -> tuple[Tally, Failure | None]:
    """Send the batches in order; stop at the first that fails for good (later lines may depend on
    it, as a result does on its receipt)."""
    tally = Tally()
    with _progress(sum(len(batch.signals) for batch in batches), len(batches)) as progress:
        for number, batch in enumerate(batches, start=1):
            try:
                answer = client.send_batch(batch.kind, batch.items)
            except ClientError as error:
                return tally, Failure(number, batch, error)
            progress(number, batch, tally.add(batch, answer))
    return tally, None


Progress = Callable[[int, Batch, Counter[str]], None]


@contextmanager
def _progress(lines: int, batches: int) -> Iterator[Progress]:
    """Where each sent batch is told, on stderr so that stdout stays the summary: a bar on a
    terminal, else one line per batch (for logs)."""
    if not sys.stderr.isatty():
        def line(number: int, batch: Batch, counts: Counter[str]) -> None:
            said = ", ".join(f"{counts[outcome]} {outcome}" for outcome in OUTCOMES)
            click.echo(f"batch {number}/{batches}: {_lines(batch)} ({batch.kind}s): {said}", err=True)

        yield line
        return
    with click.progressbar(length=lines, label="sending", file=sys.stderr, show_pos=True) as bar:
        yield lambda number, batch, counts: bar.update(len(batch.signals))


def _lines(batch: Batch) -> str:
    first, last = batch.signals[0].line, batch.signals[-1].line
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _summary(tally: Tally, failure: Failure | None, total: int, as_json: bool) -> None:
    counted = sum(tally.counts.values())
    if as_json:
        _echo_json({**{outcome: tally.counts[outcome] for outcome in OUTCOMES}, "not_sent": total - counted,
                    "rejections": [{"line": signal.line, "idempotency_key": signal.item["idempotency_key"],
                                    "problem": problem} for signal, problem in tally.rejected]})
        return
    said = ", ".join(f"{tally.counts[outcome]} {outcome}" for outcome in OUTCOMES)
    not_sent = f", {total - counted} not sent" if failure is not None else ""
    click.echo(f"{counted} of {total} signals answered: {said}{not_sent}")
    for signal, problem in tally.rejected:
        title, *fields = describe_problem(problem)
        click.echo(f"line {signal.line} (idempotency_key {signal.item['idempotency_key']}): {title}")
        for line in fields:
            click.echo(line)


def _failed(failure: Failure) -> str:
    unknown = " or their outcome is unknown" if failure.error.idempotency_key else ""
    batch = failure.batch
    return (f"batch {failure.number} ({_lines(batch)}, {batch.kind}s) failed: {failure.error}\n"
            f"Its lines and every line after them were not sent{unknown}. Run the same command again: "
            "lines already accepted come back as replayed, never twice.")

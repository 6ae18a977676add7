"""``sendpromptly projects|keys|callback|destinations|audit-log|incidents|flows``: the operator API
from a shell.

Every command talks HTTP to a gateway (``--url``, else ``SENDPROMPTLY_URL``) with the operator token
from ``SENDPROMPTLY_OPERATOR_TOKEN``. Output is short aligned text; ``--json`` prints each JSON
document the API answered, one per line. On error the exit code is 1 and the problem's title,
detail and invalid fields go to stderr (with ``--json``, the problem document also goes to stdout).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn

import click

from channels import KINDS
from sendpromptly.client import ApiError, ClientError, Document, OperatorClient
from store.incidents import ListedStatus
from topics.fields import Mode
from topics.messages import IncidentReason

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "SENDPROMPTLY_URL"
TOKEN_ENV = "SENDPROMPTLY_OPERATOR_TOKEN"  # noqa: S105 (the variable's name, not a token)
MAX_PAGE = 200  # the largest page the API serves
DEFAULT_AUDIT_ENTRIES = 50  # the API's own default page

# One line of a record or one column of a table: a label and how to show it from a document.
Column = tuple[str, Callable[[Document], str]]


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def field(name: str) -> Callable[[Document], str]:
    return lambda doc: _text(doc.get(name))


def table_columns(lines: list[Column]) -> list[Column]:
    """A record's lines as table columns: the same values under upper-case headers."""
    return [(label.upper().replace(" ", "_"), show) for label, show in lines]


def choice_of(choices: type[StrEnum]) -> click.Choice[str]:
    """An option taking one of ``choices``' values, as the API spells them."""
    return click.Choice([choice.value for choice in choices])


def _echo_json(doc: Document) -> None:
    # Compact like the API's own answers, so a line is the document as it came over the wire.
    click.echo(json.dumps(doc, separators=(",", ":"), ensure_ascii=False))


def _echo_aligned(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@dataclass(frozen=True)
class Call:
    """What one command invocation works with: the client, the output form, the retry key."""

    url: str
    as_json: bool
    idempotency_key: str | None

    @functools.cached_property
    def client(self) -> OperatorClient:
        # Made on first use, so that a usage error is reported before a missing token.
        return OperatorClient(self.url, _token())

    def record(self, doc: Document, lines: list[Column], note: str | None = None) -> None:
        if self.as_json:
            _echo_json(doc)
            return
        _echo_aligned([[label, show(doc)] for label, show in lines])
        if note:
            click.echo(note)

    def listing(self, pages: Iterable[Document], columns: list[Column], empty: str) -> None:
        if self.as_json:
            for page in pages:
                _echo_json(page)
            return
        items = [item for page in pages for item in page["items"]]
        if not items:
            click.echo(empty)
            return
        rows = [[show(item) for _, show in columns] for item in items]
        _echo_aligned([[header for header, _ in columns], *rows])


# Every list pages; the CLI follows the pages up to --limit.
LIMIT = click.option("--limit", type=click.IntRange(min=1), help="Show at most this many [default: all].")


def pages(fetch: Callable[..., Document], cap: int | None) -> Iterator[Document]:
    """The API's pages in order (``fetch(cursor=..., limit=...)``), following ``next_cursor`` until
    ``cap`` items (None: all) are read."""
    cursor, remaining = None, cap
    while True:
        page = fetch(cursor=cursor, limit=MAX_PAGE if remaining is None else min(remaining, MAX_PAGE))
        yield page
        if remaining is not None:
            remaining -= len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor or remaining == 0:
            return


def _token() -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise click.ClickException(f"{TOKEN_ENV} is not set; export your operator token (op_...), "
                                   "e.g. from 'sendpromptly operator create'.")
    return token


def _fail(call: Call, error: ClientError) -> NoReturn:
    if call.as_json and isinstance(error, ApiError):
        _echo_json(error.problem)
    message = str(error)
    if error.idempotency_key:
        message += (f"\nThe outcome is unknown; retry with --idempotency-key {error.idempotency_key} "
                    "to apply it at most once.")
    raise click.ClickException(message)


# Every command that talks to a gateway takes it this way (``sendpromptly send`` too).
URL_OPTION = click.option("--url", envvar=URL_ENV, default=DEFAULT_URL, show_default=True,
                          help=f"The gateway's base URL (or {URL_ENV}).")


def api_command(parent: click.Group | None, name: str, *,
                mutating: bool = False) -> Callable[[Callable[..., None]], click.Command]:
    """A command that gets a ``Call`` first, with the options every API command shares."""

    def decorate(fn: Callable[..., None]) -> click.Command:
        @functools.wraps(fn)
        def run(url: str, as_json: bool, idempotency_key: str | None = None, **params: Any) -> None:
            call = Call(url, as_json, idempotency_key)
            try:
                fn(call, **params)
            except ClientError as error:
                _fail(call, error)

        options = [
            URL_OPTION,
            click.option("--json", "as_json", is_flag=True,
                         help="Print the API's JSON documents, one per line."),
        ]
        if mutating:
            options.append(click.option(
                "--idempotency-key", metavar="KEY",
                help="Send this Idempotency-Key (default: a new one); "
                     "repeat it to retry without applying twice."))
        for option in options:
            run = option(run)
        return (parent.command if parent else click.command)(name)(run)

    return decorate


# Projects

PROJECT_LINES: list[Column] = [
    ("id", field("id")), ("name", field("name")), ("mode", field("mode")),
    ("timeout", lambda p: f"{p['timeout_minutes']} min"), ("snapshots", field("snapshots_enabled")),
    ("callback", field("repair_callback_url")), ("created", field("created_at")),
]


@click.group()
def projects() -> None:
    """Projects: create, list, show, update (and switch to live)."""


def project_field_options(*, name_required: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    options = [
        click.option("--name", required=name_required, help="The project's name."),
        click.option("--mode", type=choice_of(Mode),
                     help="live needs a repair callback (https), an API key and an alert destination."),
        click.option("--timeout-minutes", type=int, help="How long a flow may wait for its result."),
        click.option("--snapshots/--no-snapshots", "snapshots_enabled", default=None,
                     help="Keep encrypted payload snapshots for replays."),
    ]

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _given(fields: dict[str, Any]) -> Document:
    return {name: value for name, value in fields.items() if value is not None}


@api_command(projects, "create", mutating=True)
@project_field_options(name_required=True)
def projects_create(call: Call, **fields: Any) -> None:
    """Create a project (in test mode unless --mode says otherwise)."""
    created = call.client.create_project(_given(fields), idempotency_key=call.idempotency_key)
    call.record(created, PROJECT_LINES)


@api_command(projects, "list")
@LIMIT
def projects_list(call: Call, limit: int | None) -> None:
    """The projects you can see, newest first."""
    call.listing(pages(call.client.list_projects, limit), table_columns(PROJECT_LINES), "no projects")


@api_command(projects, "show")
@click.argument("project_id")
def projects_show(call: Call, project_id: str) -> None:
    """One project."""
    call.record(call.client.get_project(project_id), PROJECT_LINES)


@api_command(projects, "update", mutating=True)
@click.argument("project_id")
@project_field_options(name_required=False)
def projects_update(call: Call, project_id: str, **fields: Any) -> None:
    """Change a project's name, mode, timeout or snapshots."""
    changes = _given(fields)
    if not changes:
        raise click.UsageError("Nothing to change: give --name, --mode, --timeout-minutes or --snapshots.")
    updated = call.client.update_project(project_id, changes, idempotency_key=call.idempotency_key)
    call.record(updated, PROJECT_LINES)


# API keys

def _masked_key(key: Document) -> str:
    return f"{key['prefix']}...{key['last_four']}"


KEY_LINES: list[Column] = [("id", field("id")), ("label", field("label")), ("key", _masked_key),
                           ("created", field("created_at")), ("last used", field("last_used_at")),
                           ("revoked", field("revoked_at"))]


@click.group()
def keys() -> None:
    """A project's API keys (sk_...) for ingest."""


@api_command(keys, "create", mutating=True)
@click.argument("project_id")
@click.option("--label", required=True, help="What the key is for, to tell keys apart.")
def keys_create(call: Call, project_id: str, label: str) -> None:
    """Create an API key; it is printed this once and never again."""
    created = call.client.create_key(project_id, label, idempotency_key=call.idempotency_key)
    shown_once = [("id", field("id")), ("label", field("label")), ("key", _secret("key"))]
    call.record(created, shown_once, _shown_once_note(created, "key"))


@api_command(keys, "list")
@click.argument("project_id")
@LIMIT
def keys_list(call: Call, project_id: str, limit: int | None) -> None:
    """A project's API keys, newest first (never the keys themselves)."""
    fetch = functools.partial(call.client.list_keys, project_id)
    call.listing(pages(fetch, limit), table_columns(KEY_LINES), "no API keys")


@api_command(keys, "revoke", mutating=True)
@click.argument("project_id")
@click.argument("key_id")
def keys_revoke(call: Call, project_id: str, key_id: str) -> None:
    """Revoke an API key: refused at ingest from then on."""
    call.record(call.client.revoke_key(project_id, key_id, idempotency_key=call.idempotency_key), KEY_LINES)


# Secrets shown once (API keys, signing secrets)

def _secret(name: str) -> Callable[[Document], str]:
    return lambda doc: doc[name] if doc.get(name) else "(not shown again)"


def _shown_once_note(doc: Document, name: str) -> str:
    if doc.get(name):
        return f"The {name.replace('_', ' ')} is shown only this once: store it now."
    # A repeated Idempotency-Key replays the first answer, which is stored without the secret.
    return f"This repeats an earlier request; its {name.replace('_', ' ')} was shown only the first time."


# Repair callback

@click.group()
def callback() -> None:
    """A project's repair callback URL and its signing secret (whsec_...)."""


def _record_with_secret(call: Call, doc: Document) -> None:
    call.record(doc, [("url", field("url")), ("signing secret", _secret("signing_secret"))],
                _shown_once_note(doc, "signing_secret"))


@api_command(callback, "set", mutating=True)
@click.argument("project_id")
@click.argument("callback_url")  # not "url": that is the gateway's (--url)
def callback_set(call: Call, project_id: str, callback_url: str) -> None:
    """Set the URL that receives repair requests, with a new signing secret (the previous one keeps
    signing for 24 h, as in a rotation)."""
    answer = call.client.set_callback(project_id, callback_url, idempotency_key=call.idempotency_key)
    _record_with_secret(call, answer)


@api_command(callback, "show")
@click.argument("project_id")
def callback_show(call: Call, project_id: str) -> None:
    """The callback URL and when its signing secrets were made and retire."""
    doc = call.client.get_callback(project_id)
    secret_lines = [("secret", _secret_dates(secret)) for secret in doc.get("secrets") or []]
    call.record(doc, [("url", field("url")), *secret_lines])


def _secret_dates(secret: Document) -> Callable[[Document], str]:
    return lambda _: f"created {secret['created_at']}, retires {_text(secret.get('retires_at'))}"


@api_command(callback, "rotate-secret", mutating=True)
@click.argument("project_id")
def callback_rotate_secret(call: Call, project_id: str) -> None:
    """Make a new signing secret; the previous one keeps signing for the rotation overlap."""
    rotated = call.client.rotate_callback_secret(project_id, idempotency_key=call.idempotency_key)
    _record_with_secret(call, rotated)


@api_command(callback, "test", mutating=True)
@click.argument("project_id")
def callback_test(call: Call, project_id: str) -> None:
    """Send one signed test request to the callback now and show the receiver's status and latency
    (exit 1 unless a repair answered so would count as delivered: a 2xx)."""
    tested = call.client.test_callback(project_id, idempotency_key=call.idempotency_key)
    call.record(tested, [("url", field("url")), ("replay id", field("replay_id")),
                         ("http status", field("http_status")), ("latency ms", field("latency_ms")),
                         ("error", field("error")), ("verdict", field("verdict"))])
    if tested["verdict"] != "delivered":
        raise click.exceptions.Exit(1)


# Alert destinations

DESTINATION_LINES: list[Column] = [("id", field("id")), ("type", field("type")), ("target", field("target")),
                                   ("created", field("created_at")), ("last failure", field("last_failure")),
                                   ("failed", field("failed_at"))]


@click.group()
def destinations() -> None:
    """Where a project's incidents are announced (email, Slack)."""


@api_command(destinations, "add", mutating=True)
@click.argument("project_id")
@click.option("--type", "type_", type=click.Choice(list(KINDS)), required=True)
@click.option("--target", required=True, help=" or ".join(kind.target_label for kind in KINDS.values()) + ".")
def destinations_add(call: Call, project_id: str, type_: str, target: str) -> None:
    """Add an alert destination."""
    added = call.client.add_destination(project_id, type_, target, idempotency_key=call.idempotency_key)
    call.record(added, DESTINATION_LINES)


@api_command(destinations, "list")
@click.argument("project_id")
@LIMIT
def destinations_list(call: Call, project_id: str, limit: int | None) -> None:
    """A project's alert destinations, newest first."""
    fetch = functools.partial(call.client.list_destinations, project_id)
    call.listing(pages(fetch, limit), table_columns(DESTINATION_LINES), "no alert destinations")


@api_command(destinations, "remove", mutating=True)
@click.argument("project_id")
@click.argument("destination_id")
def destinations_remove(call: Call, project_id: str, destination_id: str) -> None:
    """Remove an alert destination."""
    removed = call.client.remove_destination(project_id, destination_id, idempotency_key=call.idempotency_key)
    call.record(removed, DESTINATION_LINES, "Removed.")


@api_command(destinations, "test", mutating=True)
@click.argument("project_id")
@click.argument("destination_id")
def destinations_test(call: Call, project_id: str, destination_id: str) -> None:
    """Send a test alert to a destination now (exit 1 with the channel's error if it fails)."""
    tested = call.client.test_destination(project_id, destination_id, idempotency_key=call.idempotency_key)
    call.record(tested, [(label, _of_destination(show)) for label, show in DESTINATION_LINES],
                "Test alert sent.")


def _of_destination(show: Callable[[Document], str]) -> Callable[[Document], str]:
    return lambda doc: show(doc["destination"])


# Audit log

AUDIT_COLUMNS = table_columns([
    ("seq", field("seq")), ("time", field("occurred_at")), ("actor", field("actor")),
    ("action", field("action")), ("target", field("target")),
])


@api_command(None, "audit-log")
@click.argument("project_id")
@click.option("--limit", type=click.IntRange(min=1),
              help=f"Show at most this many entries [default: {DEFAULT_AUDIT_ENTRIES}].")
@click.option("--all", "everything", is_flag=True, help="Show every entry.")
def audit_log(call: Call, project_id: str, limit: int | None, everything: bool) -> None:
    """A project's audit log, newest first."""
    if limit and everything:
        raise click.UsageError("Give --limit or --all, not both.")
    cap = None if everything else limit or DEFAULT_AUDIT_ENTRIES
    fetch = functools.partial(call.client.audit_log, project_id)
    call.listing(pages(fetch, cap), AUDIT_COLUMNS, "no entries")


# Incidents

INCIDENT_LINES: list[Column] = [
    ("id", field("id")), ("project", field("project_id")), ("reference", field("reference")),
    ("mode", field("mode")), ("reason", field("reason")), ("status", field("status")),
    ("opened", field("opened_at")), ("deadline", field("deadline")),
    ("acknowledged", field("acknowledged_at")), ("resolved", field("resolved_at")),
    ("resolution", field("resolution")), ("detail", field("detail")),
]
INCIDENT_COLUMNS = table_columns([
    ("id", field("id")), ("reference", field("reference")), ("reason", field("reason")),
    ("status", field("status")), ("opened", field("opened_at")), ("acknowledged", field("acknowledged_at")),
    ("replays", lambda doc: str(len(doc["replays"]))),
])


def _line(text: str) -> Callable[[Document], str]:
    return lambda _: text


def _replay_lines(replay: Document) -> list[Column]:
    outcome = replay.get("outcome") or "no outcome yet"
    delivery = replay.get("delivery_status") or "not picked up yet"
    if replay.get("next_attempt_at"):
        delivery += f", next attempt {replay['next_attempt_at']}"
    attempts = [("  attempt", _line(f"{a['attempt']} at {a['attempted_at']}: {_attempt_result(a)}"))
                for a in replay["callback_attempts"]]
    said = (f"{replay['replay_id']} by {replay['requested_by']} at {replay['requested_at']}: "
            f"{replay['attempts']} attempts, {outcome}; delivery {delivery}")
    return [("replay", _line(said)), *attempts]


def _attempt_result(attempt: Document) -> str:
    if "finished_at" not in attempt:
        return "under way"
    answer = f"HTTP {attempt['http_status']}" if "http_status" in attempt else "no answer"
    latency = f" in {attempt['latency_ms']} ms" if "latency_ms" in attempt else ""
    return answer + latency + (f" ({attempt['error']})" if "error" in attempt else "")


def _alert_lines(alert: Document) -> list[Column]:
    error = f" ({alert['last_error']})" if "last_error" in alert else ""
    sends = [("  send", _line(f"{s['attempt']} at {s['attempted_at']}: {s.get('outcome', 'under way')}"
                              + (f" ({s['error']})" if "error" in s else "")))
             for s in alert["sends"]]
    return [("alert", _line(f"{alert['event']} to {alert['destination_type']} {alert['destination_id']}: "
                            f"{alert['status']}, {alert['attempts']} sends{error}")), *sends]


def _record_incident(call: Call, doc: Document, note: str | None = None) -> None:
    replays = [line for replay in doc["replays"] for line in _replay_lines(replay)]
    alerts = [line for alert in doc["alerts"] for line in _alert_lines(alert)]
    call.record(doc, [*INCIDENT_LINES, *replays, *alerts], note)


@click.group()
def incidents() -> None:
    """Incidents: list, show, acknowledge, resolve, reprocess."""


@api_command(incidents, "list")
@click.argument("project_id")
@click.option("--status", type=choice_of(ListedStatus),
              help="Only open ones (acknowledged or not), only open ones someone acknowledged, or only "
                   "resolved ones.")
@click.option("--mode", type=choice_of(Mode), help="Only test, or only live, ones.")
@click.option("--reason", type=choice_of(IncidentReason), help="Only this reason.")
@click.option("--reference", help="Only the incidents of this flow reference.")
@LIMIT
def incidents_list(call: Call, project_id: str, limit: int | None, **filters: str | None) -> None:
    """A project's incidents, newest first."""
    fetch = functools.partial(call.client.list_incidents, project_id, filters=filters)
    call.listing(pages(fetch, limit), INCIDENT_COLUMNS, "no incidents")


@api_command(incidents, "show")
@click.argument("incident_id")
def incidents_show(call: Call, incident_id: str) -> None:
    """One incident: its failure's detail, its replays with every callback attempt, its alerts
    with every send."""
    _record_incident(call, call.client.get_incident(incident_id))


@api_command(incidents, "acknowledge", mutating=True)
@click.argument("incident_id")
def incidents_acknowledge(call: Call, incident_id: str) -> None:
    """Say that someone is on it."""
    acknowledged = call.client.acknowledge_incident(incident_id, idempotency_key=call.idempotency_key)
    _record_incident(call, acknowledged)


@api_command(incidents, "resolve", mutating=True)
@click.argument("incident_id")
@click.option("--note", required=True, help="Why it is resolved; kept in the audit log.")
def incidents_resolve(call: Call, incident_id: str, note: str) -> None:
    """Resolve an incident by hand (final: it cannot be reprocessed afterwards)."""
    resolved = call.client.resolve_incident(incident_id, note, idempotency_key=call.idempotency_key)
    _record_incident(call, resolved)


@api_command(incidents, "reprocess", mutating=True)
@click.argument("incident_id")
def incidents_reprocess(call: Call, incident_id: str) -> None:
    """Have the project's repair callback rerun the effect, under a new replay id."""
    answer = call.client.reprocess_incident(incident_id, idempotency_key=call.idempotency_key)
    call.record(answer, [("replay id", field("replay_id"))],
                "The repair callback will be called with this replay id; 'incidents show' lists it.")


# Flows

FLOW_LINES: list[Column] = [
    ("project", field("project_id")), ("reference", field("reference")), ("mode", field("mode")),
    ("cycle", field("cycle")), ("status", field("status")), ("event", field("event_type")),
    ("effect", field("effect_type")), ("received", field("received_at")), ("deadline", field("deadline")),
    ("receipts", field("receipts")), ("last receipt", field("last_receipt_at")),
    ("applied", field("applied_at")), ("incident", field("incident_id")), ("detail", field("detail")),
]


def _cycle_line(cycle: Document) -> Column:
    incident = f", incident {cycle['incident_id']}" if "incident_id" in cycle else ""
    return "cycles", _line(f"{cycle['cycle']}: {cycle['status']}, received {cycle['received_at']}, "
                          f"deadline {cycle['deadline']}{incident}")


def _timeline_line(entry: Document) -> Column:
    if "status" in entry:
        said = f"{entry['status']} (from {_text(entry['previous_status'])}, cause {entry['cause']})"
    elif "receipts" in entry:
        said = f"receipt {entry['receipts']}, received {entry['last_receipt_at']}"
    else:
        said = f"by {entry['actor']} on {entry['target']}"
    return "event", _line(f"{entry['occurred_at']} {entry['action']} {said}")


@click.group()
def flows() -> None:
    """Flows: look one up by its reference."""


@api_command(flows, "show")
@click.argument("project_id")
@click.argument("reference")
@click.option("--mode", type=choice_of(Mode),
              help="The test or the live flow of the reference [default: the project's mode].")
@click.option("--cycle", type=click.IntRange(min=1),
              help="Which cycle of a reused reference [default: the latest].")
def flows_show(call: Call, project_id: str, reference: str, mode: str | None, cycle: int | None) -> None:
    """A flow (one cycle of the reference), its failure's detail, the reference's cycles (newest
    first) and the cycle's whole timeline (transitions, repeated receipts, incident actions,
    callback attempts, alert sends), oldest first."""
    doc = call.client.get_flow(project_id, reference, mode=mode, cycle=cycle)
    call.record(doc, [*FLOW_LINES, *(_cycle_line(entry) for entry in doc["cycles"]),
                      *(_timeline_line(entry) for entry in doc["timeline"])])


def register(main: click.Group) -> None:
    """Add the operator API commands to the ``sendpromptly`` command."""
    for command in (projects, keys, callback, destinations, audit_log, incidents, flows):
        main.add_command(command)

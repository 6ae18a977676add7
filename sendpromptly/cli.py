"""The ``sendpromptly`` command: run the processes and administer the stack."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from common.config import ConfigError, Settings
from sendpromptly.processes import PROCESSES, SINKS, one_host_ports


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="sendpromptly", message="%(prog)s %(version)s")
def main() -> None:
    """SendPromptly: catches payments whose effect was never applied."""


@main.command()
def migrate() -> None:
    """Apply the database migrations that are not applied yet."""
    from store.migrate import migrate as run_migrations

    applied = run_migrations(_settings().database_url)
    click.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("ensure")
def topics_ensure() -> None:
    """Create missing topics and verify existing ones (idempotent)."""
    from topics.admin import TopicMismatch, ensure_topics

    settings = _settings()
    try:
        report = ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, settings.flow_partitions,
                               settings.replication_factor)
    except TopicMismatch as exc:
        raise click.ClickException(str(exc)) from None
    for name in report.created:
        click.echo(f"created  {name}")
    for name in report.verified:
        click.echo(f"verified {name}" + (" (retention updated)" if name in report.updated_config else ""))


@main.command()
def gateway() -> None:
    """Serve the HTTP API (SENDPROMPTLY_HTTP_HOST:SENDPROMPTLY_HTTP_PORT)."""
    from api_gateway.app import run

    try:
        run(_settings())
    except ConfigError as exc:  # e.g. a keyring that is missing or malformed
        raise click.ClickException(str(exc)) from None


@main.command()
def agents() -> None:
    """Run the stream agents (flow tracker) as one faust worker."""
    from agents.app import run_worker

    sys.argv = [sys.argv[0]]  # faust's worker parses argv itself; ours are not for it
    run_worker(_settings())


@main.command()
@click.argument("name", type=click.Choice(list(SINKS)))
def sink(name: str) -> None:
    """Run one sink process."""
    from sinks.main import run

    spec = SINKS[name].sink
    assert spec is not None  # noqa: S101 (SINKS holds the processes that have one)
    run(_settings(), name, spec.module)


@main.command()
def processes() -> None:
    """List the long-running processes, one a line: name, port variable, its port on one host (with
    the current settings) and the command's arguments; scripts/stack.sh starts what this lists."""
    ports = one_host_ports(_settings())
    for process in PROCESSES:
        click.echo(" ".join((process.name, process.port_variable, str(ports[process.name]), *process.args)))


@main.command("deploy-files")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 naming the files that differ from what the processes render.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
              show_default=True, help="The repository's checkout.")
def deploy_files(check: bool, root: Path) -> None:
    """Render from sendpromptly/processes.py what the deploy files say per process: each sink's
    Kubernetes workload, compose service and SendPromptlySinkDown rule, the compose scrape jobs."""
    from sendpromptly.deploy_files import MarkersMissing, stale, write

    try:
        changed = list(stale(root)) if check else write(root)
    except (MarkersMissing, FileNotFoundError) as exc:
        raise click.ClickException(f"{exc} (is {root} the repository's checkout?)") from None
    if check and changed:
        raise click.ClickException(f"out of date: {', '.join(changed)}; run `make deploy-files`")
    for path in changed:
        click.echo(f"wrote {path}")


@main.group()
def snapshots() -> None:
    """Encrypted payload snapshots."""


@snapshots.command("purge")
def snapshots_purge() -> None:
    """Delete snapshots older than 30 days now (the callbacks sink also does it hourly)."""
    from sinks.snapshot_purge import purge_snapshots
    from store.db import open_pool

    async def purge() -> dict[str, int]:
        pool = await open_pool(_settings().database_url, max_size=1)
        try:
            return await purge_snapshots(pool)
        finally:
            await pool.close()

    purged = asyncio.run(purge())
    for project_id, count in sorted(purged.items()):
        click.echo(f"{project_id}  {count} snapshot(s) purged")
    click.echo(f"purged {sum(purged.values())} snapshot(s) older than 30 days")


@main.group()
def audit() -> None:
    """The hash-chained audit log (the operator API's ``audit-log`` shows it)."""


@audit.command("verify")
@click.option("--project", "project_id", help="Check only this project's chain (default: every chain).")
@click.option("--complete", is_flag=True,
              help="Also check that every flow's transitions are all there: versions 1..n of each cycle.")
def audit_verify(project_id: str | None, complete: bool) -> None:
    """Recompute every hash of the audit log; exit 1 naming the first broken entry of a chain (and,
    with --complete, every flow whose transitions are not all in the log)."""
    from store.audit_log import (
        SYSTEM_CHAIN,
        BrokenLink,
        MissingTransitions,
        chains,
        flows_missing_transitions,
        verify_chain,
    )
    from store.db import open_pool

    async def verify() -> tuple[list[tuple[str, int, BrokenLink | None]], list[MissingTransitions]]:
        pool = await open_pool(_settings().database_url, max_size=1)
        try:
            async with pool.connection() as conn:
                names = [project_id] if project_id else await chains(conn)
                links = [(name, *await verify_chain(conn, name)) for name in names]
                gaps = [gap for name in names if complete and name != SYSTEM_CHAIN
                        for gap in await flows_missing_transitions(conn, name)]
                return links, gaps
        finally:
            await pool.close()

    results, gaps = asyncio.run(verify())
    broken = [link for _, _, link in results if link is not None]
    for name, checked, link in results:
        if link is None:
            click.echo(f"ok      {name}: {checked} entries")
        else:
            click.echo(f"BROKEN  {name}: entry seq {link.seq} ({link.event_id}): {link.reason}")
    for gap in gaps:
        click.echo(f"MISSING {gap.project_id}: flow {gap.reference!r} ({gap.mode}, cycle {gap.cycle}, "
                   f"version {gap.version}) lacks transition(s) {', '.join(map(str, gap.missing))}")
    if broken or gaps:
        raise click.ClickException(f"{len(broken)} of {len(results)} chain(s) broken, "
                                   f"{len(gaps)} flow(s) with transitions missing")
    click.echo(f"verified {sum(checked for _, checked, _ in results)} entries in {len(results)} chain(s)"
               + (", every flow's transitions complete" if complete else ""))


@main.group()
def operator() -> None:
    """Operators, directly in the database (the bootstrap path; needs SENDPROMPTLY_DATABASE_URL)."""


@operator.command("create")
@click.option("--email", required=True, help="The operator's email (their console login).")
@click.option("--admin", is_flag=True, help="May see and change every project.")
@click.option("--project", "projects", multiple=True,
              help="A project the operator is a member of (repeatable).")
@click.option("--password-stdin", is_flag=True,
              help="Read the console password from stdin instead of generating one.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def operator_create(email: str, admin: bool, projects: tuple[str, ...], password_stdin: bool,
                    as_json: bool) -> None:
    """Create an operator and print its personal token (op_...) and console password, once."""
    from common.targets import TargetError, check_email
    from sendpromptly.bootstrap import BootstrapError, create_operator

    try:
        check_email(email)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="--email") from None
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        created = asyncio.run(create_operator(_settings().database_url, email=email, is_admin=admin,
                                              project_ids=list(projects), password=password))
    except BootstrapError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"id": created.id, "email": created.email, "admin": created.is_admin,
                               "projects": created.project_ids, "token": created.token,
                               **({} if password_stdin else {"password": created.password})}))
        return
    click.echo(f"operator {created.id} <{created.email}>" + (" (admin)" if created.is_admin else ""))
    click.echo(f"token    {created.token}    (shown once; export SENDPROMPTLY_OPERATOR_TOKEN=...)")
    if not password_stdin:
        click.echo(f"password {created.password}    (shown once; for the console)")


@operator.command("revoke-tokens")
@click.option("--email", required=True)
def operator_revoke_tokens(email: str) -> None:
    """Revoke every personal token of an operator (refused everywhere within 5 s)."""
    from sendpromptly.bootstrap import BootstrapError, revoke_tokens

    try:
        count = asyncio.run(revoke_tokens(_settings().database_url, email))
    except BootstrapError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {count} token(s) of {email}")


@main.command()
@click.option("--name", default="Demo project", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def demo(name: str, as_json: bool) -> None:
    """Create a test-mode demo project with an API key and an admin operator token and console
    password, for the local stack.

    Prints the key, the token and the password: they are shown only here and stored only as hashes.
    Running it again issues a new key, token and password for the same project and operator.
    """
    from sendpromptly.demo import create_demo

    demo = asyncio.run(create_demo(_settings().database_url, name))
    if as_json:
        click.echo(json.dumps({"project_id": demo.project.id, "name": demo.project.name,
                               "api_key": demo.api_key, "operator_email": demo.operator_email,
                               "operator_token": demo.operator_token,
                               "operator_password": demo.operator_password}))
    else:
        click.echo(f"project         {demo.project.id} ({demo.project.name}, {demo.project.mode} mode)")
        click.echo(f"api key         {demo.api_key}")
        click.echo(f"operator token  {demo.operator_token} ({demo.operator_email}, admin)")
        click.echo(f"console         {demo.operator_email} / {demo.operator_password}")


from sendpromptly.cli_operator_api import register; register(main)  # noqa: E402, E702, I001
from sendpromptly.cli_mail import register as register_mail; register_mail(main)  # noqa: E402, E702, I001
from sendpromptly.cli_operators import operators; main.add_command(operators)  # noqa: E402, E702, I001
from sendpromptly.cli_send import send; main.add_command(send)  # noqa: E402, E702, I001

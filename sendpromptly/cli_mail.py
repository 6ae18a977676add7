"""``sendpromptly mailcatcher`` and ``sendpromptly mail list|show``: the local stack's mail, kept as
files (``sendpromptly.mailcatcher``) and read from a shell."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from sendpromptly import mailcatcher
from sendpromptly.cli_operator_api import _echo_aligned as echo_aligned

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SMTP_PORT = 1025
DEFAULT_WEB_PORT = 8025

_mail_dir = click.option(
    "--dir", "folder", type=click.Path(file_okay=False, path_type=Path), envvar=mailcatcher.DIR_ENV,
    default=mailcatcher.DEFAULT_DIR, show_default=True,
    help=f"Where the catcher keeps the messages (or {mailcatcher.DIR_ENV}).")


@click.command("mailcatcher")
@_mail_dir
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--smtp-port", type=int, default=DEFAULT_SMTP_PORT, show_default=True,
              envvar="SENDPROMPTLY_MAILCATCHER_SMTP_PORT")
@click.option("--web-port", type=int, default=DEFAULT_WEB_PORT, show_default=True,
              envvar="SENDPROMPTLY_MAILCATCHER_WEB_PORT", help="The messages as text, and /readyz.")
def mailcatcher_command(folder: Path, host: str, smtp_port: int, web_port: int) -> None:
    """Run a local SMTP server that keeps every message as a file (for the dev stack only)."""
    click.echo(f"catching mail on smtp://{host}:{smtp_port}, kept in {folder}, shown at http://{host}:{web_port}/")
    asyncio.run(mailcatcher.serve(folder, host, smtp_port, web_port))


@click.group()
def mail() -> None:
    """The mail the local catcher kept (`make up` sends alerts there)."""


@mail.command("list")
@_mail_dir
def mail_list(folder: Path) -> None:
    """The kept messages, newest first."""
    rows = [mailcatcher.summary(m) for m in reversed(mailcatcher.stored(folder))]
    if not rows:
        click.echo(f"no mail in {folder}")
        return
    echo_aligned([["N", "DATE", "FROM", "TO", "SUBJECT"], *rows])


@mail.command("show")
@click.argument("number", type=click.IntRange(min=1))
@click.option("--raw", is_flag=True, help="The message as received (the .eml file).")
@_mail_dir
def mail_show(number: int, raw: bool, folder: Path) -> None:
    """One message by its number in `mail list`."""
    found = mailcatcher.find(folder, number)
    if found is None:
        raise click.ClickException(f"no message {number} in {folder}; see 'sendpromptly mail list'")
    click.echo(found.path.read_text(errors="replace") if raw else mailcatcher.readable(found), nl=False)


def register(main: click.Group) -> None:
    main.add_command(mailcatcher_command)
    main.add_command(mail)

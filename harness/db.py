"""Per-test databases: each is a copy of a template that ``sendpromptly migrate`` built once."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo


def url_for(admin_url: str, dbname: str) -> str:
    return make_conninfo(admin_url, dbname=dbname)


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return url_for(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def migrated_template(admin_url: str) -> str:
    """A fresh database with the schema, built by the app's own migrations (never by tests)."""
    name = f"sp_template_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name)
    subprocess.run(
        [sys.executable, "-m", "sendpromptly", "migrate"], env={"SENDPROMPTLY_DATABASE_URL": url, "PATH": ""},
        check=True, capture_output=True, timeout=120,
    )
    return name

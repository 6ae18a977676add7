"""Versioned schema migrations: ``store/migrations/NNNN_name.sql``, applied in order, once each.

``sendpromptly migrate`` runs them; several processes may call it at once (an advisory lock makes
the others wait), and a failed migration rolls back whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from store.errors import translated

_NAME_RE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
# Any fixed number works; it only has to be the same for every migrating process.
_LOCK_ID = 0x5E9D_0001


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for entry in resources.files("store").joinpath("migrations").iterdir():
        match = _NAME_RE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {[m.name for m in found]}")
    return found


def migrate(database_url: str) -> list[str]:
    """Apply every migration not yet applied; returns the names applied by this call."""
    applied_now: list[str] = []
    with translated(), psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in available():
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied_now.append(migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now

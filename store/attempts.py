"""Work whose every attempt is recorded before it is made: repair callbacks (``callback_deliveries``,
``callback_attempts``) and alerts (``notifications``, ``notification_attempts``).

A work table has a key, ``attempts`` (begun so far), ``status`` (``pending`` until done),
``next_attempt_at``, ``last_error`` and ``finished_at``; its attempts table has the item's key,
``attempt``, ``attempted_at``, the outcome's columns and ``finished_at`` (NULL while the attempt is
under way). A claim takes due items with ``FOR UPDATE SKIP LOCKED`` and leases them; an attempt is
begun (counted and inserted) before its side effect and finished (its outcome stored) after. An
attempt still without outcome when the lease ran out was interrupted: the process making it
stopped, and the side effect may or may not have happened. The next claim says so, and the caller
finishes it with an outcome that says as much, a failed attempt like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, LiteralString

from psycopg import sql
from psycopg.rows import DictRow

from store.db import Connection


@dataclass(frozen=True)
class Ledger:
    """A work table and its attempts table."""

    items: str
    # The work table's key column, and the attempts table's column that holds it.
    key: str
    attempts: str
    item_key: str

    async def claim_due(self, conn: Connection, *, columns: LiteralString, joins: LiteralString = "",
                        limit: int, lease: timedelta) -> list[DictRow]:
        """Up to ``limit`` due items (``columns`` of the work table ``i`` and of ``joins``, plus
        ``interrupted``: whether attempt number ``attempts`` was begun and has no outcome), their
        next attempt pushed ``lease`` ahead, so that a process that dies mid-attempt leaves them to
        be taken again after the lease, not stuck."""
        query = sql.SQL(
            "SELECT {columns}, EXISTS ("
            "   SELECT 1 FROM {attempts} a WHERE a.{item_key} = i.{key}"
            "   AND a.attempt = i.attempts AND a.finished_at IS NULL) AS interrupted"
            " FROM {items} i {joins}"
            " WHERE i.status = 'pending' AND i.next_attempt_at <= now()"
            " ORDER BY i.next_attempt_at LIMIT %s FOR UPDATE OF i SKIP LOCKED"
        ).format(columns=sql.SQL(columns), joins=sql.SQL(joins), **self._names())
        async with conn.transaction():
            rows = await (await conn.execute(query, (limit,))).fetchall()
            if rows:
                await conn.execute(
                    sql.SQL("UPDATE {items} SET next_attempt_at = now() + %s WHERE {key} = ANY(%s)")
                    .format(**self._names()),
                    (lease, [row[self.key] for row in rows]),
                )
        return rows

    async def begin(self, conn: Connection, key: Any, number: int, attempted_at: datetime,
                    **columns: Any) -> bool:
        """Record attempt ``number`` (with ``columns`` of the attempts table) as begun, before its
        side effect; call inside a transaction. False (and nothing stored) when that attempt was
        begun already: another process claimed the item after our lease ran out."""
        cursor = await conn.execute(
            sql.SQL("UPDATE {items} SET attempts = %s WHERE {key} = %s AND attempts = %s"
                    " AND status = 'pending'").format(**self._names()),
            (number, key, number - 1),
        )
        if cursor.rowcount != 1:
            return False
        names = [self.item_key, "attempt", "attempted_at", *columns]
        await conn.execute(
            sql.SQL("INSERT INTO {attempts} ({names}) VALUES ({values})").format(
                attempts=sql.Identifier(self.attempts), names=sql.SQL(", ").join(map(sql.Identifier, names)),
                values=sql.SQL(", ").join(sql.Placeholder() * len(names))),
            (key, number, attempted_at, *columns.values()),
        )
        return True

    async def finish(self, conn: Connection, key: Any, number: int, outcome: dict[str, Any], *,
                     status: str, next_attempt_at: datetime | None, problem: str | None) -> bool:
        """Store the outcome (columns of the attempts table) of begun attempt ``number`` and the
        item's new state; call inside a transaction. False (and nothing stored) when that attempt
        has an outcome already: its lease ran out and the next claim recorded it as interrupted."""
        # The attempt's row first, as every caller does: whoever updates it first wins, and the
        # other waits on its lock, then finds the outcome there and stops.
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in outcome)
        cursor = await conn.execute(
            sql.SQL("UPDATE {attempts} SET {assignments}, finished_at = now()"
                    " WHERE {item_key} = %s AND attempt = %s AND finished_at IS NULL")
            .format(assignments=assignments, **self._names()),
            (*outcome.values(), key, number),
        )
        if cursor.rowcount != 1:
            return False
        await conn.execute(
            sql.SQL("UPDATE {items} SET status = %(status)s, next_attempt_at = %(next)s,"
                    " last_error = %(problem)s,"
                    " finished_at = CASE WHEN %(status)s = 'pending' THEN NULL ELSE now() END"
                    " WHERE {key} = %(key)s").format(**self._names()),
            {"status": status, "next": next_attempt_at, "problem": problem, "key": key},
        )
        return True

    async def finish_without_attempt(self, conn: Connection, key: Any, error: str) -> None:
        """Give an item up before any attempt (nothing left to send it to)."""
        await conn.execute(
            sql.SQL("UPDATE {items} SET status = 'failed', next_attempt_at = NULL, finished_at = now(),"
                    " last_error = %s WHERE {key} = %s AND status = 'pending'").format(**self._names()),
            (error, key),
        )

    def _names(self) -> dict[str, sql.Identifier]:
        return {"items": sql.Identifier(self.items), "key": sql.Identifier(self.key),
                "attempts": sql.Identifier(self.attempts), "item_key": sql.Identifier(self.item_key)}

"""The console's sign-in sessions and failed sign-ins (migration 0013)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from store.db import Connection, one_row


@dataclass(frozen=True)
class Session:
    operator_id: str
    csrf_token: str
    expires_at: datetime


async def start_session(conn: Connection, token_hash: bytes, operator_id: str, csrf_token: str,
                        lifetime: timedelta) -> None:
    # The operator's expired sessions go as a new one starts: the table holds live sessions only.
    await conn.execute("DELETE FROM console_sessions WHERE operator_id = %s AND expires_at <= now()",
                       (operator_id,))
    await conn.execute(
        "INSERT INTO console_sessions (token_hash, operator_id, csrf_token, expires_at)"
        " VALUES (%s, %s, %s, now() + %s)",
        (token_hash, operator_id, csrf_token, lifetime),
    )


async def live_session(conn: Connection, token_hash: bytes) -> Session | None:
    """The session, unless it expired, was ended, or its operator was removed."""
    row = await (await conn.execute(
        "SELECT s.operator_id, s.csrf_token, s.expires_at FROM console_sessions s"
        " JOIN operators o ON o.id = s.operator_id"
        " WHERE s.token_hash = %s AND s.expires_at > now() AND o.deactivated_at IS NULL",
        (token_hash,),
    )).fetchone()
    return None if row is None else Session(**row)


async def end_session(conn: Connection, token_hash: bytes) -> str | None:
    """The ended session's operator; None when there was no such session."""
    row = await (await conn.execute(
        "DELETE FROM console_sessions WHERE token_hash = %s RETURNING operator_id", (token_hash,)
    )).fetchone()
    return None if row is None else row["operator_id"]


async def locked_until(conn: Connection, email: str) -> datetime | None:
    """When the email's lock-out ends, if it is locked out now."""
    row = await (await conn.execute(
        "SELECT locked_until FROM console_sign_in_failures"
        " WHERE email = lower(%s) AND locked_until > now()", (email,)
    )).fetchone()
    return None if row is None else row["locked_until"]


async def record_failure(conn: Connection, email: str, *, window: timedelta, lock_after: int,
                         lock_for: timedelta) -> tuple[int, datetime | None]:
    """Count a failed sign-in: failures further apart than ``window`` start the count afresh, and
    the ``lock_after``-th locks the email for ``lock_for``. Returns the count and the lock's end."""
    row = await one_row(await conn.execute(
        "INSERT INTO console_sign_in_failures AS f (email, failures, last_failed_at)"
        " VALUES (lower(%(email)s), 1, now())"
        " ON CONFLICT (email) DO UPDATE SET"
        "   failures = CASE WHEN f.last_failed_at > now() - %(window)s THEN f.failures + 1 ELSE 1 END,"
        "   last_failed_at = now()"
        " RETURNING failures",
        {"email": email, "window": window},
    ), "the sign-in failures of the email signing in")
    failures: int = row["failures"]
    if failures < lock_after:
        return failures, None
    locked = await one_row(await conn.execute(
        "UPDATE console_sign_in_failures SET locked_until = now() + %s, failures = 0"
        " WHERE email = lower(%s) RETURNING locked_until",
        (lock_for, email),
    ), "the sign-in failures of the email signing in")
    return failures, locked["locked_until"]


async def clear_failures(conn: Connection, email: str) -> None:
    await conn.execute("DELETE FROM console_sign_in_failures WHERE email = lower(%s)", (email,))

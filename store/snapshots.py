"""Encrypted payload snapshots, kept as the ciphertext envelope the receipt carried."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from psycopg.types.json import Jsonb

from store.db import Connection
from topics import Snapshot


async def store_snapshot(conn: Connection, project_id: str, reference: str, snapshot: Snapshot,
                         received_at: datetime) -> None:
    """Keep the flow's first snapshot; a repeated or later receipt changes nothing."""
    await conn.execute(
        "INSERT INTO snapshots (project_id, reference, snapshot, received_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (project_id, reference) DO NOTHING",
        (project_id, reference, Jsonb(snapshot.to_dict()), received_at),
    )


async def get_snapshot(conn: Connection, project_id: str, reference: str) -> Snapshot | None:
    row = await (await conn.execute(
        "SELECT snapshot FROM snapshots WHERE project_id = %s AND reference = %s", (project_id, reference),
    )).fetchone()
    if row is None:
        return None
    envelope = row["snapshot"]
    return Snapshot(key_id=envelope["kid"], nonce=envelope["nonce"], ciphertext=envelope["ct"])


async def delete_received_before(conn: Connection, cutoff: datetime) -> dict[str, int]:
    """Delete every snapshot received before ``cutoff``; returns how many per project."""
    rows = await (await conn.execute(
        "DELETE FROM snapshots WHERE received_at < %s RETURNING project_id", (cutoff,),
    )).fetchall()
    return dict(Counter(row["project_id"] for row in rows))

"""The audit log (``audit_log``): append-only, hash-chained per project.

Each row's ``hash`` is SHA-256 over the canonical JSON of its fields and ``prev_hash``, the hash of
the row before it in the same chain; so a changed, removed or reordered row breaks the chain at
that row, and ``verify_chain`` names it. Appends to one chain are serialized with a transaction
advisory lock on the chain, so two sink replicas cannot fork it; the database refuses UPDATE and
DELETE (a trigger, migration 0005). The sink appends what one fetch brought at once: one lock per
chain, one read of the ids already there and of each chain's head, one INSERT.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Connection
from store.flows import FlowView
from topics import AuditEvent

SYSTEM_CHAIN = "system"
GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditLogRow:
    seq: int
    chain: str
    event_id: str
    actor: str
    action: str
    target: str
    data: dict[str, Any]
    source_address: str | None
    occurred_at: datetime
    recorded_at: datetime
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class BrokenLink:
    """The first row of a chain whose hash or link does not hold."""

    chain: str
    seq: int
    event_id: str
    reason: str


_COLUMNS = ("seq, chain, event_id, actor, action, target, data, source_address, occurred_at, recorded_at,"
            " prev_hash, hash")
# The agents' audit events about one cycle of a flow (alias ``a``, the flow ``f``): its reference,
# mode and cycle (events from before flow cycles carry none: cycle 1), and the cycle's received_at,
# which tells a cycle 1 started after the agents forgot the reference from the forgotten one.
_OF_CYCLE = ("a.target = f.reference AND a.data->>'mode' = f.mode"
             " AND COALESCE((a.data->>'cycle')::int, 1) = f.cycle"
             " AND (a.data->>'received_at')::timestamptz = f.received_at")


def chain_of(project_id: str | None) -> str:
    return project_id or SYSTEM_CHAIN


def row_hash(*, chain: str, event_id: str, actor: str, action: str, target: str, data: dict[str, Any],
             source_address: str | None, occurred_at: datetime, recorded_at: datetime, prev_hash: str) -> str:
    """SHA-256 (hex) of the row's canonical JSON: sorted keys, no spaces, UTF-8, times in UTC to the
    microsecond (what ``timestamptz`` keeps), so the hash recomputes from the stored row."""
    canonical = json.dumps({
        "chain": chain, "event_id": event_id, "actor": actor, "action": action, "target": target,
        "data": data, "source_address": source_address, "occurred_at": _time(occurred_at),
        "recorded_at": _time(recorded_at), "prev_hash": prev_hash,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


async def append(conn: Connection, event: AuditEvent) -> bool:
    """Append ``event`` to its project's chain; False when its event id is there already (a
    redelivered event), which then changes nothing."""
    return await append_many(conn, [event]) == 1


async def append_many(conn: Connection, events: Sequence[AuditEvent]) -> int:
    """Append ``events``, in their order, each to its project's chain, in one transaction and one
    INSERT; an event whose id is there already (redelivered), or came earlier in ``events``,
    appends nothing. How many were appended."""
    chains = sorted({chain_of(event.project_id) for event in events})
    if not chains:
        return 0
    async with conn.transaction():
        # Held until commit: the next append to these chains reads the heads this one wrote. Taken
        # in one order (output expressions run after ORDER BY), so two appenders never deadlock.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('audit_log:' || chain))"
                           " FROM unnest(%s::text[]) AS chain ORDER BY chain", (chains,))
        seen = {row["event_id"] for row in await (await conn.execute(
            "SELECT event_id FROM audit_log WHERE event_id = ANY(%s)", ([e.event_id for e in events],)
        )).fetchall()}
        heads = {row["chain"]: row["hash"] for row in await (await conn.execute(
            "SELECT c.chain, h.hash FROM unnest(%s::text[]) AS c(chain), LATERAL"
            " (SELECT hash FROM audit_log WHERE chain = c.chain ORDER BY seq DESC LIMIT 1) h", (chains,)
        )).fetchall()}
        recorded_at = datetime.now(UTC)
        rows: list[tuple[object, ...]] = []
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            chain = chain_of(event.project_id)
            prev_hash = heads.get(chain, GENESIS)
            # Through JSON once, so the hash covers exactly what jsonb will give back.
            data = json.loads(json.dumps(event.data))
            heads[chain] = row_hash(chain=chain, event_id=event.event_id, actor=event.actor,
                                    action=event.action, target=event.target, data=data,
                                    source_address=event.source_address, occurred_at=event.occurred_at,
                                    recorded_at=recorded_at, prev_hash=prev_hash)
            rows.append((chain, event.event_id, event.actor, event.action, event.target, Jsonb(data),
                         event.source_address, event.occurred_at, recorded_at, prev_hash, heads[chain]))
        if rows:
            # A VALUES list yields its rows in order, so seq numbers them in chain order.
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
            await conn.execute(
                "INSERT INTO audit_log (chain, event_id, actor, action, target, data, source_address,"
                f"   occurred_at, recorded_at, prev_hash, hash) VALUES {values}",
                [value for row in rows for value in row],
            )
    return len(rows)


async def list_for_chain(conn: Connection, chain: str, *, before_seq: int | None, limit: int,
                         actor: str | None = None, action: str | None = None) -> list[AuditLogRow]:
    """Newest first; only ``actor``'s entries, or only ``action``'s, when given."""
    rows = await (await conn.execute(
        f"SELECT {_COLUMNS} FROM audit_log WHERE chain = %(chain)s"
        " AND (%(before)s::bigint IS NULL OR seq < %(before)s)"
        " AND (%(actor)s::text IS NULL OR actor = %(actor)s)"
        " AND (%(action)s::text IS NULL OR action = %(action)s)"
        " ORDER BY seq DESC LIMIT %(limit)s",
        {"chain": chain, "before": before_seq, "actor": actor, "action": action, "limit": limit},
    )).fetchall()
    return [AuditLogRow(**row) for row in rows]


async def list_for_flow(conn: Connection, chain: str, flow: FlowView, *, limit: int) -> list[AuditLogRow]:
    """The newest ``limit`` entries of ``chain`` about one cycle of a flow, oldest first: the
    agents' events of that cycle (by mode, cycle and received_at, see ``_OF_CYCLE``), and every
    entry about the cycle's incident."""
    rows = await (await conn.execute(
        f"SELECT * FROM (SELECT {_COLUMNS} FROM audit_log a,"
        "     (SELECT %(reference)s AS reference, %(mode)s AS mode, %(cycle)s::int AS cycle,"
        "             %(received_at)s::timestamptz AS received_at) f"
        f"   WHERE a.chain = %(chain)s AND (a.target = %(incident_id)s OR ({_OF_CYCLE}))"
        "   ORDER BY a.seq DESC LIMIT %(limit)s) newest ORDER BY seq",
        {"chain": chain, "reference": flow.reference, "mode": flow.mode, "cycle": flow.cycle,
         "received_at": flow.received_at, "incident_id": flow.incident_id, "limit": limit},
    )).fetchall()
    return [AuditLogRow(**row) for row in rows]


async def chains(conn: Connection) -> list[str]:
    rows = await (await conn.execute("SELECT DISTINCT chain FROM audit_log ORDER BY chain")).fetchall()
    return [row["chain"] for row in rows]


async def verify_chain(conn: Connection, chain: str) -> tuple[int, BrokenLink | None]:
    """Recompute ``chain`` oldest first: how many rows were checked, and the first broken one."""
    prev_hash, checked = GENESIS, 0
    async with conn.transaction(), conn.cursor(name="audit_verify") as cursor:
        await cursor.execute(f"SELECT {_COLUMNS} FROM audit_log WHERE chain = %s ORDER BY seq", (chain,))
        async for found in cursor:
            row = AuditLogRow(**found)
            checked += 1
            if row.prev_hash != prev_hash:
                return checked, BrokenLink(chain, row.seq, row.event_id,
                                           "prev_hash does not match the previous row's hash")
            expected = row_hash(chain=row.chain, event_id=row.event_id, actor=row.actor, action=row.action,
                                target=row.target, data=row.data, source_address=row.source_address,
                                occurred_at=row.occurred_at, recorded_at=row.recorded_at,
                                prev_hash=row.prev_hash)
            if row.hash != expected:
                return checked, BrokenLink(chain, row.seq, row.event_id,
                                           "the row's fields do not match its hash")
            prev_hash = row.hash
    return checked, None


@dataclass(frozen=True)
class MissingTransitions:
    """A flow (one cycle of a reference in one mode) of the read model whose audit trail lacks
    some of its versions."""

    project_id: str
    mode: str
    reference: str
    cycle: int
    version: int
    missing: tuple[int, ...]


# Transitions only: a repeated receipt carries its cycle's version too, and must not stand in
# for a lost transition of that version.
_TRANSITIONS = "a.actor = 'agents' AND a.action LIKE 'flow.%%' AND a.action <> ALL(%(not_transitions)s)"
NOT_TRANSITIONS = ["flow.receipt_repeated", "flow.forgotten"]


async def flows_missing_transitions(conn: Connection, project_id: str) -> list[MissingTransitions]:
    """Every flow of ``project_id`` (each cycle, in each mode) whose transitions ``flow.*`` are not
    all in its audit chain: versions 1 up to the cycle's version in the read model, each at least
    once. (A lost newest transition is not seen here: the read model follows the same events.)"""
    rows = await (await conn.execute(
        "SELECT f.mode, f.reference, f.cycle, f.version,"
        "   array(SELECT v FROM generate_series(1, f.version) AS v"
        "         EXCEPT SELECT (a.data->>'version')::int FROM audit_log a"
        f"           WHERE a.chain = f.project_id AND {_TRANSITIONS} AND {_OF_CYCLE}"
        "         ORDER BY 1) AS missing"
        " FROM flows f WHERE f.project_id = %(project_id)s ORDER BY f.mode, f.reference, f.cycle",
        {"project_id": project_id, "not_transitions": NOT_TRANSITIONS},
    )).fetchall()
    return [MissingTransitions(project_id, row["mode"], row["reference"], row["cycle"], row["version"],
                               tuple(row["missing"]))
            for row in rows if row["missing"]]

"""Batch ingest: ``POST /api/v1/receipts/batch`` and ``POST /api/v1/results/batch``.

``{"items": [...]}``: up to ``MAX_ITEMS`` signals and ``MAX_BATCH_BYTES`` per request, each item the
body of the single endpoint plus its own ``idempotency_key``. The request carries an
``Idempotency-Key`` of its own, so a retried batch gets the stored answer. Item keys share their
namespace with single requests' keys (the project and its mode): a key already seen is a replay and
is not published again; the same key with another body is refused for that item.

One multi-row claim for all items and one round of produce requests; the ``200`` comes once Kafka
acknowledged every accepted item, with one result per item in input order. One bad item never
fails the others. If Kafka does not take every accepted item, the answer is ``503`` and each key
this request claimed and did not get into Kafka is given back (the retry claims it again; those
that did get in are replays then).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from api_gateway.http_input import MAX_BATCH_BYTES, json_body, valid_idempotency_key
from api_gateway.idempotency import give_back, run_idempotent_unheld
from api_gateway.ingest import publish_signals, receipt_signal, result_signal, scope_of, signal_fingerprint
from api_gateway.ingest_bodies import parse_receipt, parse_result
from api_gateway.problems import Problem, invalid_fields, kafka_unavailable
from api_gateway.responses import json_response
from api_gateway.state import POOL, PROJECT
from store import idempotency as records
from store.idempotency import Claim, ClaimOutcome, ClaimRequest, StoredResponse
from store.projects import Project
from topics import Receipt, Result
from topics.fields import FieldErrors, format_timestamp

MAX_ITEMS = 1000

Signal = Receipt | Result
# Builds an item's signal and its answer from its parsed body (see ``api_gateway.ingest``).
MakeSignal = Callable[[web.Request, Project, str, Any, datetime], tuple[Signal, dict[str, object]]]


@dataclass(frozen=True)
class BatchKind:
    name: str  # "receipt" or "result"
    parse: Callable[[Any], Any]
    make: MakeSignal


RECEIPTS = BatchKind("receipt", parse_receipt, receipt_signal)
RESULTS = BatchKind("result", parse_result, result_signal)


@dataclass
class Item:
    """One item of the batch on its way: its key and what it led to."""

    index: int
    key: str | None
    fingerprint: bytes = b""
    body: Any = None
    # Set once decided: the accepted item's answer, or the problem that refused it.
    outcome: str | None = None
    answer: dict[str, Any] | None = None
    problem: Problem | None = None

    def result(self) -> dict[str, Any]:
        head: dict[str, Any] = {"index": self.index, "idempotency_key": self.key, "outcome": self.outcome}
        if self.problem is not None:
            return {**head, "problem": self.problem.to_dict()}
        return {**head, **(self.answer or {})}

    def refuse(self, problem: Problem) -> None:
        self.outcome, self.problem = "rejected", problem


async def post_receipts(request: web.Request) -> web.Response:
    return await _post(request, RECEIPTS)


async def post_results(request: web.Request) -> web.Response:
    return await _post(request, RESULTS)


async def _post(request: web.Request, kind: BatchKind) -> web.Response:
    project: Project = request[PROJECT]
    scope = scope_of(project)
    # Batch keys apart from item keys: a client may well use one string for both.
    return await run_idempotent_unheld(request, f"{scope}:batch", lambda: _run(request, kind, project, scope))


async def _run(request: web.Request, kind: BatchKind, project: Project, scope: str) -> web.Response:
    items = _parsed(await json_body(request, max_bytes=MAX_BATCH_BYTES), kind)
    firsts = _first_of_each_key(items)
    received_at = datetime.now(UTC)
    # Every item's answer has this time: written once, the answers hold only JSON values.
    stamp = format_timestamp(received_at)
    pending = [(item, signal, {**answer, "received_at": stamp}) for item in firsts
               for signal, answer in [kind.make(request, project, item.key or "", item.body, received_at)]]
    async with request.app[POOL].connection() as conn:
        claims = await records.claim_many(conn, [
            ClaimRequest(scope, item.key or "", item.fingerprint, _stored(answer), received_at)
            for item, _, answer in pending])
    await _refuse_if_in_flight(request, scope, [item for item, _, _ in pending], claims)
    owned = [_owned(request, kind, project, item, claim, signal, answer)
             for (item, signal, answer), claim in zip(pending, claims, strict=True)]
    await _publish_all(request, kind, project.mode, scope, [entry for entry in owned if entry is not None])
    _answer_repeats(items)
    return json_response(200, {"items": [item.result() for item in items]})


def _parsed(doc: Any, kind: BatchKind) -> list[Item]:
    raw = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or set(doc) != {"items"} or not isinstance(raw, list):
        raise invalid_fields([("items", "the body must be {\"items\": [...]} and nothing else")])
    if not 1 <= len(raw) <= MAX_ITEMS:
        raise invalid_fields([("items", f"must hold 1 to {MAX_ITEMS} items, got {len(raw)}")])
    return [_item(index, value, kind) for index, value in enumerate(raw)]


def _item(index: int, value: Any, kind: BatchKind) -> Item:
    """The item parsed as the single endpoint parses its body, or refused with the same 422."""
    if not isinstance(value, dict):
        item = Item(index, None)
        item.refuse(invalid_fields([("", "each item must be a JSON object")]))
        return item
    fields = dict(value)
    key = fields.pop("idempotency_key", None)
    usable = isinstance(key, str) and valid_idempotency_key(key)
    # An unusable key is not echoed back: the result's key is one that could be claimed.
    item = Item(index, key if usable else None)
    if not usable:
        item.refuse(invalid_fields([("idempotency_key", "is required: 1-255 visible ASCII characters, "
                                     "unique per signal; reuse it when you retry")]))
        return item
    try:
        item.body = kind.parse(fields)
    except FieldErrors as exc:
        item.refuse(invalid_fields(exc.errors))
        return item
    item.fingerprint = signal_fingerprint(kind.name, fields)
    return item


def _first_of_each_key(items: list[Item]) -> list[Item]:
    """The items still to claim: the first of each key; a later one with that key is settled by
    ``_answer_repeats``."""
    seen: set[str] = set()
    firsts = []
    for item in items:
        if item.outcome is None and item.key not in seen:
            seen.add(item.key or "")
            firsts.append(item)
    return firsts


Owned = tuple[Item, Signal, bool]


async def _refuse_if_in_flight(request: web.Request, scope: str, items: list[Item],
                               claims: list[Claim]) -> None:
    """A key another request is still publishing will soon be a replay or free again: the whole
    batch is a 409 to retry in a moment, with every key it claimed given back. (An answer naming
    the item as refused would be stored with the batch's key, and replayed for good.)"""
    claimed = list(zip(items, claims, strict=True))
    busy = [item.index for item, claim in claimed if claim.outcome is ClaimOutcome.IN_FLIGHT]
    if not busy:
        return
    for item, claim in claimed:
        if claim.outcome is ClaimOutcome.OWNED:
            await give_back(request.app[POOL], scope, item.key or "", taken_over=claim.taken_over)
    raise Problem(409, "idempotency-key-in-flight", "Signals in progress",
                  f"Items {', '.join(map(str, busy))} have idempotency keys another request is still "
                  "processing; retry this batch, with the same Idempotency-Key, in a moment.",
                  headers={"Retry-After": "1"})


def _owned(request: web.Request, kind: BatchKind, project: Project, item: Item, claim: Claim,
           signal: Signal, answer: dict[str, Any]) -> Owned | None:
    """What the claim says of the item (not in flight elsewhere): a replay, a refusal, or the
    signal to publish (with whether the claim was taken over from a request that died)."""
    if claim.outcome is ClaimOutcome.REPLAY:
        assert claim.response is not None  # noqa: S101 (a replay carries its stored response)
        item.outcome, item.answer = "replayed", orjson.loads(claim.response.body)
        return None
    if claim.outcome is ClaimOutcome.MISMATCH:
        item.refuse(Problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                            "This idempotency_key was used with a different signal; use a new key for a "
                            "new signal."))
        return None
    if claim.taken_over:
        # An owner that vanished after storing its answer, perhaps after Kafka's ack: publish that
        # very signal again and give that answer (as a single request does).
        assert claim.response is not None  # noqa: S101 (taken_over means it carries its stored response)
        # A claim stored before migration 0007 has no received_at: its answer still stands, and the
        # signal keeps the time it was stamped with now (as a single request's does).
        if claim.received_at is not None:
            signal, _ = kind.make(request, project, item.key or "", item.body, claim.received_at)
        item.answer = orjson.loads(claim.response.body)
    else:
        item.answer = answer
    item.outcome = "accepted"
    return item, signal, claim.taken_over


async def _publish_all(request: web.Request, kind: BatchKind, mode: str, scope: str,
                       owned: list[Owned]) -> None:
    """Publish every owned item's signal at once and complete the keys Kafka acknowledged; if any
    was not acknowledged, give those keys back and answer 503."""
    pool = request.app[POOL]
    try:
        outcomes = await publish_signals(request, kind.name, mode, [signal for _, signal, _ in owned])
    except BaseException:
        for item, _, taken_over in owned:
            await give_back(pool, scope, item.key or "", taken_over=taken_over)
        raise
    results = list(zip(owned, outcomes, strict=True))
    stored = [item.key or "" for (item, _, _), outcome in results if outcome is None]
    failed = [(entry, outcome) for entry, outcome in results if outcome is not None]
    if stored:
        async with pool.connection() as conn:
            await records.complete_claimed(conn, [(scope, key) for key in stored])
    if not failed:
        return
    for (item, _, taken_over), _ in failed:
        await give_back(pool, scope, item.key or "", taken_over=taken_over)
    raise kafka_unavailable(f"{len(failed)} of the batch's {len(owned)} new signals were not stored; "
                            f"{len(stored)} were, and are replays when you retry", failed[0][1])


def _answer_repeats(items: list[Item]) -> None:
    """An item whose key came earlier in the batch: with the same signal it is a replay of that
    one; with another it is refused, as a single request would be."""
    first: dict[str, Item] = {}
    for item in items:
        if item.key is None or (item.problem is not None and item.fingerprint == b""):
            continue
        earlier = first.setdefault(item.key, item)
        if earlier is item:
            continue
        if item.fingerprint != earlier.fingerprint:
            item.refuse(Problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                                f"Item {earlier.index} of this batch has this idempotency_key with a "
                                "different signal; use a new key for a new signal."))
        elif earlier.problem is not None:
            item.refuse(earlier.problem)
        else:
            item.outcome, item.answer = "replayed", earlier.answer


# One for all items' records: nothing changes a stored response's headers.
_STORED_HEADERS = {"Content-Type": "application/json"}


def _stored(answer: dict[str, Any]) -> StoredResponse:
    """An item's answer as its key's record keeps it: what a single request would have answered."""
    return StoredResponse(202, _STORED_HEADERS, orjson.dumps(answer))

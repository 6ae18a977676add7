"""The topic codec per message: decode + validate and encode a receipt, against ``orjson.loads``
of the same bytes (the baseline: parsing alone, no checks) and against pydantic v2 declaring the
same rules (the other candidate for the one declaration of each message).

    .venv/bin/python -m bench.codec [--runs 5] [--number 20000]

Prints, per run, microseconds per call and the ratio to the baseline of that run, then the
spread. No Kafka, no database: one process, one core.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from topics import Receipt, Snapshot, decode, encode
from topics.fields import MAX_REFERENCE_CHARS, MAX_TIMEOUT_SECONDS, MAX_TYPE_CHARS, MIN_TIMEOUT_SECONDS, Mode

RECEIPT = Receipt(
    project_id="prj_bench01", idempotency_key="3f6c1d2a-8b4e-4c1f-9a7d-2e5b6c8d9f01",
    reference="inv_2026_000123", event_type="invoice.paid", effect_type="grant_access",
    received_at=datetime(2026, 12, 1, 0, 40, 1, 123000, tzinfo=UTC), timeout_seconds=900,
    snapshot=Snapshot(key_id="k2026", nonce="bm9uY2Vub25jZTEy", ciphertext="Y2lwaGVydGV4dA=="),
    mode=Mode.LIVE,
)


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    return value


_TypeName = Annotated[str, Field(min_length=1, max_length=MAX_TYPE_CHARS, pattern=r"^[A-Za-z0-9._:-]+$")]


class _PydanticSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kid: str
    nonce: str
    ct: str


class _PydanticReceipt(BaseModel):
    """The receipt's rules in pydantic v2, as close to ``topics.messages.Receipt`` as it says them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: Literal["receipt.v1"] = Field(alias="schema")
    project_id: Annotated[str, Field(pattern=r"^prj_[A-Za-z0-9]{1,64}$")]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
    reference: Annotated[str, Field(min_length=1, max_length=MAX_REFERENCE_CHARS), AfterValidator(_printable)]
    event_type: _TypeName
    effect_type: _TypeName
    received_at: AwareDatetime
    timeout_seconds: Annotated[int, Field(ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS)] | None = None
    snapshot: _PydanticSnapshot | None = None
    mode: Literal["test", "live"] | None = None


def _per_call_us(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=3)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    raw = encode(RECEIPT)
    assert decode(Receipt, raw) == RECEIPT
    assert _PydanticReceipt.model_validate_json(raw).reference == RECEIPT.reference
    cases: dict[str, Callable[[], object]] = {
        "decode: topics.decode": lambda: decode(Receipt, raw),
        "decode: pydantic v2": lambda: _PydanticReceipt.model_validate_json(raw),
        "encode: topics.encode": lambda: encode(RECEIPT),
    }
    ratios: dict[str, list[float]] = {name: [] for name in cases}
    micros: dict[str, list[float]] = {name: [] for name in cases}
    for run in range(1, args.runs + 1):
        baseline = _per_call_us(lambda: orjson.loads(raw), args.number)
        line = [f"run {run}: orjson.loads {baseline:.2f} µs"]
        for name, call in cases.items():
            us = _per_call_us(call, args.number)
            micros[name].append(us)
            ratios[name].append(us / baseline)
            line.append(f"{name} {us:.2f} µs ({us / baseline:.1f}x)")
        print("; ".join(line), flush=True)
    print(f"receipt: {len(raw)} bytes")
    for name in cases:
        print(f"{name}: {min(micros[name]):.2f}-{max(micros[name]):.2f} µs, "
              f"{min(ratios[name]):.1f}-{max(ratios[name]):.1f}x orjson.loads "
              f"(median {statistics.median(ratios[name]):.1f}x)")


if __name__ == "__main__":
    main()

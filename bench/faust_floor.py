"""The framework's floor: a faust agent that reads the receipts and results and only deserializes
them (no table, no outputs), to tell faust's own cost per message from the agents'.

With FLOOR_TABLE=1 the agent also writes each message's value, as raw bytes, to a RocksDB table
keyed by the message's key, as the agents write a flow's document: the least a faust table write
per message can cost (faust's changelog send and its offset bookkeeping, and the RocksDB put),
with no value encoding and no state machine.

Run by ``bench.agents throughput`` as ``python -m bench.faust_floor``, configured by
the environment: FLOOR_PREFIX (topic prefix), FLOOR_BOOTSTRAP, FLOOR_MESSAGES (how many to read),
FLOOR_DATADIR, FLOOR_PARTITIONS (the inputs' partitions, for the table's changelog), FLOOR_TABLE.
It prints ``FLOOR <messages/s>`` (faust logs it) and exits once it has read them all.
"""

from __future__ import annotations

import os
import time

import faust

from topics import RECEIPTS, RESULTS, Receipt, Result, decode

PREFIX, BOOTSTRAP, MESSAGES = (
    os.environ["FLOOR_PREFIX"], os.environ["FLOOR_BOOTSTRAP"], int(os.environ["FLOOR_MESSAGES"]),
)
DATADIR = os.environ["FLOOR_DATADIR"]
WITH_TABLE = os.environ.get("FLOOR_TABLE") == "1"

app = faust.App(f"{PREFIX}faust-floor-{os.getpid()}", broker=f"kafka://{BOOTSTRAP}",
                store="rocksdb://" if WITH_TABLE else "memory://", datadir=f"{DATADIR}-{os.getpid()}",
                topic_partitions=int(os.environ.get("FLOOR_PARTITIONS", "8")),
                consumer_auto_offset_reset="earliest", web_enabled=False)
receipts = RECEIPTS.name(PREFIX)
inputs = app.topic(receipts, RESULTS.name(PREFIX), key_serializer="raw", value_serializer="raw")
table = app.Table("floor", key_type=bytes, value_type=bytes) if WITH_TABLE else None


@app.agent(inputs)
async def deserialize(stream: faust.StreamT) -> None:
    seen, started = 0, time.perf_counter()
    async for event in stream.events():
        decode(Receipt if event.message.topic == receipts else Result, event.value)
        if table is not None:
            table[event.key] = event.value
        seen += 1
        if seen == 1:
            started = time.perf_counter()
        if seen == MESSAGES:
            print(f"FLOOR {(MESSAGES - 1) / (time.perf_counter() - started):.0f}", flush=True)
            os._exit(0)  # a faust worker takes seconds to stop; the figure is out


if __name__ == "__main__":
    worker = faust.Worker(app, loglevel="warning")
    # As the agents' worker (agents.app.run_worker): faust's spinner would build a log record for
    # every debug line of faust and aiokafka, a cost the agents do not pay.
    worker.spinner = None
    worker.execute_from_commandline()

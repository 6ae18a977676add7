"""The framework's floor: a faust agent that reads the receipts and results and only deserializes
them (no table, no outputs), to tell faust's own cost per message from the agents'.

Run by ``bench.agents throughput`` as ``python -m bench.faust_floor worker -l warn``, configured by
the environment: FLOOR_PREFIX (topic prefix), FLOOR_BOOTSTRAP, FLOOR_MESSAGES (how many to read),
FLOOR_DATADIR. It prints ``FLOOR <messages/s>`` (faust logs it) and exits once it has read them all.
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

app = faust.App(f"{PREFIX}faust-floor-{os.getpid()}", broker=f"kafka://{BOOTSTRAP}", store="memory://",
                datadir=DATADIR, consumer_auto_offset_reset="earliest", web_enabled=False)
receipts = RECEIPTS.name(PREFIX)
inputs = app.topic(receipts, RESULTS.name(PREFIX), key_serializer="raw", value_serializer="raw")


@app.agent(inputs)
async def deserialize(stream: faust.StreamT) -> None:
    seen, started = 0, time.perf_counter()
    async for event in stream.events():
        decode(Receipt if event.message.topic == receipts else Result, event.value)
        seen += 1
        if seen == 1:
            started = time.perf_counter()
        if seen == MESSAGES:
            print(f"FLOOR {(MESSAGES - 1) / (time.perf_counter() - started):.0f}", flush=True)
            os._exit(0)  # a faust worker takes seconds to stop; the figure is out


if __name__ == "__main__":
    app.main()

#!/usr/bin/python3
"""Fan-out with python-websockets' broadcast() (make bench; issue 16): one
message to N server-side connections whose transports discard what is
written (no kernel), as tests/bench/fanout.c takes wsmsg's output.

    fanout_python.py N [SECONDS]  -> one JSON line
Allocation: tracemalloc's count of bytes allocated during the timed
publishes is not available cheaply; the line reports the peak traced
memory growth per delivery over one publish instead."""
import asyncio
import json
import sys
import time
import tracemalloc

import websockets
from websockets.legacy.protocol import WebSocketCommonProtocol
from websockets.legacy.protocol import State


class Sink(asyncio.Transport):
    def write(self, data):
        pass

    def writelines(self, data):
        pass

    def is_closing(self):
        return False

    def get_write_buffer_size(self):
        return 0

    def get_extra_info(self, name, default=None):
        return default

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


async def main(n, secs):
    conns = []
    for _ in range(n):
        p = WebSocketCommonProtocol()
        p.connection_made(Sink())
        p.state = State.OPEN
        p.is_client = False
        p.side = "server"
        conns.append(p)
    msg = "x" * 64
    websockets.broadcast(conns, msg)  # warm-up
    tracemalloc.start()
    snap0 = tracemalloc.get_traced_memory()[0]
    websockets.broadcast(conns, msg)
    peak = tracemalloc.get_traced_memory()[1] - snap0
    tracemalloc.stop()
    deliveries = publishes = 0
    t0 = time.process_time()  # CPU time: wall time would measure the neighbours
    while time.process_time() - t0 < secs:
        for _ in range(4):
            websockets.broadcast(conns, msg)
            deliveries += n
            publishes += 1
    el = time.process_time() - t0
    print(json.dumps({"impl": "python-websockets", "subscribers": n,
                      "publishes": publishes,
                      "deliveries_per_s": round(deliveries / el),
                      "peak_bytes_per_delivery_one_publish": round(peak / n, 1)}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 1.0))

#!/usr/bin/python3
"""End-to-end chat benchmark (make bench; issue 16): messages per second
and latency from a say to every member, through HAProxy, chat_server and
Redis, with 1 and 3 backends.  Uses tests/cluster/run.py's Cluster (its own
redis-server and haproxy on free ports, stopped by PID).

    chat_e2e.py [BACKENDS...] [--clients N] [--msgs M] [--rates 0,300]

Per backend count, one run per rate: 0 sends as fast as the connections
take it (throughput; latency is then queueing), a rate R paces the
clients to R says/s in all (latency at a load the system carries).

60 clients in 6 rooms (10 members each); every client sends M messages
as fast as the connection takes them; each carries its send time, and
every member that receives it records the delay.  The clients are one
python3-websockets process: on a 2-core machine they, not the servers,
are the limit (docs/benchmarks.md)."""
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
import run as cluster  # noqa: E402
import websockets  # noqa: E402


async def bench(backends, nclients, msgs, rate=0):
    cl = await cluster.Cluster(backends=backends).start()
    try:
        rooms = 6
        lat = []
        got = [0]
        want = nclients * msgs * (nclients // rooms)
        done = asyncio.Event()
        conns = []

        async def reader(ws):
            async for raw in ws:
                m = json.loads(raw)
                if m.get("type") == "said":
                    lat.append(time.perf_counter_ns() - int(m["text"]))
                    got[0] += 1
                    if got[0] >= want:
                        done.set()

        for i in range(nclients):
            ws = await websockets.connect(cl.url(), ping_interval=None, max_queue=None)
            await ws.send(json.dumps({"type": "join", "room": "r%d" % (i % rooms),
                                      "name": "c%d" % i}))
            await ws.recv()
            conns.append((ws, "r%d" % (i % rooms)))
        readers = [asyncio.ensure_future(reader(ws)) for ws, _ in conns]
        await asyncio.sleep(0.5)  # let the joined messages settle (not timed)

        gap = nclients / rate if rate else 0  # s between one client's says

        async def sender(k, ws, room):
            if gap:  # spread the clients over the period
                await asyncio.sleep(gap * k / nclients)
            for _ in range(msgs):
                await ws.send(json.dumps({"type": "say", "room": room,
                                          "text": str(time.perf_counter_ns())}))
                if gap:  # pacing the load, not synchronizing
                    await asyncio.sleep(gap)
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(k, ws, r) for k, (ws, r) in enumerate(conns)))
        await asyncio.wait_for(done.wait(), 120)
        el = time.perf_counter() - t0
        for ws, _ in conns:
            await ws.close()
        for r in readers:
            r.cancel()
        lat.sort()
        ms = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6
        return {"bench": "chat_e2e", "backends": backends, "clients": nclients,
                "offered_says_per_s": rate or "max",
                "rooms": rooms, "says": nclients * msgs, "deliveries": got[0],
                "says_per_s": round(nclients * msgs / el),
                "deliveries_per_s": round(got[0] / el),
                "p50_ms": round(ms(0.50), 2), "p99_ms": round(ms(0.99), 2)}
    finally:
        cl.stop()


def main(argv):
    nclients, msgs, backends, rates = 60, 50, [], [0, 300]
    i = 0
    while i < len(argv):
        if argv[i] == "--clients":
            nclients = int(argv[i + 1]); i += 2
        elif argv[i] == "--rates":
            rates = [int(x) for x in argv[i + 1].split(",")]; i += 2
        elif argv[i] == "--msgs":
            msgs = int(argv[i + 1]); i += 2
        else:
            backends.append(int(argv[i])); i += 1
    for b in backends or [1, 3]:
        for r in rates:
            print(json.dumps(asyncio.run(bench(b, nclients, msgs if not r else max(msgs // 5, 5), r))),
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/python3
"""Cluster tests for examples/chat (make check-cluster): real redis-server,
real HAProxy and several chat_server processes on free loopback ports.

Each case starts its own redis-server and haproxy (configs from
examples/chat/, a data directory of its own), waits until each answers, and
stops everything it started by PID, also when it fails.  Clients are
python3-websockets.  Every wait is bounded; nothing sleeps to synchronize
(clients wait for the messages they expect, with a deadline).

    tests/cluster/run.py            every case
    tests/cluster/run.py CASE...    the named cases (--list shows them)

Messages carry "<sender>:<seq>" as text, so a receiver checks exactly-once
(every id once) and per-sender order (seq increasing).
"""
import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT = os.path.join(ROOT, os.environ.get("EXAMPLE_BIN", "examples"), "chat", "chat_server")
HAPROXY_CFG = os.path.join(ROOT, "examples", "chat", "haproxy.cfg")
REDIS_CFG = os.path.join(ROOT, "examples", "chat", "redis.conf")
BOUND = 30.0  # seconds: the longest any single wait may take


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A process this test started; stopped by its PID only."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  env=env, cwd=ROOT)
        self.pid = self.p.pid

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=5.0):
        if self.alive():
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()
        return self.p.returncode


@contextlib.contextmanager
def logs_kept_on_failure(cl):
    """Stop the cluster `cl` at the end of the block; if the block fails,
    print the cluster's logs first and keep them (their directory too)."""
    try:
        yield cl
    except BaseException:
        print(cl.logs(), file=sys.stderr)
        cl.stop(keep=True)
        print("logs kept in " + cl.dir, file=sys.stderr)
        raise
    finally:
        cl.stop()


async def until(cond, what, bound=BOUND):
    """Wait (bounded) until cond() is true; fail with `what`."""
    deadline = time.monotonic() + bound
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep(0.02)


def tcp_answers(port, send=None, expect=None):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if send is None:
                return True
            s.sendall(send)
            return expect in s.recv(256)
    except OSError:
        return False


def http_status(port, path="/healthz"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            head = s.recv(256)
            return int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else 0
    except (OSError, ValueError, IndexError):
        return 0


class Cluster:
    """redis-server + chat_server processes (+ haproxy)."""

    def __init__(self, backends=3, workers=1, redis=True, balancer=True):
        self.dir = tempfile.mkdtemp(prefix="wsmsg-cluster-")
        self.procs = []
        self.redis = None
        self.redis_port = free_port() if redis else None
        self.backend_ports = [free_port() for _ in range(backends)]
        self.workers = workers
        self.backends = []
        self.haproxy = None
        self.lb_port = free_port() if balancer else None
        self.balancer = balancer

    async def start(self):
        if self.redis_port:
            await self.start_redis()
        for i, port in enumerate(self.backend_ports):
            self.backends.append(await self.start_backend(i, port))
        if self.balancer:
            env = dict(os.environ, CHAT_BIND="127.0.0.1:%d" % self.lb_port)
            for i in range(3):
                port = self.backend_ports[i % len(self.backend_ports)]
                env["CHAT_S%d" % (i + 1)] = "127.0.0.1:%d" % port
            self.haproxy = self.spawn("haproxy", ["haproxy", "-f", HAPROXY_CFG, "-db"],
                                      env=env)
            await until(lambda: http_status(self.lb_port) == 200,
                        "haproxy to answer /healthz")
        return self

    def spawn(self, name, argv, env=None):
        p = Proc(name, argv, self.dir, env)
        self.procs.append(p)
        return p

    async def start_redis(self):
        data = os.path.join(self.dir, "redis")
        os.makedirs(data, exist_ok=True)
        self.redis = self.spawn("redis-%d" % len(self.procs),
                                ["redis-server", REDIS_CFG, "--port", str(self.redis_port),
                                 "--dir", data])
        await until(lambda: tcp_answers(self.redis_port, b"PING\r\n", b"+PONG"),
                    "redis-server to answer PING")

    async def start_backend(self, i, port):
        argv = [CHAT, "--port", str(port), "--workers", str(self.workers),
                "--drain-timeout", "3000"]
        if self.redis_port:
            argv += ["--redis", "127.0.0.1:%d" % self.redis_port]
        p = self.spawn("chat%d-%d" % (i, len(self.procs)), argv)
        want = self.workers if self.redis_port else 0
        await until(lambda: "listening on" in p.text() and
                    p.text().count("redis: subscribed") >= want,
                    "chat_server %d to listen%s" % (i, " and subscribe" if want else ""))
        return p

    def url(self, port=None):
        return "ws://127.0.0.1:%d/" % (port or self.lb_port)

    def stop(self, keep=False):
        for p in reversed(self.procs):
            p.stop()
        if keep:
            self.kept = True
        elif not getattr(self, "kept", False):
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        out = []
        for p in self.procs:
            try:
                out.append("---- %s (pid %d) ----\n%s" % (p.name, p.pid, p.text()[-3000:]))
            except OSError:
                pass
        return "\n".join(out)


class Client:
    """A chat member: one room, a unique name, counts what it receives."""

    def __init__(self, name, room, url):
        self.name, self.room, self.url = name, room, url
        self.seq = 0
        self.got = collections.defaultdict(list)  # sender -> [seq...]
        self.ids = set()
        self.dups = []
        self.origin = None     # the backend (id prefix) that echoed us
        self.origins = []      # every backend it was on
        self.closes = []       # close codes it saw
        self.ws = None
        self.joined = asyncio.Event()
        self.reader = None
        self.reconnects = 0

    async def connect(self, bound=BOUND):
        deadline = time.monotonic() + bound
        while True:
            try:
                self.ws = await websockets.connect(self.url, ping_interval=None,
                                                   max_queue=None, open_timeout=5,
                                                   close_timeout=5)
                break
            except (OSError, websockets.InvalidStatusCode, websockets.InvalidMessage,
                    asyncio.TimeoutError, websockets.ConnectionClosed):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)  # back off before the next attempt
        self.joined = asyncio.Event()
        self.reader = asyncio.ensure_future(self.read(self.ws))
        await self.ws.send(json.dumps({"type": "join", "room": self.room,
                                       "name": self.name}))
        await asyncio.wait_for(self.joined.wait(), bound)

    async def read(self, ws):
        try:
            async for raw in ws:
                m = json.loads(raw)
                t = m.get("type")
                if t == "joined" and m["name"] == self.name:
                    self.joined.set()
                elif t == "said":
                    if m["id"] in self.ids:
                        self.dups.append(m["id"])
                        continue
                    self.ids.add(m["id"])
                    sender, seq = m["text"].rsplit(":", 1)
                    assert sender == m["from"], m
                    assert m["room"] == self.room, m
                    self.got[sender].append(int(seq))
                    if sender == self.name:
                        origin = m["id"].rsplit("-", 1)[0]
                        if origin != self.origin:
                            self.origin = origin
                            self.origins.append(origin)
            self.closes.append(ws.close_code)  # a normal close (1000, 1001)
        except websockets.ConnectionClosed as e:
            self.closes.append(e.rcvd.code if e.rcvd else 1006)

    async def say(self):
        self.seq += 1
        await self.ws.send(json.dumps({"type": "say", "room": self.room,
                                       "text": "%s:%d" % (self.name, self.seq)}))

    async def close(self):
        if self.ws:
            await self.ws.close()
        if self.reader:
            await asyncio.wait_for(self.reader, BOUND)


def check_exactly_once(clients, senders_of=None, complete=None):
    """Every client got, from every other member of its room, each message
    once and in the sender's order.  `complete(sender)`: the seqs a member
    must have from that sender (default 1..seq: all of them)."""
    rooms = collections.defaultdict(list)
    for c in clients:
        rooms[c.room].append(c)
    problems = []
    for c in clients:
        if c.dups:
            problems.append("%s: duplicates %s" % (c.name, c.dups[:3]))
        for s in (senders_of(c) if senders_of else rooms[c.room]):
            seqs = c.got.get(s.name, [])
            if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
                problems.append("%s from %s: out of order %s" % (c.name, s.name, seqs))
            want = complete(s) if complete else list(range(1, s.seq + 1))
            missing = sorted(set(want) - set(seqs))
            if missing:
                problems.append("%s from %s: missing %s" % (c.name, s.name, missing[:5]))
    assert not problems, "%d problem(s): %s" % (len(problems), problems[:8])


async def wait_delivered(clients, bound=BOUND, senders_of=None, complete=None):
    rooms = collections.defaultdict(list)
    for c in clients:
        rooms[c.room].append(c)

    def done():
        for c in clients:
            for s in (senders_of(c) if senders_of else rooms[c.room]):
                want = complete(s) if complete else range(1, s.seq + 1)
                if not set(want) <= set(c.got.get(s.name, ())):
                    return False
        return True
    await until(done, "every member to get every message", bound)


async def settle(clients, complete=None):
    """One more round, sent once everything before it was delivered: a
    marker from another backend travels through Redis behind everything
    that backend published before, so a late duplicate (a message coming
    back from the bus a second time) would arrive before the markers do."""
    await wait_delivered(clients, complete=complete)
    marks = {c.name: c.seq + 1 for c in clients}
    await asyncio.gather(*(c.say() for c in clients))
    await wait_delivered(clients, complete=lambda s: [marks[s.name]])


async def connect_all(clients, batch=50):
    for i in range(0, len(clients), batch):
        await asyncio.gather(*(c.connect() for c in clients[i:i + batch]))


# ---- cases -------------------------------------------------------------------

async def case_exactly_once_300_clients_3_backends():
    """300 clients over 3 chat_server processes through HAProxy, 20 rooms:
    every said reaches every member of its room exactly once, in order."""
    cl = await Cluster(backends=3).start()
    with logs_kept_on_failure(cl):
        # the page for browsers, through the balancer
        with socket.create_connection(("127.0.0.1", cl.lb_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            page = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                page += chunk
        assert page.startswith(b"HTTP/1.1 200") and b"new WebSocket(" in page, page[:200]
        clients = [Client("c%d" % i, "room%d" % (i % 20), cl.url()) for i in range(300)]
        await connect_all(clients)
        for _ in range(5):
            await asyncio.gather(*(c.say() for c in clients))
        await settle(clients)
        check_exactly_once(clients)
        origins = {c.origin.split("w")[0] for c in clients}
        assert len(origins) == 3, "clients did not spread over 3 backends: %s" % origins
        deliveries = sum(len(v) for c in clients for v in c.got.values())
        assert deliveries == 300 * 6 * 15, deliveries
        await asyncio.gather(*(c.close() for c in clients))
        return "%d deliveries, 3 backends" % deliveries


async def failover(sig):
    """Shared by the kill -9 and SIGTERM cases: 60 clients over 3 backends
    through HAProxy; one backend is stopped with `sig` while everyone
    sends; its clients reconnect through the balancer and rejoin; the
    others lose nothing; a final round reaches everyone."""
    cl = await Cluster(backends=3).start()
    with logs_kept_on_failure(cl):
        clients = [Client("c%d" % i, "room%d" % (i % 6), cl.url()) for i in range(60)]
        await connect_all(clients)
        # round 1 tells each client its backend (the id of its own echo)
        await asyncio.gather(*(c.say() for c in clients))
        await wait_delivered(clients)
        victim = cl.backends[1]
        vorigin = "p%dw0" % victim.pid
        victims = [c for c in clients if c.origin == vorigin]
        survivors = [c for c in clients if c.origin != vorigin]
        assert victims and survivors, "no client on the victim backend"
        first_gone = {}

        async def run(c, n):
            for _ in range(n):
                if c.reader.done():  # our backend went away: back in line
                    first_gone.setdefault(c.name, c.seq)
                    c.reconnects += 1
                    await c.connect()
                try:
                    await c.say()
                except websockets.ConnectionClosed:
                    pass  # lost with the backend; the next round reconnects
                await asyncio.sleep(0.01)  # pace the load so the stop lands mid-run

        async def stopper():
            await until(lambda: sum(c.seq for c in clients) >= 60 + 60 * 5,
                        "the run to get going")
            victim.signal(sig)
        await asyncio.gather(stopper(), *(run(c, 15) for c in clients))
        # victims that had not noticed yet do now
        for c in victims:
            await until(lambda c=c: c.reader.done() or c.reconnects, "victim sees the end")
            if not c.reconnects:
                c.reconnects += 1
                await c.connect()
        # final round: everyone, victims included, reaches everyone
        final_from = {c.name: c.seq + 1 for c in clients}
        await asyncio.gather(*(c.say() for c in clients))
        byname = {c.name: c for c in clients}

        def complete_survivors(s):
            if s in survivors:
                return range(1, s.seq + 1)
            return [final_from[s.name]]
        # the survivors lose nothing from survivors, and get the victims'
        # final messages; the victims get every final message
        await wait_delivered(survivors, complete=complete_survivors)
        check_exactly_once(survivors, complete=complete_survivors)
        await wait_delivered(victims, complete=lambda s: [final_from[s.name]])
        check_exactly_once(victims, complete=lambda s: [final_from[s.name]])
        for c in victims:
            assert c.origins[-1] != vorigin, "%s still on the victim" % c.name
            assert c.reconnects >= 1, c.name
        codes = collections.Counter(code for c in victims for code in c.closes)
        rc = victim.p.wait(10)
        del byname
        return victims, codes, rc


async def case_kill9_backend():
    """kill -9 a backend mid-run: its clients see the connection end (1006),
    reconnect through HAProxy to the survivors and rejoin; the others lose
    nothing."""
    victims, codes, rc = await failover(signal.SIGKILL)
    assert rc == -signal.SIGKILL, rc
    assert set(codes) == {1006}, codes
    return "%d clients moved; closes %s" % (len(victims), dict(codes))


async def case_sigterm_backend():
    """SIGTERM a backend mid-run: its clients get 1001 going away, reconnect
    and rejoin; the backend exits 0 after the drain; the others lose
    nothing."""
    victims, codes, rc = await failover(signal.SIGTERM)
    assert rc == 0, "chat_server exited %s after SIGTERM" % rc
    assert set(codes) == {1001}, codes
    return "%d clients moved; closes %s" % (len(victims), dict(codes))


async def case_redis_restart():
    """Restart redis-server: the backends lose it (healthz 503), reconnect
    with backoff once it is back and resume.  During the outage a message
    reaches its own backend's members only: it is lost for the others, as
    docs/scaling.md says (pub/sub is at-most-once)."""
    cl = await Cluster(backends=2, balancer=False).start()
    with logs_kept_on_failure(cl):
        ports = cl.backend_ports
        clients = [Client("c%d" % i, "room%d" % (i % 4), cl.url(ports[i % 2]))
                   for i in range(40)]
        await connect_all(clients)
        await asyncio.gather(*(c.say() for c in clients))
        await wait_delivered(clients)
        check_exactly_once(clients)
        cl.redis.stop()
        await until(lambda: all(http_status(p) == 503 for p in ports),
                    "both backends to notice redis is gone")
        # the outage message: local members only
        await asyncio.gather(*(c.say() for c in clients))
        same = lambda c: [s for s in clients if s.room == c.room and s.origin == c.origin]
        await wait_delivered(clients, senders_of=same)
        for c in clients:
            for s in clients:
                if s.room == c.room and s.origin != c.origin:
                    assert 2 not in c.got[s.name], "%s got %s's outage message" % (c.name, s.name)
        t0 = time.monotonic()
        await cl.start_redis()  # same port
        await until(lambda: all(http_status(p) == 200 for p in ports),
                    "both backends to resubscribe")
        back = time.monotonic() - t0
        for b in cl.backends:
            assert b.text().count("redis: subscribed") >= 2, b.text()[-500:]
        # resumed: round 3 reaches everyone exactly once
        await asyncio.gather(*(c.say() for c in clients))
        await settle(clients, complete=lambda s: [1, 3])
        check_exactly_once(clients, complete=lambda s: [1, 3, 4])
        await asyncio.gather(*(c.close() for c in clients))
        return "resubscribed %.1f s after redis came back" % back


async def workers2(redis):
    cl = await Cluster(backends=1, workers=2, redis=redis, balancer=False).start()
    with logs_kept_on_failure(cl):
        clients = [Client("c%d" % i, "room%d" % (i % 10), cl.url(cl.backend_ports[0]))
                   for i in range(100)]
        await connect_all(clients)
        for _ in range(5):
            await asyncio.gather(*(c.say() for c in clients))
        await settle(clients)
        check_exactly_once(clients)
        workers = {c.origin for c in clients}
        assert len(workers) == 2, "SO_REUSEPORT used one worker only: %s" % workers
        await asyncio.gather(*(c.close() for c in clients))
        return "%d clients on workers %s" % (len(clients), sorted(workers))


async def case_workers2_redis():
    """--workers 2 with Redis: exactly-once inside one process."""
    return await workers2(True)


async def case_workers2_handoff():
    """--workers 2 without Redis: the in-process hand-off between the
    threads, exactly-once."""
    return await workers2(False)


CASES = [case_exactly_once_300_clients_3_backends, case_kill9_backend,
         case_sigterm_backend, case_redis_restart, case_workers2_redis,
         case_workers2_handoff]


def main(argv):
    if "--list" in argv:
        for c in CASES:
            print(c.__name__)
        return 0
    for tool in ("redis-server", "haproxy"):
        if not shutil.which(tool):
            print("check-cluster: %s is missing (apt-get install redis-server haproxy)" % tool,
                  file=sys.stderr)
            return 1
    if not os.access(CHAT, os.X_OK):
        print("check-cluster: %s is missing (make chat)" % CHAT, file=sys.stderr)
        return 1
    chosen = [c for c in CASES if not argv or c.__name__ in argv]
    if argv and len(chosen) != len(argv):
        print("check-cluster: unknown case in %s (--list)" % argv, file=sys.stderr)
        return 2
    t_all = time.monotonic()
    failed = 0
    for case in chosen:
        t = time.monotonic()
        try:
            note = asyncio.run(asyncio.wait_for(case(), 120))
            print("  PASS %s (%.1fs) %s" % (case.__name__, time.monotonic() - t, note or ""))
        except BaseException as e:  # noqa: BLE001 -- report and go on
            failed += 1
            print("  FAIL %s (%.1fs): %r" % (case.__name__, time.monotonic() - t, e))
    print("check-cluster: %d/%d passed in %.1fs" % (len(chosen) - failed, len(chosen),
                                                   time.monotonic() - t_all))
    return 1 if failed or not chosen else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

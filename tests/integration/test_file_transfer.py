"""examples/file_transfer: ft_client -> ft_server with a 200 MiB file, the
server's memory measured; protocol errors from a python3-websockets client.

FT_MIB sets the big file's size (default 200).  CASE=protocol runs the
cases whose name contains "protocol"; a filter that matches nothing fails.
"""
import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsharness import (count_ok, run_one, sanitizer_report,  # noqa: E402
                       wait_listening)

BIN = os.environ.get("EXAMPLE_BIN", "examples")
FT = os.path.join(BIN, "file_transfer") if os.path.isdir(
    os.path.join(BIN, "file_transfer")) else BIN
MIB = int(os.environ.get("FT_MIB", "200"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def start_server(port, d, errf):
    p = subprocess.Popen([os.path.join(FT, "ft_server"), "--port", str(port),
                          "--dir", d, "--max-size", str(300 << 20)],
                         stderr=errf)
    try:
        wait_listening(port, p, timeout=30)
    except RuntimeError:
        p.kill()
        p.wait(timeout=10)
        raise
    return p


def big_transfer(port, d, work):
    path = os.path.join(work, "big.bin")
    h = hashlib.sha256()
    with open(path, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(MIB):
            chunk = bytes([i & 255]) + block[1:]
            f.write(chunk)
            h.update(chunk)
    out = subprocess.run([os.path.join(FT, "ft_client"), path,
                          f"ws://127.0.0.1:{port}/upload"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout, out.stderr)
    lines = [json.loads(l) for l in out.stdout.splitlines()]
    assert lines[0]["status"] == "READY", lines
    final = lines[-1]
    assert final["status"] == "FILE_RECEIVED", final
    assert final["size"] == MIB << 20 and final["sha256"] == h.hexdigest()
    stored = os.path.join(d, final["file"])
    with open(stored, "rb") as f:
        h2 = hashlib.sha256()
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h2.update(b)
    assert h2.hexdigest() == h.hexdigest()
    os.unlink(stored)
    os.unlink(path)


async def protocol_errors(port):
    url = f"ws://127.0.0.1:{port}/upload"
    async with websockets.connect(url, max_size=None) as ws:
        # binary before any header
        await ws.send(b"data")
        r = json.loads(await ws.recv())
        assert r["error"] == "no_header", r
        # malformed headers
        for bad in ["not json", '{"name": "x"}', '{"name": "x", "size": -1, "sha256": "%s"}' % ("0" * 64),
                    '{"name": "x", "size": 1, "sha256": "XYZ"}']:
            await ws.send(bad)
            r = json.loads(await ws.recv())
            assert r["error"] == "bad_header", (bad, r)
        # too large for --max-size
        await ws.send(json.dumps({"name": "x", "size": 1 << 40, "sha256": "0" * 64}))
        assert json.loads(await ws.recv())["error"] == "too_large"
        # wrong digest: sent in three binary messages
        data = os.urandom(300000)
        await ws.send(json.dumps({"name": "../../etc/passwd", "size": len(data),
                                  "sha256": "0" * 64}))
        r = json.loads(await ws.recv())
        assert r["status"] == "READY" and "/" not in r["file"] and not r["file"].startswith("."), r
        for i in range(3):
            await ws.send(data[i * 100000:(i + 1) * 100000])
        r = json.loads(await ws.recv())
        assert r["error"] == "sha256_mismatch", r
        # right digest, several messages, path-like name made safe
        await ws.send(json.dumps({"name": "a/b/ok file?.txt", "size": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest()}))
        r = json.loads(await ws.recv())
        assert r["status"] == "READY" and r["file"].endswith("okfile.txt"), r
        await ws.send(data[:1000])
        await ws.send(data[1000:])
        r = json.loads(await ws.recv())
        assert r["status"] == "FILE_RECEIVED" and r["size"] == len(data), r
        # more bytes than announced
        await ws.send(json.dumps({"name": "s", "size": 10, "sha256": "0" * 64}))
        assert json.loads(await ws.recv())["status"] == "READY"
        await ws.send(b"x" * 11)
        assert json.loads(await ws.recv())["error"] == "size_exceeded"
        # an empty file
        await ws.send(json.dumps({"name": "empty", "size": 0,
                                  "sha256": hashlib.sha256(b"").hexdigest()}))
        assert json.loads(await ws.recv())["status"] == "READY"
        assert json.loads(await ws.recv())["status"] == "FILE_RECEIVED"
        # a header while an upload is running
        await ws.send(json.dumps({"name": "p", "size": 5, "sha256": "0" * 64}))
        assert json.loads(await ws.recv())["status"] == "READY"
        await ws.send(json.dumps({"name": "q", "size": 5, "sha256": "0" * 64}))
        assert json.loads(await ws.recv())["error"] == "upload_in_progress"
    # the unfinished upload was removed when the connection closed


def main():
    work = tempfile.mkdtemp(prefix="wsmsg-ft-")
    d = os.path.join(work, "store")
    os.mkdir(d)
    port = free_port()
    errf = tempfile.TemporaryFile(mode="w+")
    srv = start_server(port, d, errf)

    def case_big_transfer():
        idle = status_kib(srv.pid, "VmRSS")
        t0 = time.monotonic()
        big_transfer(port, d, work)
        took = time.monotonic() - t0
        peak = status_kib(srv.pid, "VmHWM")
        grow = peak - idle
        print(f"  {MIB} MiB transfer: {took:.1f}s, server RSS idle {idle} KiB, "
              f"peak {peak} KiB (+{grow} KiB)")
        assert grow < 4096, grow   # a few MiB at most, whatever the file size

    def case_protocol_errors():
        asyncio.run(protocol_errors(port))
        # the server removes the unfinished upload when it handles the
        # close, which the client cannot observe: poll (bounded)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(
                f.endswith(".part") for f in os.listdir(d)):
            time.sleep(0.05)
        left = os.listdir(d)
        assert not any(f.endswith(".part") for f in left), left
        print("  protocol errors: no_header, bad_header, too_large, "
              "sha256_mismatch, size_exceeded, upload_in_progress, safe names")

    cases = [("big_transfer", case_big_transfer),
             ("protocol_errors", case_protocol_errors)]
    only = os.environ.get("CASE")
    run = [(n, fn) for n, fn in cases if not only or only in n]
    print(f"test_file_transfer: {len(run)} cases", flush=True)
    failed = []
    try:
        if not count_ok("test_file_transfer", len(run), len(cases)):
            return 1
        for n, fn in run:
            if not run_one(n, fn):
                failed.append(n)
        if not failed and len(run) == len(cases):
            # nothing but the two good files (no .part left behind)
            left = sorted(os.listdir(d))
            if len(left) != 2:
                print(f"  FAIL stored files: {left}")
                failed.append("stored files")
    finally:
        srv.terminate()
        try:
            rc = srv.wait(timeout=20)
        except subprocess.TimeoutExpired:
            srv.kill()  # by PID: the server we started
            srv.wait(timeout=10)
            rc = "killed: ignored SIGTERM"
        shutil.rmtree(work)
        errf.seek(0)
        err = errf.read()
    if rc != 0:  # under ASan: no leaks
        print(f"  FAIL ft_server exited with {rc}: {err[-2000:]}")
        failed.append("exit status")
    bad = sanitizer_report(err)
    if bad:
        print(f"  FAIL ft_server: {bad}\n{err[-3000:]}")
        failed.append("sanitizer")
    print(f"test_file_transfer: {len(run) - len([f for f in failed if f in dict(cases)])}"
          f"/{len(run)} passed"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""examples/file_transfer: ft_client -> ft_server with a 200 MiB file, the
server's memory measured; protocol errors from a python3-websockets client.

FT_MIB sets the big file's size (default 200).
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


def start_server(port, d):
    p = subprocess.Popen([os.path.join(FT, "ft_server"), "--port", str(port),
                          "--dir", d, "--max-size", str(300 << 20)],
                         stderr=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.02)  # bounded polling for the listener
    p.kill()
    raise RuntimeError("ft_server did not start")


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
    srv = start_server(port, d)
    try:
        idle = status_kib(srv.pid, "VmRSS")
        t0 = time.monotonic()
        big_transfer(port, d, work)
        took = time.monotonic() - t0
        peak = status_kib(srv.pid, "VmHWM")
        grow = peak - idle
        print(f"  {MIB} MiB transfer: {took:.1f}s, server RSS idle {idle} KiB, "
              f"peak {peak} KiB (+{grow} KiB)")
        assert grow < 4096, grow   # a few MiB at most, whatever the file size
        asyncio.run(protocol_errors(port))
        # nothing but the two good files (no .part left behind)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(f.endswith(".part") for f in os.listdir(d)):
            time.sleep(0.05)  # bounded: the server removes it on close
        left = sorted(os.listdir(d))
        assert not any(f.endswith(".part") for f in left), left
        assert len(left) == 2, left
        print("  protocol errors: no_header, bad_header, too_large, sha256_mismatch,"
              " size_exceeded, upload_in_progress, safe names")
    finally:
        srv.terminate()
        rc = srv.wait(timeout=10)
        shutil.rmtree(work)
    assert rc == 0, f"ft_server exited with {rc}"  # under ASan: no leaks
    print("test_file_transfer: ok")


if __name__ == "__main__":
    sys.exit(main())

"""demo_server's /ws/file-transfer limits and directory handling, and
`make run`'s PORT/HOST (issue 20 finding 8, issue 13):

- a per-connection quota (--max-client), a total quota (--max-total) and a
  file-count limit (--max-files) close the upload with 1008 and leave no
  partial file; stalled (unfinished) uploads count as they arrive;
- after a restart with the same --dir, new uploads get new names (before:
  upload-1.bin again, O_EXCL failed, 1011; ft_server overwrote 1-<name>);
- ft_server (examples/file_transfer) reserves a header's size in the same
  kind of quotas and answers quota_exceeded;
- without --dir, the wsmsg-demo-* directory it made is gone after exit;
- `make run PORT= HOST=` passes them on; a HOST from the environment does
  not count.

    CASE=case_restart /usr/bin/python3 tests/integration/test_demo_files.py
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsharness as H  # noqa: E402

ROOT = H.ROOT
KiB, MiB = 1 << 10, 1 << 20
BOUND = 20.0


class Demo(H.Proc):
    def __init__(self, *args, dir=None):
        self.port = H.free_port()
        argv = [H.binary("demo_server"), "--host", "127.0.0.1",
                "--port", str(self.port)]
        if dir:
            argv += ["--dir", dir]
        super().__init__(argv + list(args))
        H.wait_listening(self.port, self.p, timeout=BOUND)

    def finish(self):
        rc = self.stop()
        err = self.stderr()
        assert rc == 0, f"demo_server exited {rc}:\n{err[-2000:]}"
        rep = H.sanitizer_report(err)
        assert not rep, rep
        return err


def upload(port, data, frames=1):
    """Send one binary message (in `frames` fragments); 'ok' for
    FILE_RECEIVED, else the close (code, reason)."""
    ws = H.RawWS(port, "/ws/file-transfer", timeout=BOUND)
    try:
        return _send(ws, data, frames)
    finally:
        ws.close()


def _send(ws, data, frames=1):
    step = max(1, -(-len(data) // frames))
    parts = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
    try:
        for i, p in enumerate(parts):
            ws.send_frame(H.OP_BINARY if i == 0 else H.OP_CONT, p,
                          fin=i == len(parts) - 1)
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed under us: the close frame tells why
    fin, _, op, payload = ws.recv_frame()
    if op == H.OP_BINARY and payload == b"FILE_RECEIVED":
        return "ok"
    assert op == H.OP_CLOSE, (op, payload[:80])
    return H.parse_close(payload)


def files_in(d):
    return sorted(os.listdir(d))


def wait_files(d, n):
    """The server removes a partial file when it handles the close, which
    the client cannot see: poll the directory (bounded)."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline and len(os.listdir(d)) != n:
        time.sleep(0.02)
    return files_in(d)


def case_per_client_quota():
    d = tempfile.mkdtemp(prefix="wsmsg-files-test-")
    srv = Demo("--max-client", str(1 * MiB), dir=d)
    try:
        ws = H.RawWS(srv.port, "/ws/file-transfer", timeout=BOUND)
        assert _send(ws, os.urandom(600 * KiB)) == "ok"
        r = _send(ws, os.urandom(600 * KiB), frames=4)
        assert r == (1008, "per-client quota exceeded"), r
        ws.close()
        assert len(wait_files(d, 1)) == 1, files_in(d)
        # the quota is per connection: a new one may store again
        assert upload(srv.port, os.urandom(600 * KiB)) == "ok"
        assert len(files_in(d)) == 2
        srv.finish()
    finally:
        srv.stop()
        shutil.rmtree(d)


def case_total_quota_counts_stalled_uploads():
    d = tempfile.mkdtemp(prefix="wsmsg-files-test-")
    srv = Demo("--max-total", str(1 * MiB), dir=d)
    try:
        # two uploads that never finish: 600 KiB each, the second crosses
        # the total and is closed; the first still holds its share
        a = H.RawWS(srv.port, "/ws/file-transfer", timeout=BOUND)
        b = H.RawWS(srv.port, "/ws/file-transfer", timeout=BOUND)
        a.send_frame(H.OP_BINARY, os.urandom(600 * KiB), fin=False)
        H.wait_peer_read(a.sock, timeout=BOUND)
        b.send_frame(H.OP_BINARY, os.urandom(600 * KiB), fin=False)
        code = b.expect_close()
        assert code == (1008, "storage quota exceeded"), code
        assert len(wait_files(d, 1)) == 1, files_in(d)  # a's partial file
        a.close()  # cut short: its partial file goes too
        b.close()
        assert wait_files(d, 0) == [], files_in(d)
        # the space is back
        assert upload(srv.port, os.urandom(900 * KiB)) == "ok"
        srv.finish()
    finally:
        srv.stop()
        shutil.rmtree(d)


def case_file_count_limit():
    d = tempfile.mkdtemp(prefix="wsmsg-files-test-")
    srv = Demo("--max-files", "2", dir=d)
    try:
        assert upload(srv.port, b"one") == "ok"
        assert upload(srv.port, b"two") == "ok"
        r = upload(srv.port, b"three")
        assert r == (1008, "file count limit reached"), r
        assert len(files_in(d)) == 2
        srv.finish()
    finally:
        srv.stop()
        shutil.rmtree(d)


def case_restart_same_dir():
    d = tempfile.mkdtemp(prefix="wsmsg-files-test-")
    try:
        for run in range(2):
            srv = Demo(dir=d)
            try:
                for i in range(2):
                    r = upload(srv.port, b"run %d file %d" % (run, i))
                    assert r == "ok", f"run {run} upload {i}: {r}"
                srv.finish()
            finally:
                srv.stop()
        names = files_in(d)
        assert names == [f"upload-{n}.bin" for n in (1, 2, 3, 4)], names
        got = sorted(open(os.path.join(d, n), "rb").read() for n in names)
        assert got == sorted(b"run %d file %d" % (r, i)
                             for r in range(2) for i in range(2)), got
        # files already there count toward the limits
        srv = Demo("--max-files", "4", dir=d)
        try:
            r = upload(srv.port, b"fifth")
            assert r == (1008, "file count limit reached"), r
            srv.finish()
        finally:
            srv.stop()
    finally:
        shutil.rmtree(d)


def case_temp_dir_removed_at_exit():
    srv = Demo()
    made = None
    try:
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline and made is None:
            m = re.search(r"files go to (\S+)", srv.stderr())
            made = m.group(1) if m else None
            time.sleep(0.02) if made is None else None
        assert made and os.path.basename(made).startswith("wsmsg-demo-"), \
            srv.stderr()
        assert upload(srv.port, b"x" * 1000) == "ok"
        assert len(os.listdir(made)) == 1
        srv.finish()
        assert not os.path.exists(made), f"{made} left behind"
    finally:
        srv.stop()
        if made and os.path.isdir(made):
            shutil.rmtree(made)


def case_ft_server_restart_same_dir():
    """examples/file_transfer: the same collision after a restart (its
    names are <n>-<name>: before, the second run's upload was renamed over
    the first run's file, silently)."""
    d = tempfile.mkdtemp(prefix="wsmsg-ft-test-")
    src = os.path.join(d, "src")
    os.mkdir(src)
    store = os.path.join(d, "store")
    os.mkdir(store)
    path = os.path.join(src, "a.txt")
    with open(path, "wb") as f:
        f.write(b"hello")
    try:
        for run in range(2):
            port = H.free_port()
            srv = H.Proc([H.binary("file_transfer/ft_server"), "--host",
                          "127.0.0.1", "--port", str(port), "--dir", store])
            try:
                H.wait_listening(port, srv.p, timeout=BOUND)
                out = subprocess.run(
                    [H.binary("file_transfer/ft_client"), path,
                     f"ws://127.0.0.1:{port}/upload"],
                    capture_output=True, text=True, timeout=BOUND)
                last = json.loads(out.stdout.splitlines()[-1])
                assert last["status"] == "FILE_RECEIVED", (run, out.stdout,
                                                            out.stderr)
                assert srv.stop() == 0
            finally:
                srv.stop()
        names = files_in(store)
        assert len(names) == 2 and all(n.endswith("-a.txt") for n in names), \
            names
    finally:
        shutil.rmtree(d)


class FT(H.Proc):
    """examples/file_transfer/ft_server on a free port."""

    def __init__(self, store, *args):
        self.port = H.free_port()
        super().__init__([H.binary("file_transfer/ft_server"), "--host",
                          "127.0.0.1", "--port", str(self.port), "--dir",
                          store, *args])
        H.wait_listening(self.port, self.p, timeout=BOUND)


def ft_header(ws, data):
    """Send a header for `data`; the server's JSON reply."""
    ws.send_frame(H.OP_TEXT, json.dumps(
        {"name": "f.bin", "size": len(data),
         "sha256": hashlib.sha256(data).hexdigest()}))
    return json.loads(ws.recv_message()[1])


def ft_upload(ws, data):
    r = ft_header(ws, data)
    if r["status"] != "READY":
        return r
    ws.send_frame(H.OP_BINARY, data)
    return json.loads(ws.recv_message()[1])


def case_ft_server_quotas():
    """ft_server: a header's size is reserved as the upload starts, so a
    stalled upload counts; --max-total, --max-client and --max-files answer
    quota_exceeded; a failed or abandoned upload gives its share back; what
    --dir already holds counts after a restart."""
    d = tempfile.mkdtemp(prefix="wsmsg-ft-test-")
    try:
        srv = FT(d, "--max-total", "1000", "--max-client", "700",
                 "--max-files", "3")
        try:
            a = H.RawWS(srv.port, "/upload", timeout=BOUND)
            assert ft_header(a, b"a" * 600)["status"] == "READY"  # stalls
            b = H.RawWS(srv.port, "/upload", timeout=BOUND)
            r = ft_header(b, b"b" * 600)
            assert r["error"] == "quota_exceeded", r
            assert r["detail"] == "storage quota exceeded", r
            a.close()  # abandoned: its 600 bytes come back
            deadline = time.monotonic() + BOUND
            while time.monotonic() < deadline:
                r = ft_header(b, b"b" * 600)
                if r["status"] == "READY":
                    break
                time.sleep(0.02)
            assert r["status"] == "READY", r
            b.send_frame(H.OP_BINARY, b"b" * 600)
            assert json.loads(b.recv_message()[1])["status"] == \
                "FILE_RECEIVED"
            r = ft_upload(b, b"c" * 200)  # 800 > --max-client 700
            assert r["detail"] == "per-client quota exceeded", r
            c = H.RawWS(srv.port, "/upload", timeout=BOUND)
            assert ft_upload(c, b"c" * 100)["status"] == "FILE_RECEIVED"
            assert ft_upload(c, b"d" * 100)["status"] == "FILE_RECEIVED"
            r = ft_upload(c, b"e" * 10)  # a fourth file
            assert r["detail"] == "file count limit reached", r
            for x in (b, c):
                x.close()
            assert srv.stop() == 0
        finally:
            srv.stop()
        assert len(files_in(d)) == 3, files_in(d)
        # after a restart the 800 bytes and 3 files there count
        srv = FT(d, "--max-total", "1000")
        try:
            x = H.RawWS(srv.port, "/upload", timeout=BOUND)
            r = ft_header(x, b"f" * 300)
            assert r["detail"] == "storage quota exceeded", r
            assert ft_upload(x, b"f" * 200)["status"] == "FILE_RECEIVED"
            x.close()
            assert srv.stop() == 0
        finally:
            srv.stop()
    finally:
        shutil.rmtree(d)


def case_make_run_port_host():
    def dry(env_host=None, *args):
        env = dict(os.environ)
        env.pop("HOST", None)
        env.pop("PORT", None)
        if env_host:
            env["HOST"] = env_host
        out = subprocess.run(["make", "-s", "-n", "run", *args], cwd=ROOT,
                             env=env, capture_output=True, text=True,
                             timeout=120).stdout
        lines = [ln for ln in out.splitlines() if "demo_server" in ln]
        assert lines, out[-2000:]
        return lines[-1]
    line = dry(None, "PORT=9123", "HOST=127.0.0.2")
    assert line.endswith("--host 127.0.0.2 --port 9123"), line
    line = dry("my-machine-name")  # zsh exports HOST
    assert line.endswith("--host 127.0.0.1 --port 8080"), line


if __name__ == "__main__":
    H.run_cases(globals(), minimum=8)

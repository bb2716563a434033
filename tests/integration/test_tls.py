"""TLS in the examples (issue 15): echo_server and demo_server with
--tls-cert/--tls-key serve wss:// (and https:// for the demo page) on one
port; echo_client speaks wss:// with --ca or --insecure.  A throwaway CA
and server certificate are made with `openssl` at test time; the clients
are python3-websockets and the standard library's ssl, trusting only that
CA.  The conformance cases of sections 1-6 also run over TLS against
echo_server (test_conformance.py with WS_TLS_* set).

    CASE=case_wss_echo /usr/bin/python3 tests/integration/test_tls.py
"""
import asyncio
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsharness import (ROOT, Proc, binary, free_port, make_certs,  # noqa
                       run_cases, sanitizer_report, tls_client_context,
                       wait_listening)

BOUND = 20.0


class Server(Proc):
    def __init__(self, name, certs, *args):
        self.port = free_port()
        super().__init__([binary(name), "--host", "127.0.0.1", "--port",
                          str(self.port), "--tls-cert", certs[1],
                          "--tls-key", certs[2], *args])
        wait_listening(self.port, self.p)

    def finish(self):
        rc = self.stop()
        err = self.stderr()
        assert rc == 0, f"exited {rc}:\n{err[-3000:]}"
        bad = sanitizer_report(err)
        assert bad is None, f"{bad}\n{err[-3000:]}"
        return err


def setup():
    d = tempfile.mkdtemp(prefix="wsmsg-tls-")
    return {"dir": d, "certs": make_certs(d)}


def teardown(ctx):
    shutil.rmtree(ctx["dir"], ignore_errors=True)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, BOUND))


def case_wss_echo(ctx):
    """python3-websockets over wss:// trusting only the test CA: text and
    a 900 KiB binary message (many TLS records) come back intact, then a
    clean close."""
    srv = Server("echo_server", ctx["certs"])
    try:
        async def go():
            tls = tls_client_context(ctx["certs"][0])
            async with websockets.connect(f"wss://localhost:{srv.port}/",
                                          ssl=tls, max_size=None) as ws:
                await ws.send("héllo over TLS")
                assert await ws.recv() == "héllo over TLS"
                blob = os.urandom(900 * 1024)
                await ws.send(blob)
                assert await ws.recv() == blob
            assert ws.close_code == 1000, ws.close_code
        run(go())
    finally:
        srv.finish()


def case_untrusted_and_plaintext_refused(ctx):
    """A client that does not trust the CA fails the TLS handshake; a
    plaintext HTTP request to the TLS port gets no plaintext answer (the
    connection is dropped); the server keeps serving."""
    srv = Server("echo_server", ctx["certs"])
    try:
        async def untrusted():
            try:
                async with websockets.connect(
                        f"wss://localhost:{srv.port}/",
                        ssl=ssl.create_default_context()):
                    pass
            except ssl.SSLCertVerificationError:
                return True
            return False
        assert run(untrusted()), "an untrusted certificate was accepted"
        with socket.create_connection(("127.0.0.1", srv.port),
                                      timeout=BOUND) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            try:
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    got += d
            except ConnectionResetError:
                pass  # dropped with our request unread: a reset
            assert not got.startswith(b"HTTP/"), got[:80]

        async def still():
            async with websockets.connect(
                    f"wss://localhost:{srv.port}/",
                    ssl=tls_client_context(ctx["certs"][0])) as ws:
                await ws.send("still here")
                assert await ws.recv() == "still here"
        run(still())
    finally:
        srv.finish()


def case_echo_client_wss(ctx):
    """examples/echo_client: wss:// with --ca echoes lines and closes
    cleanly; without --ca the system's CAs do not trust the test CA (exit
    1, a verify error); --insecure connects anyway."""
    srv = Server("echo_server", ctx["certs"])
    try:
        def client(*args, url=None):
            return subprocess.run(
                [binary("echo_client"), "--close", "--timeout", "10000",
                 *args, url or f"wss://127.0.0.1:{srv.port}/"],
                input=b"one\ntwo\n", capture_output=True, timeout=BOUND)
        r = client("--ca", ctx["certs"][0])
        assert r.returncode == 0 and r.stdout == b"one\ntwo\n", r
        r = client()
        assert r.returncode == 1 and b"certificate verify failed" in \
            r.stderr, r
        r = client("--insecure")
        assert r.returncode == 0 and r.stdout == b"one\ntwo\n", r
    finally:
        srv.finish()


def https_get(port, path, ca, host="localhost"):
    c = http.client.HTTPSConnection(host, port, timeout=BOUND,
                                    context=tls_client_context(ca))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def case_demo_https_and_wss(ctx):
    """demo_server with TLS: https:// serves the page and /healthz on the
    port that serves wss://; three requests share one keep-alive TLS
    connection; the chat answers over wss://; a 3 MiB upload with the JSON
    header protocol comes back with the right SHA-256, and the stored file
    has it too."""
    updir = tempfile.mkdtemp(dir=ctx["dir"])
    srv = Server("demo_server", ctx["certs"], "--dir", updir, "--web",
                 os.path.join(ROOT, "examples", "web"), "--quiet")
    ca = ctx["certs"][0]
    try:
        st, hdrs, body = https_get(srv.port, "/healthz", ca)
        assert st == 200 and body == b"ok\n", (st, body)
        c = http.client.HTTPSConnection("localhost", srv.port, timeout=BOUND,
                                        context=tls_client_context(ca))
        try:
            for path, ctype in (("/", "text/html"),
                                ("/app.js", "text/javascript"),
                                ("/style.css", "text/css")):
                c.request("GET", path)
                r = c.getresponse()
                data = r.read()
                assert r.status == 200, (path, r.status)
                assert r.getheader("Content-Type").startswith(ctype)
                with open(os.path.join(ROOT, "examples", "web",
                                       path.strip("/") or "index.html"),
                          "rb") as f:
                    assert data == f.read(), path
        finally:
            c.close()

        async def go():
            tls = tls_client_context(ca)
            base = f"wss://localhost:{srv.port}"
            async with websockets.connect(base + "/ws/chat", ssl=tls) as ws:
                await ws.send("hi")
                reply = await ws.recv()
                assert reply.endswith("Server received: hi"), reply
            data = os.urandom(3 << 20)
            sha = hashlib.sha256(data).hexdigest()
            async with websockets.connect(base + "/ws/file-transfer",
                                          ssl=tls, max_size=None) as ws:
                await ws.send(json.dumps({"name": "x.bin", "size": len(data),
                                          "sha256": sha}))
                ready = json.loads(await ws.recv())
                assert ready["status"] == "READY", ready
                for off in range(0, len(data), 256 * 1024):
                    await ws.send(data[off:off + 256 * 1024])
                while True:
                    msg = json.loads(await ws.recv())
                    if msg["status"] != "PROGRESS":
                        break
                assert msg["status"] == "FILE_RECEIVED", msg
                assert msg["sha256"] == sha and msg["size"] == len(data), msg
            with open(os.path.join(updir, msg["file"]), "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == sha
        run(go())
    finally:
        srv.finish()


def case_certificate_reload(ctx):
    """SIGHUP makes the server load the certificate files again: new
    connections get the new certificate, and a connection opened before
    keeps working.  A broken file is logged and the old one kept."""
    d = tempfile.mkdtemp(dir=ctx["dir"])
    ca, cert, key = ctx["certs"]
    live_cert, live_key = os.path.join(d, "live.pem"), os.path.join(d, "k.pem")
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    srv = Server("echo_server", (ca, live_cert, live_key))

    def served_cert():
        tls = tls_client_context(ca)
        with socket.create_connection(("127.0.0.1", srv.port),
                                      timeout=BOUND) as s:
            with tls.wrap_socket(s, server_hostname="localhost") as t:
                return t.getpeercert(binary_form=True)
    try:
        first = served_cert()
        old = tls_client_context(ca).wrap_socket(
            socket.create_connection(("127.0.0.1", srv.port), timeout=BOUND),
            server_hostname="localhost")
        _, cert2, key2 = make_certs(ctx["dir"], "renewed.localhost")
        shutil.copy(cert2, live_cert)
        shutil.copy(key2, live_key)
        srv.p.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + BOUND
        while "reloaded" not in srv.stderr() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "reloaded" in srv.stderr(), srv.stderr()[-1000:]
        second = served_cert()
        assert second != first, "the certificate did not change"
        with open(cert2, "rb") as f:
            pem = f.read().decode()
        assert ssl.DER_cert_to_PEM_cert(second).split() == pem.split()
        # a broken pair: logged, the renewed certificate stays
        with open(live_key, "w") as f:
            f.write("not a key\n")
        srv.p.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + BOUND
        while "TLS reload failed" not in srv.stderr() and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        assert "TLS reload failed" in srv.stderr(), srv.stderr()[-1000:]
        assert served_cert() == second
        # the connection from before the reload is still served
        key_ = "dGhlIHNhbXBsZSBub25jZQ=="
        old.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Key: " + key_.encode() + b"\r\n\r\n")
        assert old.recv(4096).startswith(b"HTTP/1.1 101 ")
        old.close()
    finally:
        srv.finish()


def case_conformance_sections_1_to_6_over_tls(ctx):
    """The RFC 6455 conformance cases of sections 1-6 (framing, ping/pong,
    reserved bits, fragments, UTF-8, close) against echo_server over TLS:
    the raw client writes exactly the same bytes, inside TLS records."""
    ca, cert, key = ctx["certs"]
    env = dict(os.environ, WS_TLS_CERT=cert, WS_TLS_KEY=key, WS_TLS_CA=ca,
               CONF_SERVERS="echo_server", CONF_SECTIONS="1 2 3 4 5 6")
    env.pop("CASE", None)
    r = subprocess.run([sys.executable, os.path.join(
        ROOT, "tests", "integration", "test_conformance.py")], env=env,
        capture_output=True, text=True, timeout=100)
    last = [ln for ln in r.stdout.splitlines() if "passed in" in ln]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert last, r.stdout[-2000:]
    done = int(last[-1].split(":")[1].split("/")[0])
    assert done >= 400, last[-1]  # sections 1-6 hold about 450 cases
    print(f"    {last[-1].strip()}", flush=True)


if __name__ == "__main__":
    run_cases(globals(), setup=setup, teardown=teardown, minimum=6)

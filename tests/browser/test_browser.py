"""The demo page (examples/web/) in a real browser: Debian's chromium,
headless, driven through the DevTools protocol over python3-websockets.

For http:// and for https:// (a throwaway CA and server certificate made
with `openssl` at test time; chromium trusts exactly that certificate's
key through --ignore-certificate-errors-spki-list): load the page, wait
for the four panels to connect (over ws:// and wss://), chat and check
the timestamped reply, upload a 5 MiB file through the file input and
check the SHA-256 the server reports, the browser's own crypto.subtle
digest and the stored file's hash, submit invalid JSON and check the
per-field errors shown next to the fields, then valid JSON and check they
are gone, wait for HEARTBEAT (the server's receive timeout shortened to
2 s), and check permessage-deflate endpoint by endpoint: where the server
negotiates it with python-websockets, chromium must have negotiated it too
(and the panel shows it); where it does not (demo_server leaves it off for
/ws/file-transfer, or a build without it), chromium must report no
extension.
Between the two, the plain server is stopped and started again on the same
port: the panels must show the close and their retry, then reconnect by
themselves (backoff) and chat again.
Then the chat example (examples/chat/chat_server, when it is built: `make
chat`; its page is served at GET /): two pages join one room, each sees
the other join and the other's message (`said`), and SIGTERM shows both
pages the close 1001 "going away" of the drain, after which chat_server
exits 0 at once (no keep-alive page connection holds it up).
Screenshots go to $BROWSER_OUT (default .build/browser/): demo-SCHEME.png
with the JSON errors shown, demo-SCHEME-valid.png after the valid JSON;
with UPDATE_SCREENSHOT=1 the https one is copied to docs/demo-page.png.

Every wait is bounded; chromium and the servers run on free loopback
ports with their own profile and upload directories, and are stopped by
PID (chromium: the process group it was started in) also on failure.

    /usr/bin/python3 tests/browser/test_browser.py      (make test-browser)
"""
import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import websockets

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from wsharness import free_port, sanitizer_report, wait_listening  # noqa

BIN = os.path.join(ROOT, os.environ.get("EXAMPLE_BIN", "examples"))
CHAT_SERVER = os.path.join(BIN, "chat", "chat_server")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
OUT = os.environ.get("BROWSER_OUT", os.path.join(ROOT, ".build", "browser"))
BOUND = 30.0          # seconds: the bound on every wait
HEARTBEAT_MS = 2000   # the demo's receive timeout, shortened
FILE_SIZE = 5 << 20


def log(msg):
    print(f"  {msg}", flush=True)


# ---- a throwaway CA and server certificate ------------------------------------

def make_certs(d):
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True,
                       capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=wsmsg browser test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key",
        "-out", "srv.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2",
        "-extfile", "ext.cnf")
    # base64(sha256(SubjectPublicKeyInfo)): what chromium pins
    pub = subprocess.run(["openssl", "x509", "-in", "srv.pem", "-pubkey",
                          "-noout"], cwd=d, check=True, capture_output=True,
                         timeout=60).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"],
                         input=pub, check=True, capture_output=True,
                         timeout=60).stdout
    spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
    return (os.path.join(d, "ca.pem"), os.path.join(d, "srv.pem"),
            os.path.join(d, "srv.key"), spki)


# ---- processes we start ---------------------------------------------------------

class Server:
    name = "demo_server"

    def __init__(self, tmp, name, *extra, port=None, argv=None):
        self.port = port or free_port()
        self.err = open(os.path.join(tmp, name + ".log"), "w+")
        if argv is None:
            self.dir = os.path.join(tmp, "uploads-" + name)
            os.mkdir(self.dir)
            argv = [os.path.join(BIN, "demo_server"), "--host", "127.0.0.1",
                    "--port", str(self.port), "--dir", self.dir,
                    "--web", os.path.join(ROOT, "examples", "web"),
                    "--receive-timeout", str(HEARTBEAT_MS), *extra]
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                  stderr=self.err)
        wait_listening(self.port, self.p, timeout=BOUND)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait(timeout=10)
        self.err.seek(0)
        text = self.err.read()
        self.err.close()
        return rc, text


class Chromium:
    def __init__(self, tmp, spki):
        self.profile = os.path.join(tmp, "chromium-profile")
        os.mkdir(self.profile)
        self.err = open(os.path.join(tmp, "chromium.log"), "w+")
        args = [CHROMIUM, "--headless=new", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--metrics-recording-only", "--password-store=basic",
                "--use-mock-keychain", "--mute-audio",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                # trust our throwaway server key, and only it
                f"--ignore-certificate-errors-spki-list={spki}",
                "--window-size=1200,1000", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # chromium refuses root otherwise
        # its own process group: its helpers (zygote, renderers) are ours too
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                  stderr=self.err, start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + BOUND
        self.ws_url = None
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("chromium exited with "
                                   f"{self.p.returncode}: {self.log_tail()}")
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
                if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                    self.ws_url = (f"ws://127.0.0.1:{lines[0].strip()}"
                                   f"{lines[1].strip()}")
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        if not self.ws_url:
            raise RuntimeError("chromium did not open its DevTools port: "
                               + self.log_tail())

    def log_tail(self):
        self.err.seek(0)
        return self.err.read()[-2000:]

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)  # the group we made
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=10)
        try:  # helpers that outlived the browser
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.err.close()


class ChatServer(Server):
    name = "chat_server"

    def __init__(self, tmp):
        port = free_port()
        # drain timeout beyond BOUND: a prompt exit is the drain's doing
        super().__init__(tmp, "chat", port=port, argv=[
            CHAT_SERVER, "--host", "127.0.0.1", "--port", str(port),
            "--drain-timeout", "60000"])


# ---- the DevTools protocol ---------------------------------------------------------

class CDP:
    """One page of the browser, over the browser's DevTools WebSocket
    (flattened sessions)."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.session = None
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            fut = self.pending.pop(msg.get("id"), None)
            if fut and not fut.done():
                fut.set_result(msg)

    async def call(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, BOUND)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def open_page(self):
        t = await self.call("Target.createTarget", {"url": "about:blank"},
                            session=False)
        a = await self.call("Target.attachToTarget",
                            {"targetId": t["targetId"], "flatten": True},
                            session=False)
        self.session = a["sessionId"]
        await self.call("Page.enable")
        await self.call("Runtime.enable")
        await self.call("Emulation.setDeviceMetricsOverride",
                        {"width": 1200, "height": 1000,
                         "deviceScaleFactor": 1, "mobile": False})

    async def js(self, expr):
        r = await self.call("Runtime.evaluate",
                            {"expression": expr, "returnByValue": True,
                             "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"page error in {expr!r}: "
                               f"{r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait(self, expr, what, bound=BOUND):
        """Poll a page expression until it is truthy (bounded)."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            v = await self.js(expr)
            if v:
                return v
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {bound:.0f} s waiting for "
                             f"{what} ({expr})")

    async def screenshot(self, path):
        r = await self.call("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    async def close(self):
        self.reader.cancel()


# ---- what the server negotiates -----------------------------------------------------

PANELS = (("chat", "/ws/chat"), ("fileLink", "/ws/file-transfer"),
          ("jsonLink", "/ws/json-demo"), ("timeoutLink", "/ws/with-timeout"))


async def server_deflate(base, ssl_ctx):
    """Which of the page's endpoints accept permessage-deflate from
    python-websockets: {path: bool}."""
    got = {}
    for _, path in PANELS:
        async with websockets.connect(base + path, ssl=ssl_ctx,
                                      open_timeout=BOUND,
                                      compression="deflate") as ws:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        got[path] = "permessage-deflate" in ext
    return got


# ---- the scenario, once per scheme ------------------------------------------------

def name_to_panel(name):
    return {"chat": "chat", "fileLink": "file", "jsonLink": "json",
            "timeoutLink": "timeout"}[name]


def set_value(sel, value):
    return (f"(() => {{ const e = document.querySelector({json.dumps(sel)});"
            f" e.value = {json.dumps(value)}; return true; }})()")


def submit(sel):
    return (f"(() => {{ document.querySelector({json.dumps(sel)})"
            ".requestSubmit(); return true; })()")


async def scenario(cdp, scheme, srv, upload_path, upload_sha, deflate):
    base = f"{scheme}://127.0.0.1:{srv.port}"
    await cdp.call("Page.navigate", {"url": base + "/"})
    await cdp.wait("document.readyState === 'complete' && !!window.demo",
                   "the page and app.js")
    proto = await cdp.js("location.protocol")
    assert proto == scheme + ":", proto
    await cdp.wait("demo.chat.open && demo.fileLink.open && "
                   "demo.jsonLink.open && demo.timeoutLink.open",
                   "all four panels connected")
    urls = await cdp.js("[demo.chat.url, demo.fileLink.ws.url]")
    want = ("wss://" if scheme == "https" else "ws://") + "127.0.0.1"
    assert all(u.startswith(want) for u in urls), urls
    log(f"{scheme}: page loaded, 4 connections open over {want[:-9]}")

    # chat: the server's timestamped reply
    text = f"hello from chromium over {scheme}"
    await cdp.js(set_value("#chat-input", text))
    await cdp.js(submit("#chat-form"))
    line = await cdp.wait(
        "[...document.querySelectorAll('#chat .log li')].map(l => "
        f"l.textContent).find(t => t.includes('Server received: {text}'))",
        "the chat reply")
    assert re.search(r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] Server "
                     r"received: " + re.escape(text), line), line
    log(f"{scheme}: chat reply: {line.strip()[:80]}")

    # file transfer: 5 MiB through the file input
    doc = await cdp.call("DOM.getDocument")
    node = await cdp.call("DOM.querySelector",
                          {"nodeId": doc["root"]["nodeId"],
                           "selector": "#file-input"})
    await cdp.call("DOM.setFileInputFiles",
                   {"files": [upload_path], "nodeId": node["nodeId"]})
    t0 = time.monotonic()
    await cdp.js(submit("#file-form"))
    res = await cdp.wait("demo.upload.result", "the upload's end", bound=90)
    took = time.monotonic() - t0
    assert res.get("status") == "FILE_RECEIVED", res
    assert res["size"] == FILE_SIZE, res
    assert res["sha256"] == upload_sha, (res["sha256"], upload_sha)
    local = await cdp.js("demo.upload.localSha")
    assert local == upload_sha, (local, upload_sha)
    shown = await cdp.js("document.querySelector('#file-match').textContent")
    assert "identical" in shown, shown
    progress = await cdp.js("document.querySelector('#file-progress').value")
    assert progress == 1, progress
    stored = os.path.join(srv.dir, res["file"])
    with open(stored, "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    assert got == upload_sha, f"stored file {stored}: {got}"
    log(f"{scheme}: 5 MiB uploaded in {took:.2f} s; SHA-256 matches in "
        "the browser, the server's reply and the stored file")

    # the heartbeat after HEARTBEAT_MS of silence
    await cdp.wait("demo.tmo.heartbeats >= 1", "HEARTBEAT",
                   bound=HEARTBEAT_MS / 1000 + BOUND)
    rtt = await cdp.js("demo.tmo.rtt")
    assert rtt is not None and rtt >= 0, rtt
    log(f"{scheme}: HEARTBEAT arrived; echo round trip {rtt:.1f} ms")

    # JSON: invalid (user left out, timestamp not a number), then valid
    replies = await cdp.js("demo.jsonState.replies")
    for sel, v in (("#json-user", ""), ("#json-content", "hi"),
                   ("#json-timestamp", "soon")):
        await cdp.js(set_value(sel, v))
    await cdp.js(submit("#json-form"))
    await cdp.wait(f"demo.jsonState.replies > {replies}", "the JSON reply")
    errs = await cdp.js(
        "Object.fromEntries([...document.querySelectorAll('#json .err')]"
        ".map(e => [e.dataset.field, e.textContent]))")
    assert "field required" in errs["user"], errs
    assert "number" in errs["timestamp"] or "float" in errs["timestamp"], errs
    assert errs["content"] == "" and errs["__root__"] == "", errs
    marked = await cdp.js("[...document.querySelectorAll('#json-form "
                          "input.invalid')].map(e => e.id)")
    assert sorted(marked) == ["json-timestamp", "json-user"], marked
    log(f"{scheme}: invalid JSON: user: {errs['user']!r}; timestamp: "
        f"{errs['timestamp']!r}")
    shot = os.path.join(OUT, f"demo-{scheme}.png")
    await cdp.screenshot(shot)  # every panel used, the errors shown
    log(f"{scheme}: screenshot {os.path.relpath(shot, ROOT)}")
    replies = await cdp.js("demo.jsonState.replies")
    for sel, v in (("#json-user", "alice"), ("#json-timestamp",
                                             "1700000000.5")):
        await cdp.js(set_value(sel, v))
    await cdp.js(submit("#json-form"))
    await cdp.wait(f"demo.jsonState.replies > {replies}", "the JSON reply")
    last = await cdp.js("demo.jsonState.last")
    assert last == {"user": "alice", "content": "hi",
                    "timestamp": 1700000000.5, "status": "PROCESSED"}, last
    errs = await cdp.js("[...document.querySelectorAll('#json .err')]"
                        ".map(e => e.textContent).join('')")
    assert errs == "", errs
    log(f"{scheme}: valid JSON: {json.dumps(last)}")

    # permessage-deflate, endpoint by endpoint as the server negotiates it
    for name, path in PANELS:
        ext = await cdp.js(f"demo.{name}.ws.extensions")
        if deflate[path]:
            assert "permessage-deflate" in ext, (path, ext)
        else:
            assert ext == "", (path, ext)
        shown = await cdp.js(f"document.querySelector('#{name_to_panel(name)}"
                             " .ext').textContent")
        assert shown == (ext or "no extensions"), (path, shown)
    on = [p for _, p in PANELS if deflate[p]]
    if on:
        ext = await cdp.js("demo.chat.ws.extensions")
        log(f"{scheme}: chromium negotiated permessage-deflate on "
            f"{', '.join(on)} ({ext}); none where the server declines it")
    else:
        log(f"{scheme}: the server offers no permessage-deflate (not built "
            "in): chromium reports no extension, as it must")
    await cdp.screenshot(os.path.join(OUT, f"demo-{scheme}-valid.png"))
    return shot


async def reconnect(cdp, tmp, procs, srv):
    """The server goes away (SIGTERM: close 1001) and comes back on the
    same port: every panel shows the close and its retry, then reconnects
    by itself (backoff from 0.5 s) and works again."""
    rc, text = srv.stop()
    bad = sanitizer_report(text)
    assert rc == 0 and not bad, f"demo_server exited {rc}: {bad}"
    procs.remove(srv)
    states = await cdp.wait(
        "(() => { const s = [...document.querySelectorAll('.state')]"
        ".map(e => e.textContent); return s.every(t => /retry in|"
        "reconnecting/.test(t)) && s; })()", "every panel retrying")
    codes = await cdp.js("[demo.chat, demo.fileLink, demo.jsonLink, "
                         "demo.timeoutLink].map(l => l.closeCodes[0])")
    assert codes == [1001] * 4, codes  # "going away", as SIGTERM says
    log(f"http: server stopped (close 1001 on all four); the panels say: "
        f"{states[0]!r}")
    again = Server(tmp, "plain-again", port=srv.port)
    procs.append(again)
    await cdp.wait("demo.chat.open && demo.fileLink.open && "
                   "demo.jsonLink.open && demo.timeoutLink.open && "
                   "demo.chat.opens === 2", "all four panels reconnected")
    await cdp.js(set_value("#chat-input", "back again"))
    await cdp.js(submit("#chat-form"))
    await cdp.wait(
        "[...document.querySelectorAll('#chat .log li')].some(l => "
        "l.textContent.includes('Server received: back again'))",
        "the chat reply after the reconnect")
    log("http: the server is back on its port: the four panels "
        "reconnected by themselves and the chat answers")


CHAT_LOG = "document.getElementById('log').textContent"


async def chat_pages(chromium, chat, procs):
    """Two pages on chat_server's own page (GET /), one room: each sees the
    other join and the other's message; SIGTERM closes both with 1001."""
    base = f"http://127.0.0.1:{chat.port}/"
    async with websockets.connect(chromium.ws_url, max_size=None,
                                  open_timeout=BOUND) as ws_a, \
            websockets.connect(chromium.ws_url, max_size=None,
                               open_timeout=BOUND) as ws_b:
        a, b = CDP(ws_a), CDP(ws_b)  # one DevTools connection per page
        try:
            for page, name in ((a, "ann"), (b, "bob")):
                await page.open_page()
                await page.call("Page.navigate", {"url": base})
                await page.wait("document.readyState === 'complete' && "
                                "document.title === 'wsmsg chat' && "
                                "ws.readyState === 1",
                                f"{name}'s page and its WebSocket")
                await page.js(set_value("#name", name))
                await page.js(set_value("#room", "r1"))
                await page.js("document.getElementById('join').click(), true")
                await page.wait(f"{CHAT_LOG}.includes('[r1] {name} joined')",
                                f"{name} joined")
            await a.wait(f"{CHAT_LOG}.includes('[r1] bob joined')",
                         "ann sees bob join")
            for page, name, other in ((a, "ann", b), (b, "bob", a)):
                text = f"hello from {name}"
                await page.js(set_value("#text", text))
                await page.js("document.getElementById('say').click(), true")
                await other.wait(f"{CHAT_LOG}.includes('[r1] {name}: {text}')",
                                 f"the other page gets {name}'s said")
                await page.wait(f"{CHAT_LOG}.includes('[r1] {name}: {text}')",
                                f"{name} gets their own said")
            log("chat: two pages on chat_server's page joined r1 and each "
                "got the other's message")
            await a.screenshot(os.path.join(OUT, "chat.png"))
            # the drain: both pages get 1001, and the process exits at once
            t0 = time.monotonic()
            chat.p.send_signal(signal.SIGTERM)
            for page in (a, b):
                await page.wait(f"{CHAT_LOG}.includes('closed 1001 going "
                                "away')", "the close 1001 going away")
            rc, text = chat.stop()
            procs.remove(chat)
            bad = sanitizer_report(text)
            assert rc == 0 and not bad, f"chat_server exited {rc}: {bad}"
            log(f"chat: SIGTERM: both pages closed 1001 going away, "
                f"chat_server exited 0 after {time.monotonic() - t0:.1f} s "
                "(its drain timeout: 60 s)")
        finally:
            await a.close()
            await b.close()


async def run_all(tmp, procs, chromium, plain, tls, ca, upload_path,
                  upload_sha, chat=None):
    ctx = ssl.create_default_context(cafile=ca)
    deflate = await server_deflate(f"ws://127.0.0.1:{plain.port}", None)
    deflate_tls = await server_deflate(f"wss://localhost:{tls.port}", ctx)
    assert deflate == deflate_tls, (deflate, deflate_tls)
    log("the server negotiates permessage-deflate with python-websockets "
        f"on: {', '.join(p for p, on in deflate.items() if on) or 'none'}")
    async with websockets.connect(chromium.ws_url, max_size=None,
                                  open_timeout=BOUND) as ws:
        cdp = CDP(ws)
        try:
            await cdp.open_page()
            await scenario(cdp, "http", plain, upload_path, upload_sha,
                           deflate)
            await reconnect(cdp, tmp, procs, plain)
            shot = await scenario(cdp, "https", tls, upload_path, upload_sha,
                                  deflate)
        finally:
            await cdp.close()
    if chat is not None:
        await chat_pages(chromium, chat, procs)
    return shot


def main():
    if not os.access(CHROMIUM, os.X_OK):
        print(f"test_browser.py: FAIL: {CHROMIUM} is missing "
              "(make test-browser installs it as root)", flush=True)
        return 1
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="wsmsg-browser-")
    procs = []
    t0 = time.monotonic()
    ok = False
    try:
        ca, cert, key, spki = make_certs(tmp)
        upload_path = os.path.join(tmp, "upload.bin")
        data = os.urandom(FILE_SIZE)
        with open(upload_path, "wb") as f:
            f.write(data)
        upload_sha = hashlib.sha256(data).hexdigest()
        plain = Server(tmp, "plain")
        procs.append(plain)
        tls = Server(tmp, "tls", "--tls-cert", cert, "--tls-key", key)
        procs.append(tls)
        chat = None
        if os.access(CHAT_SERVER, os.X_OK):
            chat = ChatServer(tmp)
            procs.append(chat)
        else:
            log(f"the chat page: skipped: {CHAT_SERVER} is not built "
                "(make chat)")
        chromium = Chromium(tmp, spki)
        procs.append(chromium)
        shot = asyncio.run(asyncio.wait_for(
            run_all(tmp, procs, chromium, plain, tls, ca, upload_path,
                    upload_sha, chat),
            timeout=130))
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            shutil.copy(shot, os.path.join(ROOT, "docs", "demo-page.png"))
            log("copied to docs/demo-page.png")
        ok = True
    except Exception as e:  # noqa: BLE001 - report, then clean up
        print(f"  FAIL: {type(e).__name__}: {e}", flush=True)
        if os.environ.get("VERBOSE"):
            import traceback
            traceback.print_exc()
    finally:
        for p in reversed(procs):
            if isinstance(p, Chromium):
                if not ok:
                    print("  chromium log: " + p.log_tail()[-800:], flush=True)
                p.stop()
            else:
                rc, text = p.stop()
                bad = sanitizer_report(text)
                if rc != 0 or bad:
                    ok = False
                    print(f"  FAIL: {p.name} exited {rc}"
                          f"{': ' + bad if bad else ''}\n{text[-2000:]}",
                          flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_browser.py: {'passed' if ok else 'FAILED'} in "
          f"{time.monotonic() - t0:.1f}s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

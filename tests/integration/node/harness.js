'use strict';
// What the node `ws` suites (test_echo_server.js, test_deflate.js) share:
// free ports, echo_server started and stopped by PID, bounded waits, a ws
// client that counts its wire bytes, and the loop that runs the cases.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const WebSocket = require('ws');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.resolve(ROOT, process.env.EXAMPLE_BIN || 'examples');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tryConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Children we started, killed by PID if the test itself is stopped.
const children = new Set();
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    console.log(`stopped by ${sig}`);
    process.exit(1);
  });
}

// echo_server (or $ECHO_SERVER) on a free port, once it accepts (10 s at
// most).
async function startServer(args = []) {
  const port = await freePort();
  const proc = spawn(path.join(BIN, process.env.ECHO_SERVER || 'echo_server'),
    ['--host', '127.0.0.1', '--port', String(port), ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  const deadline = Date.now() + 10000;
  while (!(await tryConnect(port))) {
    if (proc.exitCode !== null) throw new Error(`echo_server exited early: ${stderr}`);
    if (Date.now() > deadline) throw new Error('echo_server did not listen within 10 s');
    await delay(20);
  }
  return { port, proc, exited, stderr: () => stderr, url: `ws://127.0.0.1:${port}` };
}

// A sanitizer's report in a server's stderr, or undefined.
function sanitizerReport(stderr) {
  return stderr.split('\n').find((l) =>
    /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/.test(l));
}

// SIGTERM; the server must exit 0 within 5 s, with no sanitizer report.
async function stopServer(srv) {
  srv.proc.kill('SIGTERM');
  const ex = await withTimeout(srv.exited, 5000, 'echo_server exit');
  assert.deepEqual(ex, { code: 0, sig: null }, `exit ${JSON.stringify(ex)}: ${srv.stderr()}`);
  assert.ok(!sanitizerReport(srv.stderr()), srv.stderr());
}

// A ws client, open; ws.wire counts the bytes it receives on the wire and
// ws.extHeader is the server's Sec-WebSocket-Extensions.
function open(url, opts = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: 0, ...opts });
    ws.wire = 0;
    ws.once('upgrade', (res) => {
      ws.extHeader = res.headers['sec-websocket-extensions'] || '';
      res.socket.on('data', (d) => { ws.wire += d.length; });
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 5000, `open ${url}`);
}

// Resolves with the next message as {data, isBinary}.
function nextMessage(ws, ms = 10000) {
  return withTimeout(new Promise((resolve, reject) => {
    const onMsg = (data, isBinary) => { cleanup(); resolve({ data, isBinary }); };
    const onClose = (code, reason) => { cleanup(); reject(new Error(`closed ${code} ${reason}`)); };
    const cleanup = () => { ws.off('message', onMsg); ws.off('close', onClose); };
    ws.on('message', onMsg);
    ws.on('close', onClose);
  }), ms, 'message');
}

// Resolves with {code, reason} of the close event.
function closed(ws, ms = 5000) {
  return withTimeout(new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  }), ms, 'close');
}

// Run cases[name](srv) for each of `names`, each within `limitMs`, printing
// PASS or FAIL; returns the names that failed.
async function runCases(cases, names, srv, limitMs) {
  const failed = [];
  for (const name of names) {
    const t = Date.now();
    try {
      await withTimeout(cases[name](srv), limitMs, name);
      console.log(`  PASS ${name} (${((Date.now() - t) / 1000).toFixed(2)}s)`);
    } catch (e) {
      failed.push(name);
      console.log(`  FAIL ${name} (${((Date.now() - t) / 1000).toFixed(2)}s): ${e.message}`);
    }
  }
  return failed;
}

module.exports = {
  BIN, freePort, delay, withTimeout, children, startServer, stopServer,
  sanitizerReport, open, nextMessage, closed, runCases,
};

'use strict';
// echo_server driven by the node `ws` package (a second, independent
// client implementation).  Started by tests/integration/node_ws.sh, which
// installs ws first; run alone with:
//   bash tests/integration/node_ws.sh            (all cases)
//   CASE=closeCodes bash tests/integration/node_ws.sh
//
// Picks a free port, starts echo_server, waits for it by polling connect
// (bounded), runs every case with a time limit, stops the server by PID.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  withTimeout, startServer, sanitizerReport, open, nextMessage, closed, runCases,
} = require('./harness');

const SIZES = [0, 1, 125, 126, 65535, 65536, 2 ** 20 - 1];

// ---- helpers ------------------------------------------------------------------

// A string whose UTF-8 encoding is exactly n bytes, with 1- to 4-byte chars.
function textOf(n) {
  const unit = 'wsmsg é € 😀 ';
  let b = Buffer.from(unit.repeat(Math.ceil(n / Buffer.byteLength(unit)) + 1)).subarray(0, n);
  while (b.length > 0 && (b[b.length - 1] & 0xc0) === 0x80) b = b.subarray(0, b.length - 1);
  if (b.length > 0 && b[b.length - 1] >= 0xc0) b = b.subarray(0, b.length - 1);
  const s = b.toString('utf8') + 'x'.repeat(n - b.length);
  assert.equal(Buffer.byteLength(s), n);
  return s;
}

// ---- cases ------------------------------------------------------------------------

const cases = {
  async textSizes(srv) {
    const ws = await open(srv.url);
    for (const n of SIZES) {
      const msg = textOf(n);
      const p = nextMessage(ws);
      ws.send(msg);
      const { data, isBinary } = await p;
      assert.equal(isBinary, false, `${n}: echo is not text`);
      assert.equal(data.toString('utf8'), msg, `text of ${n} bytes differs`);
    }
    ws.close(1000);
    await closed(ws);
  },

  async binarySizes(srv) {
    const ws = await open(srv.url);
    for (const n of SIZES) {
      const msg = crypto.randomBytes(n);
      const p = nextMessage(ws);
      ws.send(msg);
      const { data, isBinary } = await p;
      assert.equal(isBinary, true, `${n}: echo is not binary`);
      assert.ok(Buffer.compare(data, msg) === 0, `binary of ${n} bytes differs (${data.length} back)`);
    }
    ws.close(1000);
    await closed(ws);
  },

  async fragmentedSend(srv) {
    const ws = await open(srv.url);
    let p = nextMessage(ws);
    ws.send('Hel', { fin: false });
    ws.send('lo, ', { fin: false });
    ws.send('', { fin: false });
    ws.send('wörld 😀', { fin: true });
    let m = await p;
    assert.equal(m.isBinary, false);
    assert.equal(m.data.toString(), 'Hello, wörld 😀');

    const parts = [1, 0, 125, 126, 70000, 3].map((n) => crypto.randomBytes(n));
    p = nextMessage(ws);
    parts.forEach((b, i) => ws.send(b, { fin: i === parts.length - 1 }));
    m = await p;
    assert.equal(m.isBinary, true);
    assert.ok(Buffer.compare(m.data, Buffer.concat(parts)) === 0, 'fragmented binary differs');
    ws.close(1000);
    await closed(ws);
  },

  async pingPongPayload(srv) {
    const ws = await open(srv.url);
    for (const payload of [Buffer.alloc(0), Buffer.from('ping!'), crypto.randomBytes(125)]) {
      const p = withTimeout(new Promise((resolve) => ws.once('pong', resolve)), 5000, 'pong');
      ws.ping(payload);
      const got = await p;
      assert.ok(Buffer.compare(got, payload) === 0, `pong payload ${got.toString('hex')} != ${payload.toString('hex')}`);
    }
    ws.close(1000);
    await closed(ws);
  },

  async closeCodes(srv) {
    const list = [[1000, ''], [1000, 'normal'], [1001, 'going away'], [3000, 'registered'],
      [4999, 'private'], [1012, 'service restart'], [1013, 'try again later'],
      [1014, 'bad gateway'], [4000, 'ünïcødé 😀']];
    for (const [code, reason] of list) {
      const ws = await open(srv.url);
      const c = closed(ws);
      ws.close(code, reason);
      const got = await c;
      assert.equal(got.code, code, `sent ${code}, server answered ${got.code}`);
      assert.equal(got.reason, reason, `reason for ${code}`);
    }
  },

  async deflateNegotiated(srv) {
    // ws offers permessage-deflate by default; echo_server accepts it
    // (test_deflate.js covers the parameters); without the offer, none
    let ws = await open(srv.url);
    assert.match(ws.extensions, /^permessage-deflate/, `extensions: ${ws.extensions}`);
    ws.send('y'.repeat(5000));
    assert.equal((await nextMessage(ws)).data.toString(), 'y'.repeat(5000));
    ws.close(1000);
    await closed(ws);
    ws = await open(srv.url, { perMessageDeflate: false });
    assert.equal(ws.extensions, '', `extensions: ${ws.extensions}`);
    ws.close(1000);
    await closed(ws);
  },

  async tooBigGets1009(srv) {
    // The server refuses the message from its header and closes while ws is
    // still writing the payload: the close frame must still reach ws (the
    // server must not reset the TCP connection under it).  Repeated because
    // losing it is a race.
    const codes = {};
    for (let i = 0; i < 20; i++) {
      const ws = await open(srv.url);
      const c = closed(ws);
      ws.on('error', () => {});
      ws.send(crypto.randomBytes(2 ** 20 + 1 + i * 65536));
      const got = await c;
      codes[got.code] = (codes[got.code] || 0) + 1;
    }
    assert.ok(codes[1009] === 20, `20 connections, close codes seen: ${JSON.stringify(codes)} ` +
      '(1006: the close frame was lost to a TCP reset)');
  },

  async unmaskedGets1002(srv) {
    const ws = await open(srv.url);
    const c = closed(ws);
    ws.on('error', () => {});
    ws.send('not masked', { mask: false });
    const got = await c;
    assert.equal(got.code, 1002, `close code ${got.code}`);
  },

  async manyConcurrent(srv) {
    const N = 100;
    const one = async (i) => {
      const ws = await open(`${srv.url}/n${i}`);
      const p = nextMessage(ws);
      ws.send(`node ${i}`);
      assert.equal((await p).data.toString(), `node ${i}`);
      const c = closed(ws);
      ws.close(3000 + i, `bye ${i}`);
      assert.equal((await c).code, 3000 + i);
    };
    await Promise.all(Array.from({ length: N }, (_, i) => one(i)));
  },
};

// ---- runner -------------------------------------------------------------------------

const MIN_CASES = 9; // the cases above: fewer means some were lost

async function main() {
  const only = process.env.CASE;
  const names = Object.keys(cases).filter((n) => !only || n === only);
  // a run that ran nothing proves nothing
  console.log(`node_ws: ${names.length} cases (+ sigtermCloses1001)`);
  if (names.length === 0) {
    console.log(`node_ws: FAIL: no case ran (CASE=${JSON.stringify(only)} matches nothing)`);
    process.exit(1);
  }
  if (!only && names.length < MIN_CASES) {
    console.log(`node_ws: FAIL: ${names.length} cases, the suite has at least ${MIN_CASES}`);
    process.exit(1);
  }
  const t0 = Date.now();
  const srv = await startServer();
  const failed = [];
  try {
    failed.push(...await runCases(cases, names, srv, 30000));
    // Last: an open client sees 1001 when the server gets SIGTERM, and the
    // server exits 0.
    const t = Date.now();
    try {
      const ws = await open(srv.url);
      const c = closed(ws);
      srv.proc.kill('SIGTERM');
      const got = await c;
      assert.equal(got.code, 1001, `close code ${got.code}`);
      assert.equal(got.reason, 'going away');
      const ex = await withTimeout(srv.exited, 5000, 'echo_server exit');
      assert.deepEqual(ex, { code: 0, sig: null }, `exit ${JSON.stringify(ex)}: ${srv.stderr()}`);
      console.log(`  PASS sigtermCloses1001 (${((Date.now() - t) / 1000).toFixed(2)}s)`);
    } catch (e) {
      failed.push('sigtermCloses1001');
      console.log(`  FAIL sigtermCloses1001: ${e.message}`);
    }
  } finally {
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGKILL');
  }
  // a sanitizer report fails the run even if the exit status was 0
  const report = sanitizerReport(srv.stderr());
  if (report) {
    failed.push('sanitizer');
    console.log(`  FAIL echo_server sanitizer report: ${report}`);
  }
  const total = names.length + 1;
  console.log(`node ws ${require('ws/package.json').version}: ` +
    `${total - failed.length}/${total} passed in ${((Date.now() - t0) / 1000).toFixed(1)}s` +
    (failed.length ? `; FAILED: ${failed.join(', ')}` : ''));
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });

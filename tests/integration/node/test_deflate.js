'use strict';
// permessage-deflate against the node `ws` package, both directions:
// ws clients (perMessageDeflate with every window and takeover setting ws
// allows) against echo_server, and wsmsg's echo_client against a ws server
// with perMessageDeflate.  Started by tests/integration/node_ws.sh after
// test_echo_server.js; alone:
//   CASE=clientWindows bash tests/integration/node_ws.sh

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const WebSocket = require('ws');
const {
  BIN, freePort, withTimeout, children, startServer, stopServer, open,
  nextMessage, closed, runCases,
} = require('./harness');

function jsonText(n) {
  const unit = '{"type":"chat","user":"alice","room":"lobby","text":"hello world, café €","ts":1733400000},';
  return unit.repeat(Math.ceil(n / unit.length) + 1).slice(0, n);
}

async function echoAll(ws, sizes = [16, 1000, 16384, 131072]) {
  for (const n of sizes) {
    const msg = jsonText(n);
    ws.send(msg);
    const got = await nextMessage(ws);
    assert.equal(got.isBinary, false);
    assert.equal(got.data.toString(), msg, `text of ${n}`);
    ws.send(Buffer.from(msg));
    const b = await nextMessage(ws);
    assert.equal(b.isBinary, true);
    assert.ok(b.data.equals(Buffer.from(msg)), `binary of ${n}`);
  }
  // fragmented: ws compresses across fragments (fin: false)
  const parts = [jsonText(3000), jsonText(4000), jsonText(5000)];
  parts.forEach((p, i) => ws.send(p, { fin: i === parts.length - 1 }));
  assert.equal((await nextMessage(ws)).data.toString(), parts.join(''));
}

async function compressedWire(ws, n = 65536) {
  ws.wire = 0;
  const msg = jsonText(n);
  ws.send(msg);
  assert.equal((await nextMessage(ws)).data.toString(), msg);
  return ws.wire;
}

const cases = {
  async defaultOffer(srv) {
    const ws = await open(srv.url, { perMessageDeflate: { threshold: 0 } });
    assert.equal(ws.extensions, 'permessage-deflate');
    assert.match(ws.extHeader, /server_no_context_takeover/);
    await echoAll(ws);
    const w = await compressedWire(ws);
    assert.ok(w < 65536 / 5, `64 KiB of JSON took ${w} bytes`);
    ws.close(1000);
    await closed(ws);
  },

  async clientWindows(srv) {
    // every window ws can ask for; at 8 echo_server sends uncompressed
    for (let w = 8; w <= 15; w++) {
      const ws = await open(srv.url, {
        perMessageDeflate: { serverMaxWindowBits: w, clientMaxWindowBits: w, threshold: 0 },
      });
      assert.match(ws.extHeader, new RegExp(`server_max_window_bits=${w}(;|$)`), ws.extHeader);
      await echoAll(ws, [16, 5000, 70000]);
      const wire = await compressedWire(ws);
      if (w === 8) assert.ok(wire > 65536, `w=8: ${wire}`);
      else assert.ok(wire < 65536 / 3, `w=${w}: ${wire}`);
      ws.close(1000);
      await closed(ws);
    }
  },

  async takeoverFlags(srv) {
    // (undefined, not false: ws with clientNoContextTakeover: false refuses
    // a server that asks for it, and echo_server's default preset does)
    for (const serverNoContextTakeover of [undefined, true]) {
      for (const clientNoContextTakeover of [undefined, true]) {
        const ws = await open(srv.url, {
          perMessageDeflate: { serverNoContextTakeover, clientNoContextTakeover, threshold: 0 },
        });
        assert.match(ws.extensions, /permessage-deflate/);
        await echoAll(ws, [16, 1000, 65536]);
        ws.close(1000);
        await closed(ws);
      }
    }
  },

  async takeoverPresets() {
    // with takeover, 50 small JSON messages take much less than without
    const wires = {};
    for (const preset of ['on', 'low_memory', 'max_ratio']) {
      const srv = await startServer(['--deflate', preset]);
      try {
        const ws = await open(srv.url, { perMessageDeflate: { threshold: 0 } });
        await echoAll(ws, [16, 5000]);
        ws.wire = 0;
        for (let i = 0; i < 50; i++) {
          const m = jsonText(200 + i);
          ws.send(m);
          assert.equal((await nextMessage(ws)).data.toString(), m);
        }
        wires[preset] = ws.wire;
        ws.close(1000);
        await closed(ws);
      } finally {
        await stopServer(srv);
      }
    }
    assert.ok(wires.low_memory < wires.on * 0.6, JSON.stringify(wires));
    assert.ok(wires.max_ratio < wires.on * 0.6, JSON.stringify(wires));
  },

  async wsmsgClientAgainstWsServer() {
    // echo_client (wsmsg) with each preset and window against a ws server
    // with perMessageDeflate, each of its settings
    // (a ws server with a fixed serverMaxWindowBits refuses, 400, offers
    // asking a smaller one: 10 meets every preset but not 9,9)
    const settings = [
      {}, { serverNoContextTakeover: true }, { clientNoContextTakeover: true },
      { serverMaxWindowBits: 9, clientMaxWindowBits: 9 },
      { serverMaxWindowBits: 10, clientMaxWindowBits: 10 },
    ];
    const lines = [16, 200, 5000, 60000].map(jsonText);
    for (const pmd of settings) {
      const port = await freePort();
      const wss = new WebSocket.Server({ host: '127.0.0.1', port, perMessageDeflate: { threshold: 0, ...pmd } });
      await new Promise((r) => wss.once('listening', r));
      wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
      try {
        const all = [['--deflate', 'on'], ['--deflate', 'low_memory'],
          ['--deflate', 'max_ratio'], ['--deflate', 'on', '--deflate-window', '9,9']];
        for (const args of pmd.serverMaxWindowBits === 10 ? all.slice(0, 3) : all) {
          // spawnSync would block the server's event loop: run it async
          const p = spawn(path.join(BIN, 'echo_client'), ['--timeout', '10000', '--count',
            String(lines.length), '--close', ...args, `ws://127.0.0.1:${port}/`]);
          children.add(p);
          let out = '';
          let err = '';
          p.stdout.on('data', (d) => { out += d; });
          p.stderr.on('data', (d) => { err += d; });
          p.stdin.end(lines.map((l) => `${l}\n`).join(''));
          const code = await withTimeout(new Promise((r) => p.on('exit', r)), 20000, 'echo_client');
          assert.equal(code, 0, `${JSON.stringify(pmd)} ${args}: exit ${code}: ${err}`);
          assert.match(err, /permessage-deflate/, `${JSON.stringify(pmd)} ${args}: ${err}`);
          assert.deepEqual(out.split('\n').slice(0, -1), lines, `${JSON.stringify(pmd)} ${args}`);
        }
      } finally {
        await new Promise((r) => wss.close(r));
      }
    }
  },
};

async function main() {
  const only = process.env.CASE;
  const names = Object.keys(cases).filter((n) => !only || n === only);
  if (only && names.length === 0) {
    console.log('node_ws deflate: no case matches');
    process.exit(0); // CASE picked one of test_echo_server.js's cases
  }
  const t0 = Date.now();
  const srv = await startServer();
  const failed = [];
  try {
    failed.push(...await runCases(cases, names, srv, 60000));
  } finally {
    try {
      await stopServer(srv);
    } catch (e) {
      failed.push('server exit');
      console.log(`  FAIL server exit: ${e.message}`);
    }
  }
  console.log(`node ws ${require('ws/package.json').version} permessage-deflate: ` +
    `${names.length - failed.length}/${names.length} passed in ${((Date.now() - t0) / 1000).toFixed(1)}s` +
    (failed.length ? `; FAILED: ${failed.join(', ')}` : ''));
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });

// Fan-out with node ws (make bench; issue 16): one message to N server-side
// WebSockets with a loop of send(), as the ws README's broadcast does.  The
// sockets are Duplex streams that discard what is written (no kernel), as
// tests/bench/fanout.c takes wsmsg's output without writing it.
//   node fanout_node.js N [SECONDS]  -> one JSON line
'use strict';
const path = require('path');
const { Duplex } = require('stream');
const WebSocket = require(path.join(__dirname, 'node', 'node_modules', 'ws'));

const n = parseInt(process.argv[2], 10);
const secs = parseFloat(process.argv[3] || '1');

class Sink extends Duplex {
  _read() {}
  _write(chunk, enc, cb) { cb(); }
  _writev(chunks, cb) { cb(); }
}

const clients = [];
for (let i = 0; i < n; i++) {
  const ws = new WebSocket(null, undefined, {});
  ws.setSocket(new Sink(), Buffer.alloc(0), { maxPayload: 1 << 20 });
  clients.push(ws);
}
const msg = 'x'.repeat(64);

function round() {
  for (const ws of clients) if (ws.readyState === WebSocket.OPEN) ws.send(msg);
}

// writes complete asynchronously (the stream callbacks): yield to the event
// loop between batches so memory does not pile up
let deliveries = 0;
let publishes = 0;
const heap0 = process.memoryUsage().heapUsed;
// CPU time (user + system) of this process: on a busy machine wall time
// measures the neighbours too
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const t0 = cpu();
function batch() {
  for (let k = 0; k < 16; k++) {
    round();
    deliveries += n;
    publishes++;
  }
  const el = cpu() - t0;
  if (el < secs) {
    setImmediate(batch);
    return;
  }
  console.log(JSON.stringify({
    impl: 'node-ws', subscribers: n, publishes,
    deliveries_per_s: Math.round(deliveries / el),
    heap_growth_bytes: process.memoryUsage().heapUsed - heap0,
  }));
  process.exit(0);
}
batch();

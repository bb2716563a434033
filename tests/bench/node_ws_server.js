// node + ws comparison point for `make bench` (ws from npm, pinned in
// tests/bench/node/package-lock.json; `npm ci` there installs it).
//
//   /ws/echo       echoes text as text and binary as binary
//   /ws/json-demo  JSON.parse, the three MessageModel fields checked by hand
//                  (user: string, content: string, timestamp: number),
//                  "status": "PROCESSED" added, JSON.stringify back;
//                  invalid input gets {"detail": [...]} like FastAPI
//
//   node tests/bench/node_ws_server.js [--host 127.0.0.1] [--port 9004] [--deflate]
//
// --deflate: perMessageDeflate on with wsmsg's WSMSG_DEFLATE_ON settings
// (zlib level 6, memLevel 8, threshold 128 bytes; the client's offer
// decides context takeover), for tests/bench/deflate_bench.sh
'use strict';
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, 'node', 'node_modules', 'ws'));

let host = '127.0.0.1';
let port = 9004;
let deflate = false;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--host') host = process.argv[++i];
  else if (process.argv[i] === '--port') port = Number(process.argv[++i]);
  else if (process.argv[i] === '--deflate') deflate = true;
}

function validate(doc) {
  const errors = [];
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return [{ loc: ['__root__'], msg: 'value is not a valid dict', type: 'type_error.dict' }];
  }
  for (const [name, type] of [['user', 'string'], ['content', 'string'], ['timestamp', 'number']]) {
    if (!(name in doc)) errors.push({ loc: [name], msg: 'field required', type: 'value_error.missing' });
    else if (typeof doc[name] !== type) {
      errors.push({ loc: [name], msg: `${type === 'string' ? 'str' : 'float'} type expected`,
                    type: `type_error.${type === 'string' ? 'str' : 'float'}` });
    }
  }
  return errors;
}

const wss = new WebSocketServer({
  host, port, backlog: 4096, maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: deflate
    ? { threshold: 128, zlibDeflateOptions: { level: 6, memLevel: 8 } }
    : false,
});
wss.on('connection', (ws, req) => {
  const url = (req.url || '/').split('?')[0];
  if (url === '/ws/json-demo') {
    ws.on('message', (data, isBinary) => {
      if (isBinary) { ws.send(data, { binary: true }); return; }
      let doc;
      try { doc = JSON.parse(data.toString('utf8')); } catch (e) {
        ws.send(JSON.stringify({ detail: [{ loc: ['__root__'], msg: e.message, type: 'value_error.jsondecode' }] }));
        return;
      }
      const errors = validate(doc);
      if (errors.length) { ws.send(JSON.stringify({ detail: errors })); return; }
      ws.send(JSON.stringify({ user: doc.user, content: doc.content, timestamp: doc.timestamp, status: 'PROCESSED' }));
    });
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
});
wss.on('listening', () => console.error(`node ws server on ws://${host}:${port}/`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

// The wsmsg demo page: one WebSocket per endpoint of examples/demo_server,
// each reconnecting with exponential backoff.  No framework, no build step.
'use strict';

const WS_BASE = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
const $ = (sel, root = document) => root.querySelector(sel);

function stamp() {
  return new Date().toLocaleTimeString([], { hour12: false });
}

function logLine(list, text, cls) {
  const li = document.createElement('li');
  li.textContent = `${stamp()}  ${text}`;
  if (cls) li.className = cls;
  list.appendChild(li);
  while (list.children.length > 200) list.removeChild(list.firstChild);
  list.scrollTop = list.scrollHeight;
  return li;
}

// One endpoint's connection: state shown in its panel, reconnect with
// exponential backoff (0.5 s doubling to 15 s, with jitter) until the
// Disconnect button stops it.
class Link {
  constructor(panel, onMessage, onOpen) {
    this.panel = panel;
    this.url = WS_BASE + panel.dataset.path;
    this.onMessage = onMessage;
    this.onOpen = onOpen || (() => {});
    this.stateEl = $('.state', panel);
    this.extEl = $('.ext', panel);
    this.toggle = $('.toggle', panel);
    this.attempt = 0;
    this.opens = 0;
    this.closeCodes = []; // every close seen, for the curious (and tests)
    this.wanted = true;
    this.ws = null;
    this.timer = null;
    this.toggle.addEventListener('click', () => {
      if (this.wanted) this.stop(); else this.start();
    });
    this.start();
  }

  setState(cls, text) {
    this.stateEl.className = 'state ' + cls;
    this.stateEl.textContent = text;
  }

  start() {
    this.wanted = true;
    this.toggle.textContent = 'Disconnect';
    this.connect();
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.toggle.textContent = 'Connect';
    if (this.ws) this.ws.close(1000, 'closed by the user');
    this.setState('closed', 'disconnected');
  }

  connect() {
    clearTimeout(this.timer);
    this.setState('connecting', this.attempt ? `reconnecting (attempt ${this.attempt + 1})` : 'connecting');
    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.opens++;
      this.setState('open', 'open');
      this.extEl.textContent = ws.extensions ? ws.extensions : 'no extensions';
      this.onOpen(ws);
    };
    ws.onmessage = (ev) => this.onMessage(ev.data, ws);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.closeCodes.push(ev.code);
      this.ws = null;
      this.extEl.textContent = '';
      if (!this.wanted) return;
      const delay = Math.min(500 * 2 ** this.attempt, 15000) * (0.5 + Math.random() / 2);
      this.attempt++;
      this.setState('retry', `closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''}), retry in ${(delay / 1000).toFixed(1)} s`);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  get open() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

  send(data) {
    if (!this.open) return false;
    this.ws.send(data);
    return true;
  }
}

// ---- chat ----------------------------------------------------------------
const chatLog = $('#chat .log');
const chat = new Link($('#chat'), (data) => logLine(chatLog, String(data)),
  () => logLine(chatLog, 'connected', 'sys'));
$('#chat-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('#chat-input');
  if (!input.value) return;
  if (chat.send(input.value)) {
    logLine(chatLog, 'you: ' + input.value, 'out');
    input.value = '';
  } else {
    logLine(chatLog, 'not connected', 'sys');
  }
});

// ---- file transfer ---------------------------------------------------------
const CHUNK = 64 * 1024;
const upload = { busy: false, size: 0, localSha: null, waiters: [], result: null };

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

function fileStatus(text, cls) {
  const el = $('#file-status');
  el.textContent = text;
  el.className = cls || '';
}

// The server's JSON replies, handed to whoever waits for the next one.
function nextReply() {
  return new Promise((resolve) => upload.waiters.push(resolve));
}

const fileLink = new Link($('#file'), (data) => {
  if (typeof data !== 'string') return; // the old protocol's binary ack
  let msg;
  try { msg = JSON.parse(data); } catch { fileStatus(data); return; }
  if (msg.status === 'PROGRESS') {
    $('#file-progress').value = upload.size ? msg.received / upload.size : 1;
    fileStatus(`uploading: ${msg.received} of ${upload.size} bytes acknowledged`);
    return;
  }
  const w = upload.waiters.shift();
  if (w) w(msg);
});

async function sendFile(file) {
  upload.busy = true;
  upload.result = null;
  upload.size = file.size;
  upload.waiters = [];
  $('#file-progress').value = 0;
  for (const id of ['#file-name', '#file-sha-local', '#file-sha-server', '#file-match']) $(id).textContent = '–';
  $('#file-match').className = '';
  try {
    const buf = await file.arrayBuffer();
    fileStatus('hashing…');
    // crypto.subtle exists in secure contexts only (https://, localhost)
    upload.localSha = crypto.subtle ? hex(await crypto.subtle.digest('SHA-256', buf)) : null;
    $('#file-sha-local').textContent = upload.localSha || 'unavailable (not a secure context)';
    const header = { name: file.name, size: file.size };
    if (upload.localSha) header.sha256 = upload.localSha;
    const ready = nextReply();
    if (!fileLink.send(JSON.stringify(header))) throw new Error('not connected');
    const r = await ready;
    if (r.status !== 'READY') throw new Error(`${r.error}: ${r.detail}`);
    $('#file-name').textContent = r.file;
    const done = nextReply();
    const ws = fileLink.ws;
    for (let off = 0; off < buf.byteLength; off += CHUNK) {
      // keep at most 1 MiB queued in the browser: memory stays flat
      while (ws.bufferedAmount > (1 << 20)) {
        if (ws.readyState !== WebSocket.OPEN) throw new Error('connection lost');
        await new Promise((res) => setTimeout(res, 5));
      }
      ws.send(buf.slice(off, off + CHUNK));
    }
    const fin = await done;
    if (fin.status !== 'FILE_RECEIVED') throw new Error(`${fin.error}: ${fin.detail}`);
    $('#file-progress').value = 1;
    $('#file-sha-server').textContent = fin.sha256;
    const match = upload.localSha ? fin.sha256 === upload.localSha : null;
    $('#file-match').textContent = match === null ? 'not compared' : match ? '✓ identical' : '✗ different';
    $('#file-match').className = match === false ? 'bad' : match ? 'ok' : '';
    fileStatus(`stored ${fin.size} bytes`, 'ok');
    upload.result = fin;
  } catch (e) {
    fileStatus('failed: ' + e.message, 'bad');
    upload.result = { status: 'error', detail: e.message };
  } finally {
    upload.busy = false;
  }
}

$('#file-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = $('#file-input').files[0];
  if (!f) { fileStatus('pick a file first'); return; }
  if (!upload.busy) sendFile(f);
});

// ---- JSON validation --------------------------------------------------------
const FIELDS = ['user', 'content', 'timestamp'];
const jsonState = { replies: 0, last: null };

function clearErrors() {
  for (const el of document.querySelectorAll('#json .err')) el.textContent = '';
  for (const f of FIELDS) $('#json-' + f).classList.remove('invalid');
}

const jsonLink = new Link($('#json'), (data) => {
  jsonState.replies++;
  let msg;
  try { msg = JSON.parse(data); } catch { $('#json-reply').textContent = data; return; }
  jsonState.last = msg;
  $('#json-reply').textContent = JSON.stringify(msg, null, 2);
  clearErrors();
  if (msg.error === 'validation_error' && Array.isArray(msg.detail)) {
    for (const d of msg.detail) {
      const field = Array.isArray(d.loc) && d.loc.length ? String(d.loc[0]) : '__root__';
      const slot = $(`#json .err[data-field="${CSS.escape(field)}"]`) || $('#json .err[data-field="__root__"]');
      slot.textContent += (slot.textContent ? '; ' : '') + `${d.msg} (${d.type})`;
      const input = $('#json-' + field);
      if (input) input.classList.add('invalid');
    }
  }
});

$('#json-now').addEventListener('click', () => {
  $('#json-timestamp').value = String(Date.now() / 1000);
});

$('#json-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const msg = {};
  for (const f of FIELDS) {
    const v = $('#json-' + f).value.trim();
    if (v === '') continue; // left out: "field required"
    if (f === 'timestamp' && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v)) msg[f] = Number(v);
    else msg[f] = v;
  }
  if (!jsonLink.send(JSON.stringify(msg))) $('#json-reply').textContent = 'not connected';
});

// ---- timeout & heartbeat ----------------------------------------------------
const tmoLog = $('#timeout .log');
const tmo = { lastSent: performance.now(), heartbeats: 0, rtt: null, probe: null, seq: 0 };

function measureRtt() {
  const id = `rtt:${++tmo.seq}`;
  tmo.probe = { id, t0: performance.now() };
  if (timeoutLink.send(id)) tmo.lastSent = performance.now();
}

const timeoutLink = new Link($('#timeout'), (data) => {
  const text = String(data);
  if (text === 'HEARTBEAT') {
    tmo.heartbeats++;
    $('#heartbeats').textContent = String(tmo.heartbeats);
    const quiet = ((performance.now() - tmo.lastSent) / 1000).toFixed(1);
    logLine(tmoLog, `HEARTBEAT after ${quiet} s of silence`, 'hb');
    return;
  }
  if (tmo.probe && text === 'Echo: ' + tmo.probe.id) {
    tmo.rtt = performance.now() - tmo.probe.t0;
    tmo.probe = null;
    $('#rtt').textContent = tmo.rtt.toFixed(1) + ' ms';
  }
  logLine(tmoLog, text);
}, () => {
  logLine(tmoLog, 'connected; now staying silent', 'sys');
  measureRtt();
});

$('#rtt-btn').addEventListener('click', measureRtt);
setInterval(() => {
  const s = timeoutLink.open ? (performance.now() - tmo.lastSent) / 1000 : 0;
  $('#silence').textContent = s.toFixed(0);
}, 250);

$('#scheme').textContent = location.protocol === 'https:' ? 'wss:// (TLS)' : 'ws://';

// for tests and the curious
window.demo = { chat, fileLink, jsonLink, timeoutLink, upload, jsonState, tmo };

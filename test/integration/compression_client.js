// node's ws client with perMessageDeflate, for test_compression.py: echoes of 0 B to 1 MiB, text
// and binary, through wsbal; half-way it prints "KILL <backend>" and waits for "ok" on stdin
// while the test kills that backend. Ends with one line: "RESULT <json>".
//   node compression_client.js WS_MODULE_DIR URL
'use strict';
const WebSocket = require(process.argv[2]);
const url = process.argv[3];
const readline = require('readline');
const lines = readline.createInterface({input: process.stdin});
const waiting = [];
lines.on('line', (l) => waiting.length && waiting.shift()(l));
const nextLine = () => new Promise((resolve) => waiting.push(resolve));

const SIZES = [0, 1, 15, 16, 100, 1000, 4096, 65535, 65536, 200000, 1 << 20];

function payload(n, text, seed) {
  const unit = `{"seq":${seed},"user":"u${seed % 97}","vals":[${seed % 13},${seed % 7}]},`;
  const s = unit.repeat(Math.floor(n / unit.length) + 1).slice(0, n);
  if (text) return s;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (s.charCodeAt(i) + Math.floor(i / 1000)) % 256;
  return b;
}

const ws = new WebSocket(url, {perMessageDeflate: {threshold: 0}, maxPayload: 4 << 20});
let extensions = null;
ws.on('upgrade', (res) => { extensions = res.headers['sec-websocket-extensions']; });
const queue = [];
const waiters = [];
ws.on('message', (data, isBinary) => {
  const m = {data, isBinary};
  if (waiters.length) waiters.shift()(m);
  else queue.push(m);
});
const recv = () => new Promise((resolve) => queue.length ? resolve(queue.shift()) : waiters.push(resolve));
const send = (m) => new Promise((resolve, reject) => ws.send(m, (e) => e ? reject(e) : resolve()));

function same(m, got) {
  if (typeof m === 'string') return !got.isBinary && got.data.toString('utf8') === m;
  return got.isBinary && Buffer.compare(Buffer.from(got.data), m) === 0;
}

ws.on('error', (e) => {
  console.log('RESULT ' + JSON.stringify({error: String(e)}));
  process.exit(1);
});
ws.on('open', async () => {
  const result = {extensions, ok: 0, total: 0};
  await send('who');
  result.before = (await recv()).data.toString();
  const msgs = [];
  SIZES.forEach((n, i) => { msgs.push(payload(n, true, i)); msgs.push(payload(n, false, i)); });
  for (let i = 0; i < msgs.length; i++) {
    if (i === msgs.length / 2) {
      console.log('KILL ' + result.before);
      await nextLine();
    }
    await send(msgs[i]);
    result.ok += same(msgs[i], await recv()) ? 1 : 0;
    result.total++;
  }
  await send('who');
  result.after = (await recv()).data.toString();
  ws.close(1000);
  ws.on('close', (code) => {
    result.close = code;
    console.log('RESULT ' + JSON.stringify(result));
    process.exit(0);
  });
});

"""permessage-deflate on the client leg ([listen] compression = on), with python3-websockets.

Negotiation answers, RSV1 rules and bad compressed data with hand-built frames; messages of 0 B to
1 MiB both ways and a failover in the middle with python3-websockets' compression="deflate";
the metric. Real processes on 127.0.0.1; every wait has a deadline.
"""
import asyncio
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zlib

import websockets

from wsbtest import (ALL_PROCESSES, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, T, Checks, Echo,
                     Peer, Process, RawClient, Wsbal, admin_call, frame, free_port, run,
                     run_tests)

c = Checks()
ON = {"compression": "on", "compression_min_bytes": "16"}
BOTH_NO = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def deflate(data, bits=15):
    """A message's payload as a sender compresses it (RFC 7692 7.2.1): the tail removed."""
    co = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def inflate(data):
    return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")


def close_code(payload):
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


def raw(lb, ext):
    """An upgraded raw client that offered ext; its 101 headers."""
    return RawClient.upgraded(lb.port, headers={"Sec-WebSocket-Extensions": ext})


def read_close(cl):
    """The close code wsbal sends, skipping data frames before it."""
    for _ in range(50):
        fin, op, payload = cl.read_frame()
        if op == OP_CLOSE:
            return close_code(payload)
    return None


def head_of(lb, ext):
    cl = RawClient(lb.port)
    cl.request("/", {"Sec-WebSocket-Extensions": ext} if ext is not None else None, key=KEY)
    status, hdrs, head = cl.read_head()
    cl.close()
    return status, hdrs, head


def test_negotiation():
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], sections={"listen": dict(ON)})
    off = Wsbal([("e1", echo.url)])
    try:
        for ext, want in [("permessage-deflate", BOTH_NO),
                          ("permessage-deflate; client_max_window_bits", BOTH_NO),
                          ("permessage-deflate; server_max_window_bits=10",
                           BOTH_NO + "; server_max_window_bits=10"),
                          ("x-webkit-deflate-frame, permessage-deflate; bogus=1, "
                           "permessage-deflate; server_no_context_takeover", BOTH_NO),
                          ("permessage-deflate; server_max_window_bits=8", None),
                          ("permessage-deflate; server_no_context_takeover=yes", None),
                          ("foo", None)]:
            status, hdrs, _ = head_of(lb, ext)
            c.eq(f"offer {ext!r}: 101", 101, status)
            c.eq(f"offer {ext!r}: answer", want, hdrs.get("sec-websocket-extensions"))
        for ext in ["permessage-deflate;", "permessage-deflate; a=\"b", "permessage deflate",
                    "permessage-deflate; =1"]:
            status, _, _ = head_of(lb, ext)
            c.eq(f"malformed offer {ext!r}: 400", 400, status)
        # No offer, or compression off: today's 101, byte for byte.
        _, _, plain_on = head_of(lb, None)
        _, _, plain_off = head_of(off, None)
        _, _, offered_off = head_of(off, "permessage-deflate")
        _, _, malformed_off = head_of(off, "permessage-deflate;")
        c.eq("no offer: the same 101 with compression on and off", plain_off, plain_on)
        c.eq("compression off: an offer changes nothing", plain_off, offered_off)
        c.eq("compression off: a malformed offer is not read", plain_off, malformed_off)
        c.true("no extension in a plain 101", b"Extensions" not in plain_on, plain_on)
    finally:
        lb.stop()
        off.stop()
        echo.stop()


def test_raw_frames():
    """Compressed frames by hand: fragments, interleaved ping, RSV1 and inflate errors."""
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], sections={"listen": dict(ON, max_message_bytes="64k")})
    try:
        cl, hdrs = raw(lb, "permessage-deflate")
        c.eq("raw: negotiated", BOTH_NO, hdrs.get("sec-websocket-extensions"))
        # One compressed frame; the echo comes back compressed (>= 16 bytes) or plain.
        msg = b'{"hello":"world","n":[1,2,3,4,5,6,7,8,9,10]}' * 4
        cl.send(frame(OP_TEXT, deflate(msg), rsv=4))
        fin, op, payload = cl.read_frame()
        c.eq("raw: echo of a compressed message, inflated by the client", msg, inflate(payload))
        # A fragmented compressed message with a ping between fragments: pong first, then echo.
        z = deflate(msg * 3)
        cl.send(frame(OP_BINARY, z[:5], fin=False, rsv=4) + frame(OP_PING, b"p") +
                frame(OP_CONT, z[5:20], fin=False) + frame(OP_CONT, z[20:]))
        fin, op, payload = cl.read_frame()
        c.eq("raw: the ping inside the message is answered first", (OP_PONG, b"p"), (op, payload))
        data = b""
        while True:
            fin, op, payload = cl.read_frame()
            data += payload
            if fin:
                break
        c.eq("raw: fragmented compressed message echoed whole", msg * 3, inflate(data))
        # A small message comes back uncompressed; so does an empty one, sent compressed.
        cl.send(frame(OP_TEXT, deflate(b"hi"), rsv=4))
        c.eq("raw: small echo goes plain", (True, OP_TEXT, b"hi"), cl.read_frame())
        cl.send(frame(OP_TEXT, b"\x00", rsv=4))
        c.eq("raw: empty compressed message", (True, OP_TEXT, b""), cl.read_frame())
        cl.send(frame(OP_TEXT, b"plain too"))
        c.eq("raw: uncompressed messages still pass", (True, OP_TEXT, b"plain too"),
             cl.read_frame())
        cl.close()
        cases = [
            ("RSV1 on a continuation", "permessage-deflate",
             frame(OP_TEXT, deflate(b"ab"), fin=False, rsv=4) + frame(OP_CONT, b"\x00", rsv=4), 1002),
            ("RSV1 on a ping", "permessage-deflate", frame(OP_PING, b"x", rsv=4), 1002),
            ("RSV2", "permessage-deflate", frame(OP_TEXT, b"x", rsv=2), 1002),
            ("RSV1 without negotiation", None, frame(OP_TEXT, deflate(b"hello"), rsv=4), 1002),
            ("RSV1 after a declined offer", "permessage-deflate; x=1",
             frame(OP_TEXT, deflate(b"hello"), rsv=4), 1002),
            ("not deflate data", "permessage-deflate", frame(OP_TEXT, b"\xff\xff\xff", rsv=4), 1007),
            ("zip bomb past max_message_bytes", "permessage-deflate",
             frame(OP_BINARY, deflate(b"\x00" * (4 << 20)), rsv=4), 1009),
            ("fragments inflating past max_message_bytes", "permessage-deflate",
             frame(OP_BINARY, BIG[:len(BIG) // 2], fin=False, rsv=4) +
             frame(OP_CONT, BIG[len(BIG) // 2:]), 1009),
        ]
        for name, ext, data, code in cases:
            cl, _ = raw(lb, ext) if ext else RawClient.upgraded(lb.port)
            cl.send(data)
            c.eq(f"{name}: close {code}", code, read_close(cl))
            c.true(f"{name}: connection closed", cl.closed_by_peer(), "")
            cl.close()
    finally:
        lb.stop()
        echo.stop()


BIG = deflate(b"\x00" * 100000)
SIZES = [0, 1, 15, 16, 100, 1000, 4096, 65535, 65536, 200000, 1 << 20]


def payload(n, text, seed):
    """Compressible but varied data: JSON-like text, or bytes with structure."""
    unit = f'{{"seq":{seed},"user":"u{seed % 97}","vals":[{seed % 13},{seed % 7}]}},'
    data = (unit * (n // len(unit) + 1))[:n]
    return data if text else bytes((ord(ch) + i // 1000) % 256 for i, ch in enumerate(data))


async def echo_sizes(url, checks_name):
    async with websockets.connect(url, compression="deflate", max_size=2 << 20,
                                  ping_interval=None) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions")
        c.eq(f"{checks_name}: negotiated", BOTH_NO, ext)
        ok = 0
        for i, n in enumerate(SIZES):
            for text in (True, False):
                m = payload(n, text, i)
                await ws.send(m)
                got = await asyncio.wait_for(ws.recv(), T)
                ok += got == m
        c.eq(f"{checks_name}: every size echoed, text and binary", 2 * len(SIZES), ok)


def test_websockets_client():
    echo = Echo("e1")
    admin = free_port()
    lb = Wsbal([("e1", echo.url)],
               sections={"listen": dict(ON), "admin": {"address": f"127.0.0.1:{admin}"}})
    try:
        run(echo_sizes(lb.url, "websockets"))
        status, body = admin_call(admin, "GET", "/metrics")
        text = body.decode()
        vals = {}
        for line in text.splitlines():
            if line.startswith("wsbal_compression_bytes_total{"):
                name, v = line.rsplit(" ", 1)
                vals[name[len("wsbal_compression_bytes_total"):]] = int(v)
        tb_wire = vals.get('{direction="client_to_backend",stage="wire"}', 0)
        tb_payload = vals.get('{direction="client_to_backend",stage="payload"}', 0)
        tc_wire = vals.get('{direction="backend_to_client",stage="wire"}', 0)
        tc_payload = vals.get('{direction="backend_to_client",stage="payload"}', 0)
        c.true("metric: client messages inflated", tb_payload > tb_wire > 0, repr(vals))
        c.true("metric: backend messages deflated", tc_payload > tc_wire > 0, repr(vals))
    finally:
        lb.stop()
        echo.stop()


async def failover_stream(lb, peers):
    """Compressed messages with a few in flight; the serving backend is killed mid-way."""
    async with websockets.connect(lb.url, compression="deflate", ping_interval=None,
                                  max_size=2 << 20) as ws:
        await ws.send("who")
        serving = await asyncio.wait_for(ws.recv(), T)
        msgs = [payload(n, i % 2 == 0, i) for i, n in enumerate(SIZES)]
        got, sent = [], 0
        while len(got) < len(msgs):
            while sent < len(msgs) and sent - len(got) < 3:
                await ws.send(msgs[sent])
                sent += 1
            got.append(await asyncio.wait_for(ws.recv(), T))
            if len(got) == len(msgs) // 2:
                idx = [p.ident for p in peers].index(serving)
                peers[idx].stop(sig=signal.SIGKILL)
                peers[idx] = Peer(serving, port=peers[idx].port)
        await ws.send("who")
        now = await asyncio.wait_for(ws.recv(), T)
        return got == msgs, serving, now


def test_tls_listener():
    """The same echoes over wss: compression sits above TLS on the client leg."""
    import ssl
    d = tempfile.mkdtemp(prefix="wsbal-compression-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)],
               sections={"listen": dict(ON, tls_cert=cert, tls_key=key)})
    ctx = ssl.create_default_context(cafile=cert)

    async def go():
        async with websockets.connect(f"wss://127.0.0.1:{lb.port}/", ssl=ctx, max_size=2 << 20,
                                      compression="deflate", ping_interval=None) as ws:
            c.eq("tls: negotiated", BOTH_NO, ws.response_headers.get("Sec-WebSocket-Extensions"))
            ok = 0
            for i, n in enumerate(SIZES):
                m = payload(n, i % 2 == 0, i)
                await ws.send(m)
                ok += await asyncio.wait_for(ws.recv(), T) == m
            c.eq("tls: every size echoed", len(SIZES), ok)
    try:
        run(go())
    finally:
        lb.stop()
        echo.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_failover():
    peers = [Peer("p1"), Peer("p2")]
    lb = Wsbal([(p.ident, p.url) for p in peers], sections={"listen": dict(ON)})
    try:
        same, before, after = run(failover_stream(lb, peers))
        c.true("failover: every compressed message echoed once, in order", same, "")
        c.true("failover: the session moved", before != after, f"{before} -> {after}")
    finally:
        lb.stop()
        for p in peers:
            p.stop()


class Piped(Process):
    """A process whose stdin the test writes to, its output collected as Process does."""

    def __init__(self, argv):
        ALL_PROCESSES.append(self)
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def say(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def kill_and_restart(peers, ident):
    idx = [p.ident for p in peers].index(ident)
    peers[idx].stop(sig=signal.SIGKILL)
    peers[idx] = Peer(ident, port=peers[idx].port)


def check_client(name, res):
    """What a client of its own (node, a page) reported: the extension, the echoes of all 22
    messages, the move to the other backend half-way, and a normal close."""
    c.eq(f"{name}: negotiated", BOTH_NO, res.get("extensions"))
    c.eq(f"{name}: every message echoed", (22, 22), (res.get("ok"), res.get("total")))
    c.true(f"{name}: moved to the other backend", res.get("before") != res.get("after"), repr(res))
    c.eq(f"{name}: closed normally", 1000, res.get("close"))


DEBIAN_NODE_WS = "/usr/share/nodejs/ws"


def test_node_ws():
    """node's ws package (perMessageDeflate), installed from the npm registry into the build."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        print("SKIP node ws: npm (or node) is not installed; tools/check installs it", flush=True)
        return
    build = os.path.dirname(os.path.abspath(os.environ.get("WSBAL", "build/wsbal")))
    prefix = os.path.join(build, "node")
    ws_dir = os.path.join(prefix, "node_modules", "ws")
    if not os.path.exists(os.path.join(ws_dir, "package.json")):
        r = subprocess.run([npm, "install", "--prefix", prefix, "--no-audit", "--no-fund",
                            "--fetch-retries=1", "--fetch-timeout=20000", "ws@8"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
        if r.returncode != 0:
            # No registry (an offline CI machine): Debian's node-ws is the same package.
            print(r.stdout.decode(errors="replace")[-1000:], flush=True)
            ws_dir = DEBIAN_NODE_WS
            if not c.true("npm install ws, or Debian's node-ws",
                          os.path.exists(os.path.join(ws_dir, "package.json"))):
                return
            print("node ws: the npm registry failed; using Debian's node-ws", flush=True)
    peers = [Peer("p1"), Peer("p2")]
    lb = Wsbal([(p.ident, p.url) for p in peers], sections={"listen": dict(ON)})
    here = os.path.dirname(os.path.abspath(__file__))
    node = Piped(["node", os.path.join(here, "compression_client.js"), ws_dir, lb.url])
    try:
        m = node.wait_line(r"^KILL (\S+)", timeout=30)
        if c.true("node ws: half-way", m is not None, node.output()[-2000:]):
            kill_and_restart(peers, m.group(1))
            node.say("ok")
        m = node.wait_line(r"^RESULT (.*)", timeout=30)
        check_client("node ws", json.loads(m.group(1)) if m else {})
    finally:
        node.stop(sig=signal.SIGKILL)
        lb.stop()
        for p in peers:
            p.stop()


PAGE = """<!doctype html><meta charset="utf-8"><title>wsbal compression</title><script>
const SIZES = [0, 1, 15, 16, 100, 1000, 4096, 65535, 65536, 200000, 1 << 20];
function payload(n, text, seed) {
  const unit = `{"seq":${seed},"user":"u${seed % 97}","vals":[${seed % 13},${seed % 7}]},`;
  const s = unit.repeat(Math.floor(n / unit.length) + 1).slice(0, n);
  if (text) return s;
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (s.charCodeAt(i) + Math.floor(i / 1000)) % 256;
  return b;
}
function same(a, b) {
  if (typeof a === "string") return a === b;
  if (!(b instanceof ArrayBuffer) || b.byteLength !== a.length) return false;
  const v = new Uint8Array(b);
  for (let i = 0; i < a.length; i++) if (v[i] !== a[i]) return false;
  return true;
}
const ws = new WebSocket("WSURL");
ws.binaryType = "arraybuffer";
const queue = [], waiters = [];
ws.onmessage = (e) => waiters.length ? waiters.shift()(e.data) : queue.push(e.data);
const recv = () => new Promise((r) => queue.length ? r(queue.shift()) : waiters.push(r));
const report = (r) => fetch("/result", {method: "POST", body: JSON.stringify(r)});
ws.onerror = () => report({error: "websocket error"});
ws.onopen = async () => {
  const r = {extensions: ws.extensions, ok: 0, total: 0};
  ws.send("who");
  r.before = await recv();
  const msgs = [];
  SIZES.forEach((n, i) => { msgs.push(payload(n, true, i)); msgs.push(payload(n, false, i)); });
  for (let i = 0; i < msgs.length; i++) {
    if (i === msgs.length / 2) await fetch("/kill?who=" + encodeURIComponent(r.before));
    ws.send(msgs[i]);
    r.ok += same(msgs[i], await recv()) ? 1 : 0;
    r.total++;
  }
  ws.send("who");
  r.after = await recv();
  ws.onclose = (e) => { r.close = e.code; report(r); };
  ws.close(1000);
};
</script>"""


def test_chromium():
    """Headless Chromium's own WebSocket (it always offers permessage-deflate)."""
    chromium = "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        c.true("chromium installed", False, "Debian's chromium package (tools/check installs it)")
        return
    peers = [Peer("p1"), Peer("p2")]
    lb = Wsbal([(p.ident, p.url) for p in peers], sections={"listen": dict(ON)})
    done = threading.Event()
    result = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, body, ctype="text/plain"):
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.startswith("/kill?who="):
                kill_and_restart(peers, self.path.split("=", 1)[1])
                self._answer(b"ok")
            else:
                self._answer(PAGE.replace("WSURL", lb.url).encode(), "text/html")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            result.update(json.loads(body or b"{}"))
            self._answer(b"ok")
            done.set()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="wsbal-chromium-")
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", f"--user-data-dir={profile}", f"http://127.0.0.1:{server.server_address[1]}/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c.true("chromium: the page reported", done.wait(60), "no result within 60 s")
        check_client("chromium", result)
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
        lb.stop()
        for p in peers:
            p.stop()


if __name__ == "__main__":
    sys.exit(run_tests(c, test_negotiation, test_raw_frames, test_websockets_client,
                       test_tls_listener, test_failover, test_node_ws, test_chromium))

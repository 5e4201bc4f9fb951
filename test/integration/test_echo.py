# wsbal-echo against a real client (python3-websockets) and hand-built frames on raw sockets.
#
# Run with Debian's python3 and WSBAL_ECHO=<path of wsbal-echo>. Every await has a timeout, so the
# test fails instead of hanging; it ends with "N passed, M failed" and exits 0 only when all pass.
import asyncio
import base64
import hashlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

import websockets

ECHO = os.environ.get("WSBAL_ECHO", "build/wsbal-echo")
T = 10  # seconds allowed for any single await
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

passed = 0
failed = 0


def check(name, expected, got):
    """Counts one check; a failure says what was expected and what came."""
    global passed, failed
    if expected == got:
        passed += 1
        return True
    failed += 1
    exp, came = repr(expected), repr(got)
    if len(exp) > 200:
        exp = exp[:200] + "..."
    if len(came) > 200:
        came = came[:200] + "..."
    print(f"FAIL {name}: expected {exp}, got {came}", flush=True)
    return False


def check_true(name, condition, detail):
    return check(name, True, bool(condition)) or print(f"     ({detail})", flush=True)


class Server:
    """One wsbal-echo process on an ephemeral port."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([ECHO, "--port", "0", *args], stdout=subprocess.PIPE)
        line = self._read_line(T)
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"wsbal-echo did not start: first line {line!r}")
        self.host, port = line[len("listening on "):].rsplit(":", 1)
        self.port = int(port)
        self.url = f"ws://127.0.0.1:{self.port}"

    def _read_line(self, timeout):
        """Reads the first stdout line without blocking past the timeout."""
        fd = self.proc.stdout.fileno()
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return data.decode(errors="replace")
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").strip()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def sanitized(self):
        with open(f"/proc/{self.proc.pid}/maps") as f:
            return "asan" in f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(T)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "did not exit"


# ---------------------------------------------------------------------------------------------
# Raw-socket helpers: hand-built frames, so the test controls every bit.


def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_payload(data):
    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    return code, data[2:]


async def read_frame(reader):
    """One server frame as (fin, opcode, payload); servers never mask."""
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), T)
    if b1 & 0x80:
        raise AssertionError("server frame is masked")
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), T))[0]
    elif n == 127:
        n = struct.unpack("!Q", await asyncio.wait_for(reader.readexactly(8), T))[0]
    payload = await asyncio.wait_for(reader.readexactly(n), T) if n else b""
    return bool(b0 & 0x80), b0 & 0x0F, payload


async def read_message(reader):
    """Reassembles one data message, returning (opcode, payload, control frames seen before its end)."""
    controls, parts, opcode = [], [], None
    while True:
        fin, op, payload = await read_frame(reader)
        if op >= 0x8:
            controls.append((op, payload))
            if op == OP_CLOSE:
                return None, b"".join(parts), controls
            continue
        if opcode is None:
            opcode = op
        parts.append(payload)
        if fin:
            return opcode, b"".join(parts), controls


async def read_eof(reader):
    data = await asyncio.wait_for(reader.read(1), T)
    return data == b""


def upgrade_request(port, key=None, extra="", upgrade=True):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET /echo HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if upgrade:
        lines.insert(2, "Upgrade: websocket")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode(), key


async def raw_http(port, request):
    """Sends request bytes and returns (status, headers dict with lower-case names, body, reader, writer)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return status, headers, reader, writer


async def raw_connect(port):
    request, key = upgrade_request(port)
    status, headers, reader, writer = await raw_http(port, request)
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    if status != 101 or headers.get("sec-websocket-accept") != accept:
        raise AssertionError(f"raw upgrade failed: {status} {headers}")
    return reader, writer


async def close_writer(writer):
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), T)
    except (OSError, asyncio.TimeoutError):
        pass


# ---------------------------------------------------------------------------------------------
# Tests with the websockets client.

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]


def text_of(n):
    """Exactly n bytes of UTF-8 with 2-, 3- and 4-byte characters, so they straddle every read."""
    unit = "aé€😀"  # 1 + 2 + 3 + 4 bytes
    s = unit * (n // 10)
    s += "a" * (n - len(s.encode()))
    return s


async def test_echo_sizes(srv):
    async with websockets.connect(srv.url, max_size=None, open_timeout=T, close_timeout=T) as ws:
        for n in SIZES:
            data = os.urandom(n)
            await asyncio.wait_for(ws.send(data), T)
            got = await asyncio.wait_for(ws.recv(), T)
            check(f"binary echo of {n} bytes", (bytes, n, True), (type(got), len(got), got == data))
            text = text_of(n)
            await asyncio.wait_for(ws.send(text), T)
            got = await asyncio.wait_for(ws.recv(), T)
            check(f"text echo of {n} bytes", (str, n, True),
                  (type(got), len(got.encode()) if isinstance(got, str) else len(got), got == text))


async def test_fragmented(srv):
    async with websockets.connect(srv.url, open_timeout=T, close_timeout=T) as ws:
        parts = ["frag-one ", "é€😀 ", "", "three"]
        await asyncio.wait_for(ws.send(parts), T)
        check("fragmented text echoed whole", "".join(parts), await asyncio.wait_for(ws.recv(), T))
        bparts = [os.urandom(1000), os.urandom(70000), os.urandom(3)]
        await asyncio.wait_for(ws.send(bparts), T)
        check("fragmented binary echoed whole", b"".join(bparts), await asyncio.wait_for(ws.recv(), T))


async def test_ping(srv):
    async with websockets.connect(srv.url, open_timeout=T, close_timeout=T) as ws:
        waiter = await asyncio.wait_for(ws.ping(b"are you there"), T)
        await asyncio.wait_for(waiter, T)
        check("ping answered by a pong with the same payload", True, waiter.done())


async def test_close_codes(srv):
    for code, reason in [(1000, ""), (4000, "custom reason é")]:
        ws = await websockets.connect(srv.url, open_timeout=T, close_timeout=T)
        await asyncio.wait_for(ws.close(code, reason), T)
        check(f"close {code} echoed", (code, reason), (ws.close_code, ws.close_reason))


async def test_subprotocol_and_id(srv, expected_id):
    async with websockets.connect(srv.url, subprotocols=["wsbal.test", "other"],
                                  open_timeout=T, close_timeout=T) as ws:
        check("first offered subprotocol chosen", "wsbal.test", ws.subprotocol)
        check("X-Backend-Id header", expected_id, ws.response_headers.get("X-Backend-Id"))
    async with websockets.connect(srv.url, open_timeout=T, close_timeout=T) as ws:
        check("no subprotocol when none offered", None, ws.subprotocol)


async def test_invalid_utf8(srv):
    ws = await websockets.connect(srv.url, open_timeout=T, close_timeout=T)
    # websockets never sends invalid text on its own, so the frame goes out through its frame writer.
    await asyncio.wait_for(ws.write_frame(True, OP_TEXT, b"valid then \xff\xfe"), T)
    await asyncio.wait_for(ws.wait_closed(), T)
    check("invalid UTF-8 text closes with 1007", 1007, ws.close_code)


async def test_many_clients(srv, clients=200, messages=50):
    async def one(i):
        async with websockets.connect(srv.url, open_timeout=T, close_timeout=T) as ws:
            bad = 0
            for j in range(messages):
                msg = f"client {i} message {j} " + "x" * (j * 7)
                await asyncio.wait_for(ws.send(msg), T)
                if await asyncio.wait_for(ws.recv(), T) != msg:
                    bad += 1
            return bad

    results = await asyncio.gather(*(one(i) for i in range(clients)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    wrong = sum(r for r in results if isinstance(r, int))
    check(f"{clients} concurrent clients x {messages} echoes", (0, 0), (len(errors), wrong))
    if errors:
        print(f"     first error: {errors[0]!r}", flush=True)


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=T) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


async def metric(port):
    status, _, body = await asyncio.to_thread(http_get, port, "/metric")
    return status, json.loads(body).get("agentsConnections")


async def wait_metric(port, expected):
    """Sessions end a moment after the client's close returns, so a falling count is polled for."""
    got = None
    for _ in range(100):
        got = await metric(port)
        if got == (200, expected):
            break
        await asyncio.sleep(0.05)
    return got


async def test_http(srv):
    status, ctype, body = await asyncio.to_thread(http_get, srv.port, "/healthCheck")
    check("GET /healthCheck", (200, "application/json", {"status": "200"}),
          (status, ctype, json.loads(body)))
    status, ctype, body = await asyncio.to_thread(http_get, srv.port, "/nothing-here")
    check("other plain GET is 404", (404, "application/json"), (status, ctype))
    check("/metric with no session", (200, 0), await wait_metric(srv.port, 0))
    sessions = [await websockets.connect(srv.url, open_timeout=T, close_timeout=T) for _ in range(3)]
    status, ctype, body = await asyncio.to_thread(http_get, srv.port, "/metric")
    check("GET /metric counts live sessions", (200, "application/json", {"agentsConnections": 3}),
          (status, ctype, json.loads(body)))
    for ws in sessions:
        await asyncio.wait_for(ws.close(), T)
    check("/metric after the sessions closed", (200, 0), await wait_metric(srv.port, 0))


# ---------------------------------------------------------------------------------------------
# Raw-socket tests.


async def test_raw_protocol_errors(srv):
    cases = [
        ("unmasked client frame", build_frame(OP_TEXT, b"hello", mask=False), 1002),
        ("frame with RSV1", build_frame(OP_TEXT, b"hello", rsv=4), 1002),
        ("unknown opcode", build_frame(0x3, b"x"), 1002),
        ("continuation without a message", build_frame(OP_CONT, b"x"), 1002),
        ("fragmented ping", build_frame(OP_PING, b"x", fin=False), 1002),
        ("close with a 1-byte payload", build_frame(OP_CLOSE, b"\x03"), 1002),
        ("close with code 1005 on the wire", build_frame(OP_CLOSE, b"\x03\xed"), 1002),
        ("invalid UTF-8 split over fragments",
         build_frame(OP_TEXT, b"ok \xe2\x82", fin=False) + build_frame(OP_CONT, b"\x28"), 1007),
        ("text ending inside a character", build_frame(OP_TEXT, b"cut \xf0\x9f\x98"), 1007),
    ]
    for name, data, code in cases:
        reader, writer = await raw_connect(srv.port)
        writer.write(data)
        _, _, controls = await read_message(reader)
        close = [close_payload(p)[0] for op, p in controls if op == OP_CLOSE]
        check(f"{name} -> close {code}", [code], close)
        check(f"{name} -> TCP closed after the close frame", True, await read_eof(reader))
        await close_writer(writer)


async def test_raw_close_without_code(srv):
    reader, writer = await raw_connect(srv.port)
    writer.write(build_frame(OP_CLOSE, b""))
    fin, op, payload = await read_frame(reader)
    check("empty close answered with 1000", (OP_CLOSE, 1000), (op, close_payload(payload)[0]))
    check("TCP closed after the close reply", True, await read_eof(reader))
    await close_writer(writer)


async def test_raw_ping_between_fragments(srv):
    reader, writer = await raw_connect(srv.port)
    writer.write(build_frame(OP_TEXT, b"first half, ", fin=False) + build_frame(OP_PING, b"ping!") +
                 build_frame(OP_CONT, b"second half"))
    opcode, payload, controls = await read_message(reader)
    check("ping between fragments: pong before the message ends", [(OP_PONG, b"ping!")], controls)
    check("ping between fragments: whole text message", (OP_TEXT, b"first half, second half"),
          (opcode, payload))
    writer.write(build_frame(OP_CLOSE, struct.pack("!H", 1000)))
    await read_message(reader)
    await close_writer(writer)


async def test_raw_split_at_every_byte(srv):
    """Frames written in pieces of 1, 2, 3, 5, ... bytes: partial headers, masks and payloads across reads."""
    for step in (1, 2, 3, 5, 7, 11, 13):
        reader, writer = await raw_connect(srv.port)
        big = os.urandom(300)
        stream = (build_frame(OP_BINARY, big) + build_frame(OP_PING, b"p" * 125) +
                  build_frame(OP_TEXT, "é€😀".encode(), fin=False) + build_frame(OP_PONG, b"ignored") +
                  build_frame(OP_CONT, b"", fin=False) + build_frame(OP_CONT, "end😀".encode()) +
                  build_frame(OP_TEXT, b"") + build_frame(OP_PING, b""))
        for i in range(0, len(stream), step):
            writer.write(stream[i:i + step])
            await asyncio.wait_for(writer.drain(), T)
            await asyncio.sleep(0.0005)
        got = [await read_message(reader) for _ in range(3)]
        check(f"split by {step}: binary 300", (OP_BINARY, big, []), got[0])
        check(f"split by {step}: ping answered, then the fragmented text",
              (OP_TEXT, "é€😀end😀".encode(), [(OP_PONG, b"p" * 125)]), got[1])
        check(f"split by {step}: empty text", (OP_TEXT, b"", []), got[2])
        check(f"split by {step}: empty ping answered", (True, OP_PONG, b""), await read_frame(reader))
        await close_writer(writer)


async def test_raw_split_head_then_frame(srv):
    """A head arriving in pieces, with a frame sent right behind it in the same write."""
    request, key = upgrade_request(srv.port)
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", srv.port), T)
    for piece in (request[:7], request[7:40]):
        writer.write(piece)
        await asyncio.wait_for(writer.drain(), T)
        await asyncio.sleep(0.05)
    writer.write(request[40:] + build_frame(OP_TEXT, b"right behind the head"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
    check("head in pieces -> 101", b"HTTP/1.1 101", head[:12])
    check("frame sent with the head echoed", (OP_TEXT, b"right behind the head", []),
          await read_message(reader))
    await close_writer(writer)


async def test_raw_handshake_errors(srv):
    request, _ = upgrade_request(srv.port, upgrade=False)
    status, headers, _, writer = await raw_http(srv.port, request)
    check("request without Upgrade -> 426 with Sec-WebSocket-Version: 13", (426, "13"),
          (status, headers.get("sec-websocket-version")))
    await close_writer(writer)
    request, _ = upgrade_request(srv.port, key="not-a-valid-key")
    status, _, _, writer = await raw_http(srv.port, request)
    check("bad Sec-WebSocket-Key -> 400", 400, status)
    await close_writer(writer)
    request, _ = upgrade_request(srv.port, extra="X-Filler: " + "f" * 17000 + "\r\n")
    status, _, _, writer = await raw_http(srv.port, request)
    check("request head over 16 KiB -> 431", 431, status)
    await close_writer(writer)


async def test_raw_backpressure(srv):
    """A client that never reads stalls after a bounded amount and then gets every byte back."""
    reader, writer = await raw_connect(srv.port)
    rss_before = srv.rss_kib()
    chunk = build_frame(OP_BINARY, b"z" * 65536)
    sent = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and sent < 512 * len(chunk):
        writer.write(chunk)
        try:
            await asyncio.wait_for(writer.drain(), 0.5)
        except asyncio.TimeoutError:
            break
        sent += 1
    growth = srv.rss_kib() - rss_before
    print(f"     (backpressure: {sent} frames of 64 KiB accepted before the stall, RSS +{growth} KiB)")
    check_true("backpressure: the writer stalls before 32 MiB", sent < 512,
               f"{sent} frames of 64 KiB were accepted")
    if srv.sanitized():
        print("     (RSS bound not checked under ASan: its quarantine holds freed memory)")
    else:
        check_true("backpressure: server RSS grew by less than 8 MiB", growth < 8192,
                   f"grew {growth} KiB")
    total = 0
    while total < sent * 65536:
        opcode, payload, _ = await read_message(reader)
        total += len(payload)
    await asyncio.wait_for(writer.drain(), T)
    check("backpressure: every byte echoed once the client reads", sent * 65536, total)
    await close_writer(writer)


async def test_handshake_timeout(srv):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", srv.port), T)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    eof = await asyncio.wait_for(reader.read(), 15) == b""
    waited = time.monotonic() - start
    check_true("slow request closed after the 10 s handshake timeout", eof and 9 < waited < 12,
               f"eof={eof} after {waited:.1f} s")
    await close_writer(writer)


async def test_max_message():
    srv = Server("--max-message", "1k")
    try:
        async with websockets.connect(srv.url, open_timeout=T, close_timeout=T) as ws:
            check("default id is echo-PORT", f"echo-{srv.port}", ws.response_headers.get("X-Backend-Id"))
            await asyncio.wait_for(ws.send(b"k" * 1024), T)
            check("message of exactly --max-message echoed", 1024, len(await asyncio.wait_for(ws.recv(), T)))
            await asyncio.wait_for(ws.send(["a" * 1000, "b" * 25]), T)
            await asyncio.wait_for(ws.wait_closed(), T)
            check("fragmented message over --max-message closes with 1009", 1009, ws.close_code)
    finally:
        check("second server exits 0 on SIGINT", 0, srv.stop(signal.SIGINT))


def test_usage():
    for args, code in [(["--help"], 0), ([], 2), (["--port", "x"], 2), (["--port", "70000"], 2),
                       (["--port", "0", "--bogus"], 2), (["--port", "0", "--id", "a b"], 2),
                       (["--port", "0", "--max-message", "lots"], 2)]:
        try:
            r = subprocess.run([ECHO, *args], capture_output=True, timeout=T)
            check(f"wsbal-echo {' '.join(args)} exit status", code, r.returncode)
        except subprocess.TimeoutExpired:
            check(f"wsbal-echo {' '.join(args)} exit status", code, "timeout")


async def run(name, coro):
    try:
        await asyncio.wait_for(coro, 120)
    except Exception as e:  # a crashed test is one failure with its cause, and the rest still run
        global failed
        failed += 1
        print(f"FAIL {name}: raised {e!r}", flush=True)
        traceback.print_exc()


async def main():
    test_usage()
    srv = Server("--id", "echo-test-1")
    check("listening line names the host", "127.0.0.1", srv.host)
    timeout_task = asyncio.create_task(run("handshake timeout", test_handshake_timeout(srv)))
    try:
        await run("echo sizes", test_echo_sizes(srv))
        await run("fragmented", test_fragmented(srv))
        await run("ping", test_ping(srv))
        await run("close codes", test_close_codes(srv))
        await run("subprotocol and id", test_subprotocol_and_id(srv, "echo-test-1"))
        await run("invalid utf-8", test_invalid_utf8(srv))
        await run("many clients", test_many_clients(srv))
        await run("http", test_http(srv))
        await run("raw protocol errors", test_raw_protocol_errors(srv))
        await run("raw close", test_raw_close_without_code(srv))
        await run("raw ping between fragments", test_raw_ping_between_fragments(srv))
        await run("raw split", test_raw_split_at_every_byte(srv))
        await run("raw split head", test_raw_split_head_then_frame(srv))
        await run("raw handshake errors", test_raw_handshake_errors(srv))
        await run("raw backpressure", test_raw_backpressure(srv))
        await run("max message", test_max_message())
        await timeout_task
        # SIGTERM with every kind of connection open: sessions, a half-sent head, a client that
        # does not read (reading paused, output queued); every handle must close and memory go.
        open_sessions = [await websockets.connect(srv.url, open_timeout=T) for _ in range(5)]
        await asyncio.wait_for(open_sessions[0].send("pending"), T)
        _, half = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", srv.port), T)
        half.write(upgrade_request(srv.port)[0][:30])
        _, stuck = await raw_connect(srv.port)
        for _ in range(64):
            stuck.write(build_frame(OP_BINARY, b"s" * 65536))
        await asyncio.sleep(0.5)
        check("SIGTERM with open connections -> exit 0", 0, srv.stop())
        for ws in open_sessions:
            await asyncio.wait_for(ws.wait_closed(), T)
        for writer in (half, stuck):
            writer.transport.abort()
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:
        failed += 1
        print(f"FAIL setup: {e!r}", flush=True)
        traceback.print_exc()
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(0 if failed == 0 else 1)

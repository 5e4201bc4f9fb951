"""wsbal end to end: every handshake answer, the relay rules, headers, backpressure, balancing.

Real processes on 127.0.0.1: wsbal with two workers, wsbal-echo backends, a python3-websockets
backend, and clients from python3-websockets or hand-built frames.
"""
import asyncio
import json
import os
import socket
import struct
import sys
import time

import websockets
import websockets.server

from wsbtest import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, T, Checks, Echo,
                     Peer, RawClient, Wsbal, close_payload, frame, free_port, run, socket_fds,
                     tcp_table)

c = Checks()


# ---- backends written here, for what wsbal-echo does not do ----

async def header_backend(ready, stop, port_box):
    """A python3-websockets server that answers each session with the request it received."""
    async def handler(ws, path=None):
        headers = {k.lower(): v for k, v in ws.request_headers.raw_items()}
        await ws.send(json.dumps({"path": ws.path, "headers": headers,
                                  "extensions": ws.request_headers.get_all("Sec-WebSocket-Extensions")}))
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("close:"):
                await ws.close(int(msg[6:]), "backend says bye")
                break
            await ws.send(msg)

    async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=["superchat"],
                                compression=None) as server:
        port_box.append(server.sockets[0].getsockname()[1])
        ready.set()
        await stop.wait()


class ThreadedBackend:
    """Runs one asyncio backend in a thread of its own so blocking tests can use it."""

    def __init__(self, factory):
        import threading
        self.port_box = []
        self.loop = asyncio.new_event_loop()
        self.ready = asyncio.Event()
        self.stop_event = None
        started = threading.Event()

        def main():
            asyncio.set_event_loop(self.loop)
            self.stop_event = asyncio.Event()
            self.ready = asyncio.Event()
            task = self.loop.create_task(factory(self.ready, self.stop_event, self.port_box))
            started.set()
            self.loop.run_until_complete(task)

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        started.wait(T)
        deadline = time.monotonic() + T
        while not self.port_box and time.monotonic() < deadline:
            time.sleep(0.01)
        self.port = self.port_box[0]
        self.url = f"ws://127.0.0.1:{self.port}"

    def close(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(T)


async def fixed_answer_backend(answer):
    """A TCP server that answers any request head with the given bytes and closes."""
    async def handle(reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
            writer.write(answer)
            await writer.drain()
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def closed_port():
    """A port nothing listens on: connecting is refused."""
    return free_port()


# ---- the tests ----

async def test_echo_sizes(lb):
    async with websockets.connect(lb.url + "/sizes", max_size=None, compression=None) as ws:
        for size in (0, 1, 125, 126, 65535, 65536, 100000, 1 << 20):
            data = os.urandom(size)
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), T)
            c.eq(f"binary echo of {size} bytes", data, got)
            text = "é" * (size // 2)
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), T)
            c.eq(f"text echo of {len(text)} characters", text, got)
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, T)
        c.true("ping through wsbal answered", True)
        await ws.send((b"part1-", b"part2-", b"part3"))  # one fragmented message
        c.eq("fragmented message echoed whole", b"part1-part2-part3",
             await asyncio.wait_for(ws.recv(), T))
        await ws.close(4000, "bye now")
        c.eq("close code relayed back", 4000, ws.close_code)
        c.eq("close reason relayed back", "bye now", ws.close_reason)


async def test_browser_style(lb):
    # Firefox sends "Connection: keep-alive, Upgrade".
    async with websockets.connect(lb.url + "/b?x=1", compression=None,
                                  extra_headers={"Connection": "keep-alive, Upgrade"}) as ws:
        await ws.send("from a browser")
        c.eq("browser-style Connection header", "from a browser", await asyncio.wait_for(ws.recv(), T))


def test_handshake_answers(lb):
    def answer(path="/", headers=None, raw=None):
        cl = RawClient(lb.port)
        try:
            if raw is not None:
                cl.send(raw)
            else:
                cl.request(path, headers)
            status, hdrs, _ = cl.read_head()
            body = cl.read_rest()
            return status, hdrs, body
        finally:
            cl.close()

    status, hdrs, body = answer(raw=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    c.eq("plain HTTP request gets 426", 426, status)
    c.eq("426 names version 13", "13", hdrs.get("sec-websocket-version"))
    c.true("error answers have a text body", len(body) > 0 and b"426" in body, repr(body))
    c.eq("error answers close the connection", "close", hdrs.get("connection", "").lower())
    c.eq("version 8 gets 426", 426, answer(headers={"Sec-WebSocket-Version": "8"})[0])
    c.eq("a bad key gets 400", 400, answer(headers={"Sec-WebSocket-Key": "short"})[0])
    c.eq("no key gets 400", 400, answer(headers={"Sec-WebSocket-Key": None})[0])
    c.eq("no Host gets 400", 400, answer(headers={"Host": None})[0])
    c.eq("Connection without upgrade gets 400", 400, answer(headers={"Connection": "keep-alive"})[0])
    c.eq("POST upgrade gets 400", 400, answer(raw=(
        b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Content-Length: 0\r\n\r\n"))[0])
    c.eq("HTTP/1.0 upgrade gets 400", 400, answer(raw=(
        b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))[0])
    c.eq("garbage gets 400", 400, answer(raw=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")[0])
    c.eq("a head over max_header_bytes gets 431", 431,
         answer(headers={"X-Big": "a" * 20000})[0])


def test_limits_and_policies(echo1):
    lb = Wsbal([("e1", echo1.url)], sections={
        "listen": {"path": "/ws", "allowed_origins": "https://good.example",
                   "handshake_timeout": "1s", "max_message_bytes": "1k"},
        "wsbal": {"max_sessions": "2"}})
    try:
        def status_of(path, headers=None):
            cl = RawClient(lb.port)
            cl.request(path, headers)
            st = cl.read_head()[0]
            cl.close()
            return st

        c.eq("path outside [listen] path gets 404", 404, status_of("/other"))
        c.eq("a path sharing only a prefix gets 404", 404, status_of("/wsx"))
        c.eq("path under [listen] path upgrades", 101, status_of("/ws/room?id=1"))
        c.eq("a foreign Origin gets 403", 403, status_of("/ws", {"Origin": "https://evil.example"}))
        c.eq("an allowed Origin upgrades", 101, status_of("/ws", {"Origin": "https://good.example"}))

        # A request that never ends is closed after handshake_timeout, with no answer.
        cl = RawClient(lb.port)
        cl.send(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = cl.closed_by_peer(timeout=5)
        took = time.monotonic() - t0
        c.true("slow request closed after handshake_timeout", closed and 0.5 < took < 4.5,
               f"closed={closed} after {took:.2f}s")
        cl.close()

        # Messages over max_message_bytes end the session with 1009.
        cl = RawClient(lb.port)
        cl.request("/ws")
        c.eq("upgrade for the size test", 101, cl.read_head()[0])
        cl.send(frame(OP_BINARY, b"x" * 2000))
        fin, op, payload = cl.read_frame()
        c.eq("oversized message closes with 1009", (OP_CLOSE, 1009),
             (op, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None))
        cl.close()

        # The global max_sessions: two held sessions, the third gets 503 with Retry-After.
        held = []
        for _ in range(2):
            h = RawClient(lb.port)
            h.request("/ws")
            c.eq("held session upgrades", 101, h.read_head()[0])
            held.append(h)
        cl = RawClient(lb.port)
        cl.request("/ws")
        st, hdrs, _ = cl.read_head()
        c.eq("past max_sessions gets 503", 503, st)
        c.true("503 carries Retry-After", "retry-after" in hdrs, str(hdrs))
        cl.close()
        for h in held:
            h.close()
    finally:
        lb.stop()


def test_backend_failures(echo1):
    async def servers():
        return (await fixed_answer_backend(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n"
                                           b"X-Why: nope\r\n\r\ndenied"),
                await fixed_answer_backend(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"))

    loop = asyncio.new_event_loop()
    import threading
    (s403, p403), (s500, p500) = loop.run_until_complete(servers())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        def answer(lb):
            cl = RawClient(lb.port)
            cl.request("/")
            st, hdrs, _ = cl.read_head()
            body = cl.read_rest()
            cl.close()
            return st, hdrs, body

        lb = Wsbal([("only403", f"ws://127.0.0.1:{p403}")])
        st, hdrs, body = answer(lb)
        c.eq("a backend's 403 reaches the client", 403, st)
        c.eq("with its headers", "nope", hdrs.get("x-why"))
        c.eq("and its body", b"denied", body)
        lb.stop()

        lb = Wsbal([("refused", f"ws://127.0.0.1:{closed_port()}"),
                    ("err500", f"ws://127.0.0.1:{p500}")])
        c.eq("refused and 5xx backends give 502", 502, answer(lb)[0])
        lb.stop()

        # A dead backend is skipped: the session reaches the live one.
        lb = Wsbal([("dead", f"ws://127.0.0.1:{closed_port()}"), ("e1", echo1.url)],
                   sections={"upstream": {"pass_headers": "X-Backend-Id"}})
        for i in range(4):
            st, hdrs = None, {}
            cl = RawClient(lb.port)
            cl.request("/")
            st, hdrs, _ = cl.read_head()
            cl.close()
            c.eq(f"dead backend skipped ({i})", (101, "e1"), (st, hdrs.get("x-backend-id")))
        lb.stop()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(T)


def test_headers_and_subprotocols(lb_factory):
    hb = ThreadedBackend(header_backend)
    lb = lb_factory([("hb", hb.url + "/prefix")], {"upstream": {"block_headers": "X-Secret"}})
    try:
        async def go():
            async with websockets.connect(
                    lb.url + "/room/7?user=ann", subprotocols=["chat", "superchat"],
                    compression="deflate",
                    extra_headers={"X-Custom": "kept", "X-Secret": "hidden", "Keep-Alive": "300",
                                   "X-Forwarded-For": "6.6.6.6",
                                   "X-Balancer-Reconnect": "forged"}) as ws:
                info = json.loads(await asyncio.wait_for(ws.recv(), T))
                return ws.subprotocol, ws.extensions, info

        proto, extensions, info = run(go())
        h = info["headers"]
        c.eq("subprotocol chosen by the backend reaches the client", "superchat", proto)
        c.eq("no extension negotiated through wsbal", [], extensions)
        c.eq("backend path = prefix + client path and query", "/prefix/room/7?user=ann", info["path"])
        c.eq("Host is the backend's", f"127.0.0.1:{hb.port}", h.get("host"))
        c.eq("end-to-end header forwarded", "kept", h.get("x-custom"))
        c.true("blocked header not forwarded", "x-secret" not in h, str(h))
        c.true("hop-by-hop header not forwarded", "keep-alive" not in h, str(h))
        c.eq("Sec-WebSocket-Extensions not forwarded", [], info["extensions"])
        c.eq("X-Forwarded-For replaced by the client address", "127.0.0.1", h.get("x-forwarded-for"))
        c.eq("X-Forwarded-Proto", "http", h.get("x-forwarded-proto"))
        c.eq("X-Forwarded-Host is the client's Host", f"127.0.0.1:{lb.port}", h.get("x-forwarded-host"))
        c.true("a client-sent reconnect header is dropped", "x-balancer-reconnect" not in h, str(h))
        c.true("wsbal's own key, not the client's", "sec-websocket-key" in h, str(h))
    finally:
        lb.stop()

    # A close started by the backend reaches the client with its code and reason.
    lb = lb_factory([("hb", hb.url)], {})
    try:
        async def backend_closes():
            async with websockets.connect(lb.url + "/") as ws:
                await asyncio.wait_for(ws.recv(), T)
                await ws.send("close:4001")
                try:
                    await asyncio.wait_for(ws.recv(), T)
                except websockets.ConnectionClosed:
                    pass
                return ws.close_code, ws.close_reason
        c.eq("backend's close code and reason reach the client", (4001, "backend says bye"),
             run(backend_closes()))
    finally:
        lb.stop()

    lb = lb_factory([("hb", hb.url)], {"listen": {"trust_forwarded": "on"},
                                      "upstream": {"preserve_host": "on"}})
    try:
        async def go2():
            async with websockets.connect(lb.url + "/", extra_headers={
                    "X-Forwarded-For": "6.6.6.6"}) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), T))
        h = run(go2())["headers"]
        c.eq("trust_forwarded extends X-Forwarded-For", "6.6.6.6, 127.0.0.1", h.get("x-forwarded-for"))
        c.eq("preserve_host forwards the client's Host", f"127.0.0.1:{lb.port}", h.get("host"))
    finally:
        lb.stop()
        hb.close()


def test_bad_frames(lb):
    def session():
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("raw upgrade", 101, cl.read_head()[0])
        return cl

    def close_code(cl):
        try:
            while True:
                fin, op, payload = cl.read_frame()
                if op == OP_CLOSE:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        except (EOFError, ConnectionResetError, socket.timeout):
            return None

    cases = [
        ("unmasked client frame", frame(OP_TEXT, b"hi", mask=False), 1002),
        ("reserved bit set", frame(OP_TEXT, b"hi", rsv=4), 1002),
        ("unknown opcode", frame(0x3, b"hi"), 1002),
        ("fragmented ping", frame(OP_PING, b"x", fin=False), 1002),
        ("126-byte ping", frame(OP_PING, b"x" * 126), 1002),
        ("continuation with nothing to continue", frame(OP_CONT, b"x"), 1002),
        ("new message inside a fragmented one",
         frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), 1002),
        ("one-byte close payload", frame(OP_CLOSE, b"x"), 1002),
        ("close code 1005 on the wire", frame(OP_CLOSE, close_payload(1005)), 1002),
    ]
    for name, data, code in cases:
        cl = session()
        cl.send(data)
        c.eq(f"{name} closes with {code}", code, close_code(cl))
        cl.close()

    # Fragments with a ping between them: wsbal relays all four frames in order; the echo
    # answers the ping with a pong and returns the message whole (re-framed as it likes).
    cl = session()
    cl.send(frame(OP_TEXT, b"Hel", fin=False) + frame(OP_PING, b"p1") +
            frame(OP_CONT, b"lo", fin=False) + frame(OP_CONT, b"!"))
    got, text, done = [], b"", False
    while not done and len(got) < 10:
        fin, op, payload = cl.read_frame()
        got.append((fin, op, payload))
        if op in (OP_TEXT, OP_CONT):
            text += payload
            done = fin
    c.true("pong for the interleaved ping", (True, OP_PONG, b"p1") in got, str(got))
    c.eq("fragmented message echoed whole", b"Hello!", text)
    # A clean close both ways, with a code and reason the backend echoes.
    cl.send(frame(OP_CLOSE, close_payload(1000, b"done")))
    fin, op, payload = cl.read_frame()
    c.eq("close answered", (OP_CLOSE, close_payload(1000, b"done")), (op, payload))
    c.true("TCP closed after the close handshake", cl.closed_by_peer(), "still open")
    cl.close()

    # A frame split into single bytes still goes through whole.
    cl = session()
    for b in frame(OP_BINARY, b"byte by byte"):
        cl.send(bytes([b]))
    fin, op, payload = cl.read_frame()
    c.eq("frame sent byte by byte", (OP_BINARY, b"byte by byte"), (op, payload))
    cl.close()


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


async def flood_backend(ready, stop, port_box):
    """Sends 1 MiB messages as fast as the connection takes them, up to 256 of them."""
    async def handler(ws, path=None):
        chunk = os.urandom(1 << 20)
        try:
            for _ in range(256):
                await ws.send(chunk)
            await ws.wait_closed()
        except websockets.ConnectionClosed:
            pass  # the test client leaves before the flood ends
    async with websockets.serve(handler, "127.0.0.1", 0, compression=None,
                                max_size=None, write_limit=1 << 20) as server:
        port_box.append(server.sockets[0].getsockname()[1])
        ready.set()
        await stop.wait()


class OnePacketBackend:
    """A backend that answers the upgrade and ends the connection in one TCP segment (corked:
    the FIN rides on the data), so wsbal finds the end of the stream already there when it reads
    the 101. By the request's path: /bare the 101 alone, /frame the 101 and a text frame,
    /close the 101, a text frame and a close frame 1000."""

    def __init__(self):
        import threading
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        import base64
        import hashlib
        import re
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(T)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                m = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head)
                if m is None:
                    continue
                path = head.split(b" ")[1]
                guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
                accept = base64.b64encode(hashlib.sha1(m.group(1) + guid).digest())
                out = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                if path in (b"/frame", b"/close"):
                    out += frame(OP_TEXT, b"early", mask=False)
                if path == b"/close":
                    out += frame(OP_CLOSE, close_payload(1000, b"done"), mask=False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                conn.sendall(out)
                conn.shutdown(socket.SHUT_WR)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                try:  # until wsbal closes, reading what it still sends (its close answer)
                    while conn.recv(4096):
                        pass
                except OSError:
                    pass

    def close(self):
        self.server.close()
        self.thread.join(T)


# AddressSanitizer's quarantine keeps freed buffers resident: off for the memory-bound checks,
# so VmRSS counts wsbal's own buffers in both builds (a CI run under ASan saw 17,196 KiB).
NO_QUARANTINE = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"}


def test_backpressure():
    fb = ThreadedBackend(flood_backend)
    lb = Wsbal([("flood", fb.url)], extra_env=NO_QUARANTINE)
    try:
        before = rss_kib(lb.pids())
        cl = RawClient(lb.port)
        cl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        cl.request("/")
        c.eq("flood session upgrades", 101, cl.read_head()[0])
        # The client reads nothing for two seconds while the backend pushes 256 MiB.
        time.sleep(2)
        grown = rss_kib(lb.pids()) - before
        c.true("wsbal memory bounded while the client does not read", grown < 16 * 1024,
               f"grew by {grown} KiB")
        # Reading again gets the data flowing, whole and in order.
        fin, op, payload = cl.read_frame()
        c.eq("flooded frames intact after the pause", (OP_BINARY, 1 << 20), (op, len(payload)))
        cl.close()
    finally:
        lb.stop()
        fb.close()


def echo_through_full_sockets(port, seed):
    """One session of test_full_sockets_keep_order: None, or what went wrong."""
    import random
    import threading
    cl = RawClient(port)
    cl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    cl.request("/")
    if cl.read_head()[0] != 101:
        return "no upgrade"
    rnd = random.Random(seed)
    sizes = [rnd.choice((1, 125, 126, 3000, 65535, 65536, 150000)) for _ in range(1000)]
    payloads = [rnd.randbytes(n) for n in sizes]
    progress = {"sent": 0, "error": None}

    def writer():
        try:
            for p in payloads:
                cl.sock.sendall(frame(OP_BINARY, p))
                progress["sent"] += 1
        except OSError as e:
            progress["error"] = repr(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    # Until the client's writes stall or end (the echo backend may buffer what it cannot send):
    # meanwhile wsbal's sends to the client, which reads nothing, find its socket full.
    last, still, deadline = -1, 0, time.monotonic() + 10
    while still < 5 and progress["sent"] < len(payloads) and time.monotonic() < deadline:
        time.sleep(0.05)
        still = still + 1 if progress["sent"] == last else 0
        last = progress["sent"]
    try:
        for i, p in enumerate(payloads):
            # A relay that stopped shows as a timeout here (or as the ping due 30 s later).
            fin, op, payload = cl.read_frame(timeout=5)
            first = op
            while not fin:  # the echo backend sends large messages in fragments
                fin, op, more = cl.read_frame(timeout=5)
                payload += more
            if (first, payload) != (OP_BINARY, p):
                return f"message {i}: {len(payload)} bytes, opcode {first}, expected {len(p)}"
    except socket.timeout:
        return f"the relay stopped before message {i} of {len(payloads)}"
    finally:
        cl.close()
        t.join(T)
    return progress["error"]


def test_full_sockets_keep_order(echo1):
    """Echoes much larger than the sockets' buffers, while the client reads nothing for a while:
    wsbal's sends find no room or fall short on both legs (to the client, then to the backend
    whose echoes back up), its readers pause and resume, and every byte still arrives once and
    in order. On io_uring this is where a quick send (MSG_DONTWAIT, no completion when it sends
    everything) gives way to a send that waits for room, and where a paused reader waits for a
    quick send's end (which once stalled the relay until the next ping)."""
    lb = Wsbal([("e1", echo1.url)])
    try:
        for seed in range(3):
            bad = echo_through_full_sockets(lb.port, seed)
            c.true(f"every echo whole and in order through full sockets (session {seed})",
                   bad is None, bad)
    finally:
        lb.stop()


def test_balance(echo1, echo2):
    lb = Wsbal([("e1", echo1.url), ("e2", echo2.url)],
               sections={"upstream": {"pass_headers": "X-Backend-Id"}})
    try:
        held, counts = [], {}
        for _ in range(40):
            cl = RawClient(lb.port)
            cl.request("/")
            st, hdrs, _ = cl.read_head()
            counts[hdrs.get("x-backend-id")] = counts.get(hdrs.get("x-backend-id"), 0) + 1
            held.append(cl)
        c.true("held sessions spread evenly over two backends",
               counts.get("e1", 0) in range(18, 23) and counts.get("e2", 0) in range(18, 23),
               str(counts))
        workers = [p for p in lb.pids() if p != lb.proc.pid]
        per_worker = []
        for pid in workers:
            n = 0
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                        n += 1
                except OSError:
                    pass
            per_worker.append(n)
        c.true("both workers hold sessions", len(per_worker) == 2 and min(per_worker) > 10,
               f"sockets per worker: {per_worker}")
        for cl in held:
            cl.close()
    finally:
        lb.stop()


async def deaf_backend(ready, stop, port_box):
    """Completes the upgrade by hand, then never reads again."""
    import base64
    import hashlib
    held = []

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-key:")][0]
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                  .digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        writer.transport.pause_reading()
        held.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_box.append(server.sockets[0].getsockname()[1])
    ready.set()
    await stop.wait()
    for w in held:
        w.close()
    server.close()


def test_backpressure_to_backend():
    db = ThreadedBackend(deaf_backend)
    lb = Wsbal([("deaf", db.url)], extra_env=NO_QUARANTINE)
    try:
        before = rss_kib(lb.pids())
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("deaf backend session upgrades", 101, cl.read_head()[0])
        # Send until the client's own socket refuses more: wsbal must have stopped reading.
        # A non-blocking send may take part of a frame; the rest goes first the next time.
        cl.sock.setblocking(False)
        chunk = frame(OP_BINARY, os.urandom(60000))
        sent, rest, stalls, deadline = 0, b"", 0, time.monotonic() + 20
        while sent < 256 << 20 and stalls < 10 and time.monotonic() < deadline:
            data = rest or chunk
            try:
                n = cl.sock.send(data)
                sent += n
                rest = data[n:]
                stalls = 0
            except BlockingIOError:
                stalls += 1
                time.sleep(0.1)
        grown = rss_kib(lb.pids()) - before
        c.true("client writes stall when the backend does not read", sent < 64 << 20,
               f"{sent} bytes accepted")
        c.true("wsbal memory bounded while the backend does not read", grown < 16 * 1024,
               f"grew by {grown} KiB after {sent} bytes")
        cl.close()
    finally:
        lb.stop()
        db.close()


def test_keepalive_and_idle(echo1):
    lb = Wsbal([("e1", echo1.url)], sections={"listen": {"ping_interval": "1s"}})
    try:
        # A client that answers pings stays; one that never answers is dropped as dead.
        alive = RawClient(lb.port)
        alive.request("/")
        c.eq("keepalive session upgrades", 101, alive.read_head()[0])
        dead = RawClient(lb.port)
        dead.request("/")
        c.eq("dead-peer session upgrades", 101, dead.read_head()[0])
        fin, op, payload = alive.read_frame(timeout=5)
        c.eq("wsbal pings an idle client", OP_PING, op)
        alive.send(frame(OP_PONG, payload))
        t0 = time.monotonic()
        closed = dead.closed_by_peer(timeout=6)
        c.true("a client that never answers pings is dropped", closed and time.monotonic() - t0 < 5.5,
               f"closed={closed} after {time.monotonic() - t0:.1f}s")
        fin, op, payload = alive.read_frame(timeout=5)
        c.eq("the answering client is pinged again, not dropped", OP_PING, op)
        alive.send(frame(OP_PONG, payload) + frame(OP_TEXT, b"still here"))
        while True:
            fin, op, payload = alive.read_frame(timeout=5)
            if op != OP_PING:
                break
            alive.send(frame(OP_PONG, payload))
        c.eq("the answering client's session still echoes", (OP_TEXT, b"still here"), (op, payload))
        alive.close()
        dead.close()
    finally:
        lb.stop()

    lb = Wsbal([("e1", echo1.url)], sections={"listen": {"idle_timeout": "1s", "ping_interval": "0"}})
    try:
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("idle session upgrades", 101, cl.read_head()[0])
        t0 = time.monotonic()
        fin, op, payload = cl.read_frame(timeout=5)
        took = time.monotonic() - t0
        c.eq("idle_timeout closes with 1001", (OP_CLOSE, 1001),
             (op, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None))
        c.true("after about idle_timeout", 0.8 < took < 3, f"{took:.2f}s")
        cl.close()
    finally:
        lb.stop()


def test_ping_due_inside_a_stalled_frame(echo1):
    """The backend's keepalive ping falls due while the client's frame to it is half-way through:
    wsbal cannot put a ping in between and must look again later. It used to re-arm the timer for
    the time already past, and libuv ran it over and over: the worker spun at 100% CPU and served
    nothing more (and outlived its master)."""
    lb = Wsbal([("e1", echo1.url)], workers=1,
               sections={"listen": {"ping_interval": "0"}, "upstream": {"ping_interval": "1s"}})
    try:
        stalled, _ = RawClient.upgraded(lb.port)
        # Larger than a read buffer (64 KiB), so it streams: 14 bytes of head and key, 10 of payload.
        whole = frame(OP_BINARY, b"s" * 200000)
        stalled.send(whole[:14 + 10])
        time.sleep(2)  # no event to wait on: the backend's ping falls due at 1 s, the frame still open
        other = RawClient(lb.port)
        other.request("/")
        try:
            status = other.read_head(timeout=5)[0]
        except Exception as e:  # a timeout: the worker no longer polls
            status = repr(e)
        c.eq("a new session on the same worker upgrades while one stalls inside a frame", 101, status)
        if status == 101:
            other.send(frame(OP_TEXT, b"served"))
            fin, op, payload = other.read_frame(timeout=5)
            c.eq("and echoes", (OP_TEXT, b"served"), (op, payload))
        stalled.send(whole[14 + 10:])
        fin, op, payload = stalled.read_frame(timeout=5)
        first, got = op, len(payload)
        while not fin:  # the echo may come back in fragments
            fin, op, payload = stalled.read_frame(timeout=5)
            got += len(payload)
        c.eq("the stalled frame, finished, is echoed whole", (OP_BINARY, 200000), (first, got))
        other.close()
        stalled.close()
        c.eq("wsbal stops cleanly", 0, lb.stop())
    finally:
        lb.stop()


def tcp_socket_count(pid):
    """TCP sockets the process holds (its unix sockets to the master are not counted)."""
    tcp = tcp_table()
    return sum(1 for inode in socket_fds(pid) if inode in tcp)


def test_sockets_closed_after_sessions(echo1):
    """Every socket of an ended session is closed, however it ended: on io_uring the ring
    closes a relaying leg's socket itself (libuv's handle is left without one), so a leak or a
    socket left half-open there shows up here as descriptors the worker keeps."""
    lb = Wsbal([("e1", echo1.url)], workers=1)
    try:
        worker = [p for p in lb.pids() if p != lb.proc.pid][0]
        before = tcp_socket_count(worker)
        backend_port = echo1.port
        for i in range(60):
            cl, _ = RawClient.upgraded(lb.port)
            cl.send(frame(OP_BINARY, b"x" * 100, mask=True))
            c.eq(f"session {i} echoes", (True, OP_BINARY, b"x" * 100), cl.read_frame())
            if i % 3 == 0:  # the client's close handshake
                cl.send(frame(OP_CLOSE, struct.pack("!H", 1000), mask=True))
                c.eq(f"session {i} close answered", OP_CLOSE, cl.read_frame()[1])
                c.true(f"session {i} closed by wsbal", cl.closed_by_peer())
            elif i % 3 == 1:  # the client vanishes mid-session
                cl.close()
            else:  # the client half-closes: wsbal reads the end of its stream
                cl.sock.shutdown(socket.SHUT_WR)
                c.true(f"session {i} closed after the client's FIN", cl.closed_by_peer())
            cl.close()
        deadline = time.monotonic() + T
        while time.monotonic() < deadline and tcp_socket_count(worker) > before:
            time.sleep(0.05)
        c.eq("the worker holds as many TCP sockets as before the 60 sessions (its listener)",
             before, tcp_socket_count(worker))
        open_to_backend = [st for st, _ in tcp_sockets_to(backend_port) if st in ("01", "08")]
        c.eq("no connection to the backend is left established or half-closed", [],
             open_to_backend)
    finally:
        lb.stop()


def worker_socket_option(pid, local_port, remote_port, level, option):
    """An option of the worker's TCP socket between those ports, read from a copy of its
    descriptor (pidfd_getfd, Linux 5.6; the test runs as the same user): None if none is."""
    import ctypes
    ports = {inode: (lp, rp) for inode, (_, lp, rp) in tcp_table().items()}
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for inode, fd in socket_fds(pid).items():
            if ports.get(inode) != (local_port, remote_port):
                continue
            copy = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
            if copy < 0:
                raise OSError(ctypes.get_errno(), "pidfd_getfd")
            with socket.socket(fileno=copy) as sock:
                return sock.getsockopt(level, option)
    finally:
        os.close(pidfd)
    return None


def test_no_delay_on_both_legs(echo1):
    """Both legs of a session send at once (TCP_NODELAY): the client's leg has it from the
    worker's listener, the backend's is set when it connects."""
    lb = Wsbal([("e1", echo1.url)], workers=1)
    try:
        worker = [p for p in lb.pids() if p != lb.proc.pid][0]
        cl, _ = RawClient.upgraded(lb.port)
        cl.send(frame(OP_BINARY, b"n", mask=True))
        c.eq("session echoes", (True, OP_BINARY, b"n"), cl.read_frame())
        client_port = cl.sock.getsockname()[1]
        c.eq("TCP_NODELAY on the client's leg", 1,
             worker_socket_option(worker, lb.port, client_port, socket.IPPROTO_TCP,
                                  socket.TCP_NODELAY))
        to_backend = [lp for st, lp in tcp_sockets_to(echo1.port) if st == "01"]
        c.eq("one connection to the backend", 1, len(to_backend))
        c.eq("TCP_NODELAY on the backend's leg", 1,
             worker_socket_option(worker, to_backend[0], echo1.port, socket.IPPROTO_TCP,
                                  socket.TCP_NODELAY) if to_backend else None)
        cl.close()
    finally:
        lb.stop()


def tcp_sockets_to(port):
    """(state, local port) of the IPv4 TCP sockets whose remote port is port."""
    return [(st, lp) for st, lp, rp in tcp_table(v6=False).values() if rp == port]


def test_backend_policies(echo1, echo2):
    def backend_counts(lb, n):
        held, counts = [], {}
        for _ in range(n):
            cl = RawClient(lb.port)
            cl.request("/")
            st, hdrs, _ = cl.read_head()
            key = hdrs.get("x-backend-id") if st == 101 else st
            counts[key] = counts.get(key, 0) + 1
            held.append(cl)
        for cl in held:
            cl.close()
        return counts

    def start(backend_sections):
        return Wsbal([], sections={"upstream": {"pass_headers": "X-Backend-Id"},
                                   **backend_sections})

    lb = start({"backend:e1": {"url": echo1.url, "weight": "3"},
                "backend:e2": {"url": echo2.url, "weight": "1"}})
    counts = backend_counts(lb, 40)
    c.true("weights 3:1 give 30:10 held sessions", counts.get("e1") in range(28, 33),
           str(counts))
    lb.stop()

    lb = start({"backend:e1": {"url": echo1.url, "max_sessions": "3"},
                "backend:e2": {"url": echo2.url, "enabled": "off"}})
    counts = backend_counts(lb, 5)
    c.eq("a full backend and a disabled one: 503 past its max_sessions", {"e1": 3, 503: 2}, counts)
    lb.stop()

    lb = start({"backend:e1": {"url": echo1.url, "backup": "on"},
                "backend:e2": {"url": echo2.url}})
    c.eq("the backup gets nothing while a primary is available", {"e2": 4}, backend_counts(lb, 4))
    lb.stop()
    lb = start({"backend:e1": {"url": echo1.url, "backup": "on"},
                "backend:e2": {"url": echo2.url, "enabled": "off"}})
    c.eq("the backup takes over when no primary is available", {"e1": 4}, backend_counts(lb, 4))
    lb.stop()


def test_worker_respawn(echo1):
    """A worker killed outright is replaced on the same sockets; new sessions keep working."""
    import signal
    lb = Wsbal([("e1", echo1.url)], workers=2)
    try:
        workers = sorted(p for p in lb.pids() if p != lb.proc.pid)
        c.eq("two workers running", 2, len(workers))
        mark = len(lb.output().split("\n"))
        os.kill(workers[0], signal.SIGKILL)
        c.true("the master respawns a killed worker",
               lb.wait_line(r"respawning worker \d+", start=mark) is not None, lb.output()[-2000:])
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            now = sorted(p for p in lb.pids() if p != lb.proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.05)
        c.true("two workers again, the killed one replaced", len(now) == 2 and workers[0] not in now,
               f"before {workers}, now {now}")
        ok = 0
        for _ in range(20):  # SO_REUSEPORT spreads these over both sockets, the respawned one too
            cl = RawClient(lb.port)
            cl.request("/")
            ok += cl.read_head()[0] == 101
            cl.close()
        c.eq("every new session upgrades after the respawn", 20, ok)
        # The kill is the only worker death this test causes; the crash check below must not
        # count it, so the line is taken out of the collected output.
        with lb.cond:
            lb.lines = [l for l in lb.lines if "killed by signal 9" not in l]
    finally:
        lb.stop()


def test_backend_ends_with_its_101():
    """A backend whose 101, first frames and end of stream come in one packet: what came with the
    101 is relayed, then its close (relayed as it is) or the loss of the connection (a failover,
    with no other backend here: close 1013), at once. On io_uring the ring reads the handshake
    too: the bytes past the 101's head and the end of the stream found with them must reach the
    relay (on epoll libuv reads them all before the relay starts)."""
    ob = OnePacketBackend()
    lb = Wsbal([("one", ob.url)])
    try:
        for path, want in (("/close", [(OP_TEXT, b"early"), (OP_CLOSE, close_payload(1000, b"done"))]),
                           ("/frame", [(OP_TEXT, b"early"), (OP_CLOSE, close_payload(1013))]),
                           ("/bare", [(OP_CLOSE, close_payload(1013))])):
            for attempt in range(3):
                cl = RawClient(lb.port)
                cl.request(path)
                status = cl.read_head()[0]
                got = []
                try:
                    while len(got) < len(want):
                        fin, op, payload = cl.read_frame(timeout=5)
                        if op == OP_CLOSE:  # the code, and the reason where one is expected
                            payload = payload[:len(want[-1][1])]
                        got.append((op, payload))
                except (socket.timeout, EOFError, ConnectionResetError) as e:
                    got.append(repr(e))
                cl.close()
                if (status, got) != (101, want):
                    break
            c.eq(f"{path}: the 101, what came with it, then the end, at once (3 sessions)",
                 (101, want), (status, got))
    finally:
        lb.stop()
        ob.close()


def test_early_frames():
    """Frames a client sends before its 101 (it should not) are held and relayed in order after
    it, whether they came with the request head or while the backend was slow to answer."""
    slow = Peer("slow", delay_101=0.5)
    lb = Wsbal([("slow", slow.url)])
    try:
        cl = RawClient(lb.port)
        cl.request("/")
        cl.send(frame(OP_TEXT, b"one"))
        cl.send(frame(OP_TEXT, b"two") + frame(OP_BINARY, b"three" * 1000))
        c.eq("the upgrade still succeeds", 101, cl.read_head()[0])
        got = [cl.read_frame()[1:] for _ in range(3)]
        c.eq("frames sent during the backend's upgrade arrive, in order",
             [(OP_TEXT, b"one"), (OP_TEXT, b"two"), (OP_BINARY, b"three" * 1000)], got)
        cl.send(frame(OP_TEXT, b"after"))
        c.eq("the session relays normally after that", (OP_TEXT, b"after"), cl.read_frame()[1:])
        cl.close()

        # The same, with the frame in the very packet of the request head.
        cl = RawClient(lb.port)
        head = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        cl.send(head + frame(OP_TEXT, b"glued"))
        c.eq("an upgrade with a frame glued to its head succeeds", 101, cl.read_head()[0])
        c.eq("the glued frame is relayed", (OP_TEXT, b"glued"), cl.read_frame()[1:])
        cl.close()

        # A head larger than the head buffer's first size (2 KiB), with a frame glued to it, in
        # one packet: on io_uring one receive brings it all, and it goes into the head buffer
        # in pieces of the room it has (the buffer grows between them), the head ending inside
        # the last piece and the frame going on from there.
        cl = RawClient(lb.port)
        big = head[:-2] + b"X-Padding: " + b"p" * 4000 + b"\r\n\r\n"  # the backend takes 4 KB
        cl.send(big + frame(OP_TEXT, b"behind a big head"))
        c.eq("an upgrade with a 4 KB head and a glued frame succeeds", 101, cl.read_head()[0])
        c.eq("the frame behind the big head is relayed", (OP_TEXT, b"behind a big head"),
             cl.read_frame()[1:])
        cl.close()

        # A client that gives up while its backend is still connecting leaves nothing behind.
        cl = RawClient(lb.port)
        cl.request("/")
        cl.close()
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("the next session is served", 101, cl.read_head()[0])
        cl.close()
        c.eq("stops cleanly", 0, lb.stop())
    finally:
        lb.stop()
        slow.stop()


def main():
    echo1, echo2 = Echo("e1"), Echo("e2")
    lb = Wsbal([("e1", echo1.url), ("e2", echo2.url)])
    try:
        run(test_echo_sizes(lb))
        run(test_browser_style(lb))
        test_handshake_answers(lb)
        test_bad_frames(lb)
        test_limits_and_policies(echo1)
        test_backend_failures(echo1)
        test_headers_and_subprotocols(lambda backends, sections: Wsbal(backends, sections=sections))
        test_backpressure()
        test_backpressure_to_backend()
        test_full_sockets_keep_order(echo1)
        test_keepalive_and_idle(echo1)
        test_ping_due_inside_a_stalled_frame(echo1)
        test_backend_policies(echo1, echo2)
        test_worker_respawn(echo1)
        test_sockets_closed_after_sessions(echo1)
        test_no_delay_on_both_legs(echo1)
        test_balance(echo1, echo2)
        test_early_frames()
        test_backend_ends_with_its_101()
        c.eq("wsbal stops cleanly on SIGTERM", 0, lb.stop())
    except Exception as e:  # a crash of the test itself is a failure, never a pass
        import traceback
        traceback.print_exc()
        c.true("test ran to the end", False, repr(e))
        lb.stop()
    finally:
        echo1.stop()
        echo2.stop()
    return c.summary()


if __name__ == "__main__":
    sys.exit(main())

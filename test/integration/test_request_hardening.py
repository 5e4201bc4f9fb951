"""What wsbal checks in a request is what it forwards: repeated fields, the Forwarded family,
dot segments in the path (issue 12 items 2, 9 and 10).

A backend written here reads each upgrade request by hand, keeps every header line as it came
(repeats and order included), answers 101 choosing the LAST element of the LAST
Sec-WebSocket-Protocol line (as servers that keep only the last line do), and sends the client
one text frame: its id, the request line and the header lines, as JSON. A text "fail" from the
client makes it close with 1001, so wsbal moves the session to the other backend.
"""
import asyncio
import base64
import hashlib
import json
import struct
import sys
import threading
import time

from wsbtest import OP_CLOSE, OP_TEXT, T, Checks, RawClient, Wsbal, close_payload, frame

c = Checks()
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HeaderBackends:
    """Two raw backends in one asyncio thread; requests[] lists what each received."""

    def __init__(self, ids=("b1", "b2")):
        self.requests = []
        self.ports = {}
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        async def main():
            for ident in ids:
                server = await asyncio.start_server(
                    lambda r, w, ident=ident: self.handle(ident, r, w), "127.0.0.1", 0)
                self.ports[ident] = server.sockets[0].getsockname()[1]
            started.set()
            await asyncio.Event().wait()

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(main()),
                                       daemon=True)
        self.thread.start()
        started.wait(T)
        self.urls = {i: f"ws://127.0.0.1:{p}" for i, p in self.ports.items()}

    async def handle(self, ident, reader, writer):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
            lines = head.decode("latin-1").split("\r\n")[:-2]
            headers = [[k, v.strip()] for k, _, v in (l.partition(":") for l in lines[1:])]
            self.requests.append({"id": ident, "line": lines[0], "headers": headers})
            key = [v for k, v in headers if k.lower() == "sec-websocket-key"][0].encode()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            protos = [v for k, v in headers if k.lower() == "sec-websocket-protocol"]
            answer = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n")
            if protos:
                answer += f"Sec-WebSocket-Protocol: {protos[-1].split(',')[-1].strip()}\r\n".encode()
            writer.write(answer + b"\r\n")
            body = json.dumps({"id": ident, "line": lines[0], "headers": headers}).encode()
            writer.write(frame(OP_TEXT, body, mask=False))
            await writer.drain()
            while True:  # client frames: short, masked
                b0, b1 = await asyncio.wait_for(reader.readexactly(2), 3 * T)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", await reader.readexactly(2))[0]
                mask = await reader.readexactly(4)
                data = bytes(x ^ mask[i % 4] for i, x in enumerate(await reader.readexactly(n)))
                if b0 & 0x0F == OP_CLOSE:
                    writer.write(frame(OP_CLOSE, data, mask=False))
                    await writer.drain()
                    break
                if data == b"fail":
                    writer.write(frame(OP_CLOSE, close_payload(1001), mask=False))
                    await writer.drain()
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError, IndexError):
            pass
        finally:
            writer.close()

    def seen(self, needle):
        """Requests whose request line holds needle."""
        return [r for r in self.requests if needle in r["line"]]


def upgrade(lb, target, extra=b"", host=b"127.0.0.1"):
    """Sends an upgrade for target with extra header lines; returns (client, status, headers)."""
    cl = RawClient(lb.port)
    key = base64.b64encode(b"0123456789abcdef")
    cl.send(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    status, headers, _ = cl.read_head()
    return cl, status, headers


def first_message(cl):
    fin, op, payload = cl.read_frame()
    return json.loads(payload)


def lines_named(info, name):
    return [v for k, v in info["headers"] if k.lower() == name.lower()]


def test_repeated_fields(backends):
    lb = Wsbal([("b1", backends.urls["b1"])], sections={
        "listen": {"allowed_origins": "https://good.example"}})
    try:
        # Two Sec-WebSocket-Protocol lines are one list: the backend's pick from the second is
        # valid, and the backend sees the list on one line, the same one wsbal checked.
        cl, status, headers = upgrade(lb, b"/p", b"Sec-WebSocket-Protocol: alpha\r\n"
                                                 b"Sec-WebSocket-Protocol: beta\r\n")
        c.eq("two protocol lines: 101", 101, status)
        c.eq("two protocol lines: the backend's pick from the second reaches the client", "beta",
             headers.get("sec-websocket-protocol"))
        if status == 101:
            info = first_message(cl)
            c.eq("the backend gets one combined protocol line",
                 ["alpha, beta"], lines_named(info, "Sec-WebSocket-Protocol"))
        cl.close()

        for name, extra, host in [
                ("two Host lines", b"Host: other.example\r\n", b"127.0.0.1"),
                ("two identical Host lines", b"Host: 127.0.0.1\r\n", b"127.0.0.1"),
                ("two Origin lines, the second not allowed",
                 b"Origin: https://good.example\r\nOrigin: https://evil.example\r\n", b"127.0.0.1"),
                ("two keys", b"Sec-WebSocket-Key: " + base64.b64encode(b"fedcba9876543210") + b"\r\n",
                 b"127.0.0.1"),
                ("a body announced by Content-Length", b"Content-Length: 6\r\n", b"127.0.0.1"),
                ("Transfer-Encoding", b"Transfer-Encoding: chunked\r\n", b"127.0.0.1")]:
            before = len(backends.requests)
            cl, status, _ = upgrade(lb, b"/dup", extra, host)
            c.eq(f"{name}: 400", 400, status)
            cl.close()
            c.eq(f"{name}: the backend was never asked", before, len(backends.requests))

        # Content-Length: 0 is no body: accepted, and not forwarded.
        cl, status, _ = upgrade(lb, b"/cl0", b"Content-Length: 0\r\nExpect: 100-continue\r\n")
        c.eq("Content-Length: 0 accepted", 101, status)
        if status == 101:
            info = first_message(cl)
            c.eq("no Content-Length or Expect reaches the backend", [],
                 lines_named(info, "Content-Length") + lines_named(info, "Expect"))
        cl.close()
    finally:
        lb.stop()


FORGED = (b"X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\n"
          b"X-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 6666\r\nX-Forwarded-Proto: https\r\n"
          b"X-Forwarded-Host: forged.example\r\nX-Forwarded-Prefix: /forged\r\n")


def test_forwarded_family(backends):
    lb = Wsbal([("b1", backends.urls["b1"])])
    try:
        cl, status, _ = upgrade(lb, b"/f", FORGED)
        c.eq("forged Forwarded family: 101", 101, status)
        info = first_message(cl)
        cl.close()
        for name in ("Forwarded", "X-Real-IP", "X-Forwarded-Port", "X-Forwarded-Prefix"):
            c.eq(f"untrusted client's {name} dropped", [], lines_named(info, name))
        c.eq("X-Forwarded-For is the client's address alone", ["127.0.0.1"],
             lines_named(info, "X-Forwarded-For"))
        c.eq("X-Forwarded-Proto is wsbal's alone", ["http"], lines_named(info, "X-Forwarded-Proto"))
        c.eq("X-Forwarded-Host is the client's Host alone", ["127.0.0.1"],
             lines_named(info, "X-Forwarded-Host"))
    finally:
        lb.stop()

    lb = Wsbal([("b1", backends.urls["b1"])], sections={"listen": {"trust_forwarded": "on"}})
    try:
        cl, status, _ = upgrade(lb, b"/f", FORGED + b"X-Forwarded-For: 7.7.7.7\r\n")
        c.eq("trusted Forwarded family: 101", 101, status)
        info = first_message(cl)
        cl.close()
        c.eq("trusted: X-Forwarded-For combined and extended", ["6.6.6.6, 7.7.7.7, 127.0.0.1"],
             lines_named(info, "X-Forwarded-For"))
        for name, value in (("Forwarded", "for=6.6.6.6;proto=https"), ("X-Real-IP", "6.6.6.6"),
                            ("X-Forwarded-Port", "6666"), ("X-Forwarded-Proto", "https"),
                            ("X-Forwarded-Host", "forged.example")):
            c.eq(f"trusted front's {name} kept, once", [value], lines_named(info, name))
    finally:
        lb.stop()


def test_paths(backends):
    lb = Wsbal([("b1", backends.urls["b1"]), ("b2", backends.urls["b2"])],
               sections={"listen": {"path": "/ws"}})
    try:
        for target, want in [(b"/ws/../admin", 404), (b"/ws/%2e%2e/admin", 404),
                             (b"/ws/.%2E/admin", 404), (b"/ws/..", 404), (b"/wsx", 404),
                             (b"/ws/../../admin", 400), (b"/ws/..%2fadmin", 400),
                             (b"/ws/..;/admin", 400), (b"/ws/a%00", 400), (b"/ws\\..\\admin", 400)]:
            before = len(backends.requests)
            cl, status, _ = upgrade(lb, target)
            c.eq(f"{target.decode()}: {want}", want, status)
            cl.close()
            c.eq(f"{target.decode()}: the backend was never asked", before, len(backends.requests))
        c.eq("no backend ever saw 'admin'", [], backends.seen("admin"))

        for target, forwarded in [(b"/ws/./a", "/ws/a"), (b"/ws/x/../a?q=/../b", "/ws/a?q=/../b"),
                                  (b"/ws/%2e/a", "/ws/a"), (b"/admin/../ws", "/ws")]:
            cl, status, _ = upgrade(lb, target)
            c.eq(f"{target.decode()}: 101", 101, status)
            if status == 101:
                info = first_message(cl)
                c.eq(f"{target.decode()} forwarded as {forwarded}", f"GET {forwarded} HTTP/1.1",
                     info["line"])
            cl.close()

        # A failover parses the kept request again: the new backend gets the same path and
        # protocol list, and the session goes on.
        cl, status, headers = upgrade(lb, b"/ws/./moved/../x",
                                      b"Sec-WebSocket-Protocol: alpha\r\n"
                                      b"Sec-WebSocket-Protocol: beta\r\n")
        c.eq("session to fail over: 101 with beta", (101, "beta"),
             (status, headers.get("sec-websocket-protocol")))
        first = first_message(cl)
        cl.send(frame(OP_TEXT, b"fail"))
        second = first_message(cl)
        c.true("failover went to the other backend", first["id"] != second["id"], str(second))
        c.eq("the new backend gets the normalised path", "GET /ws/x HTTP/1.1", second["line"])
        c.eq("and the combined protocol line", ["alpha, beta"],
             lines_named(second, "Sec-WebSocket-Protocol"))
        c.eq("and the reconnect header", 1, len(lines_named(second, "X-Balancer-Reconnect")))
        cl.send(frame(OP_CLOSE, close_payload(1000)))
        fin, op, payload = cl.read_frame()
        c.eq("the moved session closes cleanly", (OP_CLOSE, 1000),
             (op, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None))
        cl.close()
    finally:
        lb.stop()


def main():
    backends = HeaderBackends()
    t0 = time.monotonic()
    try:
        test_repeated_fields(backends)
        test_forwarded_family(backends)
        test_paths(backends)
    except Exception as e:  # a crash of the test itself is a failure, never a pass
        import traceback
        traceback.print_exc()
        c.true("test ran to the end", False, repr(e))
    print(f"took {time.monotonic() - t0:.1f} s", flush=True)
    return c.summary()


if __name__ == "__main__":
    sys.exit(main())

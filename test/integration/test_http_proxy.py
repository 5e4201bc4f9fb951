"""Plain HTTP through wsbal ([listen] http = proxy), SPEC.md "Plain HTTP", rule by rule.

The backends are Python's http.server (HTTP/1.1, keep-alive) in threads of this process: they
echo bodies, describe the request they got, stream large answers, answer chunked, HEAD, 204, 304
and without a length, or never. Clients are http.client and raw sockets for what a library will
not send (pipelining, smuggling attempts, 100-continue by hand, HTTP/1.0).
"""
import hashlib
import http.client
import http.server
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.request

from httpraw import read_head
from wsbtest import OP_TEXT, T, Checks, Echo, Wsbal, free_port, frame, run_tests, wait_for

c = Checks()
BIG = 64 << 20  # bytes of the streamed answer and upload


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def drop(self):
        """b1 closes /drop requests unanswered, after reading them."""
        if self.server.ident != "b1" or not self.path.endswith("/drop"):
            return False
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)
        return True

    def do_GET(self):
        self.server.conns.add(self.client_address[1])
        path = self.path.split("?")[0]
        if self.drop():
            return
        if path.endswith("/big"):
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            block = b"x" * 65536
            for _ in range(BIG // len(block)):
                self.wfile.write(block)
        elif path.endswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif path.endswith("/204"):
            self.reply(204)
        elif path.endswith("/304"):
            self.reply(304, headers=[("ETag", '"v1"')])
        elif path.endswith("/noclose"):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"until the close")
            self.close_connection = True
        elif path.endswith("/cut"):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten.\n")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif path.endswith("/badchunk"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\nzz\r\n")
            self.wfile.flush()
            time.sleep(0.5)
            self.close_connection = True
        elif path.endswith("/thenclose"):
            self.reply(200, b"bye")  # framed and kept alive, then closed by the backend
            self.close_connection = True
        elif path.endswith("/slow"):
            time.sleep(3)
            self.reply(200, b"late")
        else:
            info = {"id": self.server.ident, "path": self.path, "method": self.command,
                    "port": self.client_address[1],
                    "headers": [[k, v] for k, v in self.headers.items()]}
            self.reply(200, json.dumps(info).encode(), [("Content-Type", "application/json"),
                                                        ("Connection", "keep-alive, X-Hop"),
                                                        ("X-Hop", "hop"), ("Keep-Alive", "5")])

    do_HEAD = do_GET
    do_OPTIONS = do_GET

    def do_POST(self):
        self.server.conns.add(self.client_address[1])
        if self.path.endswith("/early"):
            self.reply(200, b"answered before the body")  # and reads it as the next request
            return
        data = self.body()
        if self.drop():
            return
        self.reply(200, hashlib.md5(data).hexdigest().encode() + b" %d" % len(data))

    do_PUT = do_POST


class Backend:
    def __init__(self, ident):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.ident = ident
        self.server.conns = set()
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # clients wsbal cut off on purpose
        self.port = self.server.server_address[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def raw(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=T)
    return s


def read_until_close(s):
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return data
            data += b
    except (socket.timeout, ConnectionResetError):
        return data + b"<no close>"


def read_response(s, buf=b""):
    """One response from s (Content-Length or chunked framing): (status, headers, body, rest)."""
    head, buf = read_head(s, buf)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    if status < 200 or status in (204, 304) or headers.get("x-head") == "1":
        return status, headers, b"", buf
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += s.recv(65536)
            line, _, buf = buf.partition(b"\r\n")
            size = int(line, 16)
            while len(buf) < size + 2:
                buf += s.recv(65536)
            body, buf = body + buf[:size], buf[size + 2:]
            if size == 0:
                return status, headers, body, buf[0:]
    n = int(headers.get("content-length", 0))
    while len(buf) < n:
        more = s.recv(65536)
        if not more:
            break
        buf += more
    return status, headers, buf[:n], buf[n:]


B1 = Backend("b1")
B2 = Backend("b2")
ECHO = Echo("e1")
ACCESS = f"/tmp/wsbal-http-access-{os.getpid()}.log"
ADMIN = free_port()
W = Wsbal([("b1", B1.url + "/pre")], workers=1, sections={
    "wsbal": {"access_log": ACCESS},
    "listen": {"http": "proxy", "max_body_bytes": "100m", "max_header_bytes": "4k"},
    "upstream": {"http_timeout": "5s"},
    "admin": {"address": f"127.0.0.1:{ADMIN}"},
})


def get(path, headers=None, method="GET", body=None, conn=None):
    conn = conn or http.client.HTTPConnection("127.0.0.1", W.port, timeout=T)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read(), conn


def test_off_answers_426():
    w = Wsbal([("b1", B1.url)], workers=1)
    status, _, _, conn = get("/x", conn=http.client.HTTPConnection("127.0.0.1", w.port, timeout=T))
    conn.close()
    w.stop()
    c.eq("http = off: a plain request gets 426", 426, status)


def test_keepalive_headers():
    conn = http.client.HTTPConnection("127.0.0.1", W.port, timeout=T)
    seen = []
    for i in range(3):
        status, headers, body, _ = get(f"/a/./b/../c?i={i}", conn=conn, headers={
            "Connection": "keep-alive, X-Drop", "X-Drop": "1", "TE": "trailers",
            "X-Forwarded-For": "6.6.6.6", "X-Keep": "kept"})
        info = json.loads(body)
        seen.append(info["path"])
        names = {k.lower(): v for k, v in info["headers"]}
    conn.close()
    c.eq("three requests on one connection, prefix and dot segments", [
        "/pre/a/c?i=0", "/pre/a/c?i=1", "/pre/a/c?i=2"], seen)
    c.true("hop-by-hop request headers removed", not {"x-drop", "te", "connection"} & set(names),
           names)
    c.eq("end-to-end header kept", "kept", names.get("x-keep"))
    c.eq("X-Forwarded-For replaced (untrusted peer)", "127.0.0.1", names.get("x-forwarded-for"))
    c.eq("X-Forwarded-Proto", "http", names.get("x-forwarded-proto"))
    c.eq("X-Forwarded-Host", f"127.0.0.1:{W.port}", names.get("x-forwarded-host"))
    c.true("hop-by-hop answer headers removed", not {"x-hop", "keep-alive"} & set(headers),
           headers)


def test_bodies():
    data = os.urandom(1 << 20)
    want = hashlib.md5(data).hexdigest().encode() + b" %d" % len(data)
    status, _, body, conn = get("/echo", method="POST", body=data)
    c.eq("Content-Length upload streamed", (200, want), (status, body))

    def chunks():
        for i in range(0, len(data), 100000):
            yield data[i:i + 100000]
    # http.client frames a body of unknown length as chunked itself.
    status, _, body, _ = get("/echo", method="POST", body=chunks(), conn=conn)
    c.eq("chunked upload streamed on the same connection", (200, want), (status, body))
    status, headers, body, _ = get("/chunked", conn=conn)
    c.eq("chunked answer passed on", (200, "chunked", b"hello chunked world"),
         (status, headers.get("transfer-encoding"), body))
    conn.close()


def worker_rss_kb():
    total = 0
    for pid in W.pids()[1:]:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            pass
    return total


def test_streaming_memory():
    before = worker_rss_kb()
    s = raw(W.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1)  # a reader that stalls: wsbal must stop reading the backend, not buffer
    stalled = worker_rss_kb()
    got = 0
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    got = len(buf.partition(b"\r\n\r\n")[2])
    while got < BIG:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
    s.close()
    c.eq("64 MiB download complete", BIG, got)
    c.true("a stalled reader does not grow the worker past its buffers",
           stalled - before < 8192, f"{before} kB before, {stalled} kB while stalled")
    data = os.urandom(BIG // 4)
    status, _, body, _ = get("/echo", method="PUT", body=data)
    c.eq("16 MiB upload", hashlib.md5(data).hexdigest().encode() + b" %d" % len(data), body)


def test_pipelining_and_methods():
    s = raw(W.port)
    s.sendall(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"HEAD /p2 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /304 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
              b"GET /p3 HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    got = []
    st, h, body, buf = read_response(s, buf)
    got.append((st, json.loads(body)["path"]))
    # A HEAD answer has a length but no body: the reader must not wait for one.
    head_end = buf
    while b"\r\n\r\n" not in head_end:
        head_end += s.recv(65536)
    head, _, buf = head_end.partition(b"\r\n\r\n")
    got.append((int(head.split()[1]), "HEAD", b"content-length" in head.lower()))
    for _ in range(4):
        st, h, body, buf = read_response(s, buf)
        got.append((st, body[:40] if st != 200 or not body.startswith(b"{") else
                    json.loads(body)["path"]))
    s.close()
    c.eq("pipelined requests answered in order", [
        (200, "/pre/p1"), (200, "HEAD", True), (204, b""), (304, b""),
        (200, hashlib.md5(b"abc").hexdigest().encode() + b" 3"), (200, "/pre/p3")], got)


def answer_and_close(request):
    """What W answers to one request on a new connection, until it closes."""
    s = raw(W.port)
    s.sendall(request)
    data = read_until_close(s)
    s.close()
    return data


def test_continue_close_and_http10():
    s = raw(W.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    interim = b""
    while b"\r\n\r\n" not in interim:
        interim += s.recv(65536)
    c.true("100 Continue before the body is sent", interim.startswith(b"HTTP/1.1 100 Continue"),
           interim)
    s.sendall(b"hello")
    st, _, body, _ = read_response(s, interim.partition(b"\r\n\r\n")[2])
    c.eq("then the answer", (200, hashlib.md5(b"hello").hexdigest().encode() + b" 5"), (st, body))
    s.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_until_close(s)
    s.close()
    c.true("Connection: close: answered with it, then closed",
           data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data and
           not data.endswith(b"<no close>"), data[:200])
    data = answer_and_close(b"GET /chunked HTTP/1.0\r\n\r\n")
    c.true("HTTP/1.0: the chunked answer's payload, then the close",
           data.endswith(b"\r\n\r\nhello chunked world") and b"Transfer-Encoding" not in data,
           data[-200:])
    data = answer_and_close(b"GET /noclose HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    c.true("an answer delimited by the backend's close ends with an HTTP/1.0 client's close",
           data.endswith(b"\r\n\r\nuntil the close") and b"Transfer-Encoding" not in data,
           data[-200:])
    s = raw(W.port)
    got = []
    for path in (b"/noclose", b"/after"):
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        st, h, body, _ = read_response(s)
        got.append((st, h.get("transfer-encoding"), h.get("connection"), body[:6]))
    s.close()
    c.eq("re-chunked for an HTTP/1.1 client, whose connection stays for the next request",
         [(200, "chunked", None, b"until "), (200, None, None, b'{"id":')], got)
    s = raw(W.port)
    got = []
    for i in range(2):
        s.sendall(b"GET /ten%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
        st, h, body, _ = read_response(s)
        got.append((st, h.get("connection"), json.loads(body)["path"]))
    s.sendall(b"GET /ten2 HTTP/1.0\r\n\r\n")
    data = read_until_close(s)
    s.close()
    c.eq("HTTP/1.0 with Connection: keep-alive: kept, and told so",
         [(200, "keep-alive", "/pre/ten0"), (200, "keep-alive", "/pre/ten1")], got)
    c.true("HTTP/1.0 without it: answered, then closed",
           data.startswith(b"HTTP/1.1 200") and not data.endswith(b"<no close>"), data[-80:])


def refused(request, status):
    s = raw(W.port)
    s.sendall(request)
    data = read_until_close(s)
    s.close()
    return data.startswith(b"HTTP/1.1 %d" % status) and not data.endswith(b"<no close>"), data[:80]


def test_refusals():
    cases = [
        ("Content-Length and Transfer-Encoding",
         b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
         b"\r\n0\r\n\r\n", 400),
        ("two differing Content-Length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
         b"Content-Length: 4\r\n\r\nabcd", 400),
        ("a chunk size with a space", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400),
        ("a chunk size in 0x form", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
        ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400),
        ("a coding after chunked", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
         b"Transfer-Encoding: chunked, identity\r\n\r\n", 400),
        ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("a head past max_header_bytes", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 +
         b"\r\n\r\n", 431),
        ("a Content-Length past max_body_bytes", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 104857601\r\n\r\n", 413),
    ]
    for name, request, status in cases:
        ok, data = refused(request, status)
        c.true(f"{name}: {status} and the connection closes", ok, data)
    w = Wsbal([("b1", B2.url)], workers=1, sections={"listen": {"http": "proxy",
                                                                 "max_body_bytes": "1k"}})
    s = raw(w.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
              b"200\r\n" + b"a" * 512 + b"\r\n" + b"200\r\n" + b"a" * 512 + b"\r\n" +
              b"1\r\na\r\n0\r\n\r\n")
    data = read_until_close(s)
    s.close()
    w.stop()
    c.true("a chunked body past max_body_bytes: 413 and the close",
           data.startswith(b"HTTP/1.1 413") and not data.endswith(b"<no close>"), data[:80])


def test_cut_short():
    s = raw(W.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly some")
    s.close()  # the client leaves inside its body
    s = raw(W.port)
    s.sendall(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_until_close(s)
    s.close()
    c.true("a backend that leaves inside its answer: the client's connection is cut",
           data.endswith(b"only ten.\n"), data[-80:])
    s = raw(W.port)
    s.sendall(b"GET /badchunk HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_until_close(s)
    s.close()
    c.true("a broken chunked answer: passed up to the break, then the connection is cut",
           data.endswith(b"5\r\nhello"), data[-80:])
    status, _, body, conn = get("/after")
    conn.close()
    c.eq("wsbal goes on serving", 200, status)
    s = raw(W.port)
    s.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
    st, h, body, _ = read_response(s)
    try:
        s.sendall(b"x" * 200000)
    except OSError:
        pass
    data = read_until_close(s)
    s.close()
    c.eq("an answer before the request body is whole: passed on, then the close",
         (200, "close", b""), (st, h.get("connection"), data))
    got = []
    for i in range(3):
        status, _, body, conn = get(f"/next{i}")
        conn.close()
        got.append((status, json.loads(body)["path"] if status == 200 else body))
    c.eq("the backend connection of that request is not used again",
         [(200, "/pre/next0"), (200, "/pre/next1"), (200, "/pre/next2")], got)


def test_backend_failures():
    dead = free_port()
    w = Wsbal([("dead", f"ws://127.0.0.1:{dead}"), ("b2", B2.url)], workers=1, sections={
        "listen": {"http": "proxy"}, "upstream": {"http_timeout": "1s", "algorithm": "round_robin"}})
    ids = set()
    for _ in range(4):
        st, _, body, conn = get("/r", conn=http.client.HTTPConnection("127.0.0.1", w.port,
                                                                     timeout=T))
        conn.close()
        ids.add((st, json.loads(body)["id"]))
    c.eq("a refused connection: the request goes to the next backend", {(200, "b2")}, ids)
    st, _, body, conn = get("/echo", method="POST", body=b"x",
                            conn=http.client.HTTPConnection("127.0.0.1", w.port, timeout=T))
    conn.close()
    c.eq("a POST too, when no byte of it was sent", 200, st)
    st, _, _, conn = get("/slow", conn=http.client.HTTPConnection("127.0.0.1", w.port, timeout=T))
    conn.close()
    c.eq("no answer within http_timeout: 504", 504, st)
    w.stop()
    w = Wsbal([("dead", f"ws://127.0.0.1:{dead}")], workers=1,
              sections={"listen": {"http": "proxy"}})
    st, _, _, conn = get("/", conn=http.client.HTTPConnection("127.0.0.1", w.port, timeout=T))
    conn.close()
    w.stop()
    c.eq("the only backend refuses: 502", 502, st)


def test_retry_rules():
    w = Wsbal([("b1", B1.url), ("b2", B2.url)], workers=1, sections={
        "listen": {"http": "proxy"}, "upstream": {"algorithm": "round_robin"}})
    got = []
    for method in ("GET", "GET", "POST", "POST"):
        conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
        st, _, body, _ = get("/drop", method=method, body=b"x" if method == "POST" else None,
                             conn=conn)
        conn.close()
        got.append((method, st))
    w.stop()
    c.eq("a GET the backend dropped unanswered goes to the next one; a POST gets 502",
         [("GET", 200), ("GET", 200), ("POST", 200), ("POST", 502)], sorted(got))


def test_pool_reuse():
    ports = set()
    for i in range(5):
        st, _, body, conn = get(f"/pool{i}")
        conn.close()
        ports.add((st, json.loads(body)["port"]))
    c.true("five client connections, one backend connection (http_keepalive)", len(ports) == 1,
           ports)


def test_upgrade_after_plain():
    w = Wsbal([("e1", ECHO.url)], workers=1, sections={"listen": {"http": "proxy"}})
    s = raw(w.port)
    s.sendall(b"GET /healthCheck HTTP/1.1\r\nHost: x\r\n\r\n")
    st, _, body, buf = read_response(s)
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    s.sendall(frame(OP_TEXT, b"after a GET"))
    while len(buf) < 2 + len(b"after a GET"):
        buf += s.recv(65536)
    s.close()
    w.stop()
    c.eq("a GET, then an upgrade on the same connection", (200, b"HTTP/1.1 101", b"after a GET"),
         (st, head[:12], buf[2:2 + len(b"after a GET")]))


def test_keepalive_races():
    w = Wsbal([("b1", B1.url)], workers=1, sections={"listen": {"http": "proxy"}})
    s = raw(w.port)
    s.sendall(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    data = read_until_close(s)
    s.close()
    c.true("a client that half-closes after its request gets the answer, then the close",
           data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower()
           and data.endswith(b"}"), data[-200:])
    s = raw(w.port)
    got = []
    for path in (b"/thenclose", b"/after"):
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, body, _ = read_response(s)
        got.append((st, body[:3]))
    s.close()
    c.eq("the backend closes the connection kept for the next request: that one gets a new one",
         [(200, b"bye"), (200, b'{"i')], got)
    # Each connection the backend closes after its answer goes to the idle pool with the client
    # that leaves, and is taken by the next client's GET without a peek: the request goes on to a
    # new connection to the same (only) backend, never a 502.
    got = []
    for i in range(10):
        s = raw(w.port)
        s.sendall(b"GET /thenclose HTTP/1.1\r\nHost: x\r\n\r\n")
        got.append(read_response(s)[0])
        s.close()
    w.stop()
    c.eq("a pooled connection the backend closed: GETs retried on a new connection", [200] * 10,
         got)


def test_stop_closes_idle():
    w = Wsbal([("b1", B1.url)], workers=1, sections={
        "wsbal": {"shutdown_timeout": "60s"},
        "listen": {"http": "proxy", "handshake_timeout": "60s"}})
    s = raw(w.port)
    s.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
    st, _, _, _ = read_response(s)
    rc = w.stop()
    data = read_until_close(s)
    s.close()
    c.eq("a graceful stop closes connections idle between requests at once, and exits 0",
         (200, 0, b""), (st, rc, data))


def test_log_and_metrics():
    lines = wait_for(lambda: [json.loads(l) for l in open(ACCESS) if '"type":"http"' in l])
    c.true("access log lines of type http", len(lines) > 10, len(lines))
    line = lines[0]
    c.true("with SPEC.md's keys", all(k in line for k in (
        "method", "status", "duration_ms", "bytes_in", "bytes_out", "backend")), line)
    text = urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/metrics", timeout=T).read().decode()
    ok = re.search(r'wsbal_http_requests_total\{pool="default",code="2xx"\} (\d+)', text)
    c.true("wsbal_http_requests_total counts the 2xx answers", ok and int(ok.group(1)) > 10,
           text[-500:])
    c.true("wsbal_http_request_seconds", 'wsbal_http_request_seconds_count{pool="default"}' in text)
    st = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/api/v1/status",
                                           timeout=T).read())
    c.true("GET /api/v1/status: http_requests by class",
           st["totals"].get("http_requests", {}).get("2xx", 0) > 10, st["totals"])


def test_routes():
    admin = free_port()
    w = Wsbal([("b1", B1.url)], workers=1, sections={
        "listen": {"http": "proxy"},
        "admin": {"address": f"127.0.0.1:{admin}"},
        "route:api": {"path": "/api", "strip_path": "on", "pool": "api"},
        "route:wsonly": {"path": "/ws", "websocket": "only", "pool": "api"},
        "backend:b2": {"url": B2.url, "pool": "api"},
    })
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
    seen = []
    for path in ("/api/x?q=1", "/api", "/ws/y", "/apix"):
        status, _, body, _ = get(path, conn=conn)
        info = json.loads(body) if status == 200 else {}
        seen.append((status, info.get("id"), info.get("path")))
    conn.close()
    c.eq("plain requests follow routes on one connection: strip_path, websocket = only skipped, "
         "segment-wise prefix", [(200, "b2", "/x?q=1"), (200, "b2", "/"), (200, "b1", "/ws/y"),
                                 (200, "b1", "/apix")], seen)
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=T).read().decode()
    c.true("plain requests counted in wsbal_route_matches_total",
           'wsbal_route_matches_total{route="api"} 2' in text and
           'wsbal_route_matches_total{route="default"} 2' in text, text[-800:])
    w.stop()
    w = Wsbal([], workers=1, sections={
        "listen": {"http": "proxy"},
        "route:api": {"path": "/api", "pool": "api"},
        "backend:b2": {"url": B2.url, "pool": "api"},
    })
    status, _, _, conn = get("/other", conn=http.client.HTTPConnection("127.0.0.1", w.port,
                                                                         timeout=T))
    conn.close()
    w.stop()
    c.eq("no route and pool default empty: 404", 404, status)


code = run_tests(c, test_off_answers_426, test_keepalive_headers, test_bodies,
                 test_streaming_memory, test_pipelining_and_methods,
                 test_continue_close_and_http10, test_refusals, test_cut_short,
                 test_backend_failures, test_retry_rules, test_pool_reuse, test_keepalive_races, test_stop_closes_idle, test_upgrade_after_plain, test_routes,
                 test_log_and_metrics)
W.stop()
ECHO.stop()
B1.stop()
B2.stop()
if os.path.exists(ACCESS):
    os.unlink(ACCESS)
sys.exit(code)

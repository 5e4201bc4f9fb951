"""Plain HTTP through wsbal at the edges of the framing rules (issue 17's remaining cases).

The backend is a scripted raw socket server in a thread of this process: for each request head
it reads it runs the script its path names, byte by byte as written (so an interim answer and a
final one can share one send(), or be cut anywhere), and it records each connection it accepted.
Clients are raw sockets, so what wsbal writes is seen exactly, with a hand-built frame behind the
upgrade pipelined after a plain request. What each case must show:
- a 100 Continue and the final answer in one send(), and cut at every byte: the client gets both,
  whole and in order; a chunked final answer cut inside a chunk: the client never sees the last
  chunk, and its connection ends (an HTTP/1.0 client, which reads until the close, gets a reset);
- an upgrade pipelined behind a plain GET in the same packet (with a frame behind it): the GET's
  answer, then the 101, then the echo;
- a backend closing inside a Content-Length body: the client sees the connection end short;
- a backend sending more than its Content-Length (in the same send() and later): the client
  gets exactly the length, its next request a correct answer, and that backend connection is not
  used again;
- a client stalling inside its request body: 408 after http_timeout, then the close; a backend
  that stops reading a body (the client paused by backpressure): 504; a client sending its body
  slowly but steadily (each pause under http_timeout, the whole longer): served;
- HEAD answered with a Content-Length (and by a backend that wrongly sends a body after it): no
  body reaches the client and the next request on the connection gets its own answer.
"""
import socket
import sys
import threading
import time

from httpraw import RawServer, content_length, read_answer, read_head
from wsbtest import OP_TEXT, T, Checks, Echo, Wsbal, frame, run_tests

c = Checks()

CONT = b"HTTP/1.1 100 Continue\r\n\r\n"
FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: 1\r\n\r\nhello"


class Scripted(RawServer):
    """A raw HTTP/1.1 backend: reads a head (and its Content-Length body), runs SCRIPT[path]."""

    def __init__(self):
        self.requests = []  # (connection number, path)
        super().__init__(self.run)

    def run(self, conn, n):
        buf = b""
        conn.settimeout(30)
        try:
            while True:
                head, buf = read_head(conn, buf)
                method, path = head.decode("latin-1").split()[:2]
                length = content_length(head)
                with self.lock:
                    self.requests.append((n, path))
                script = SCRIPTS[path.split("?")[0]]
                if not getattr(script, "before_body", False):
                    while len(buf) < length:
                        more = conn.recv(65536)
                        if not more:
                            return
                        buf += more
                    buf = buf[length:]
                if script(conn, method, path) is False:
                    return
        except (OSError, EOFError):
            return
        finally:
            conn.close()


def split_send(conn, data, at):
    """data in two send()s cut at byte at, the second after a pause (TCP_NODELAY is on)."""
    conn.sendall(data[:at])
    time.sleep(0.02)
    conn.sendall(data[at:])


def s_cont_one(conn, method, path):
    conn.sendall(CONT + FINAL)


def s_cont_split(conn, method, path):
    split_send(conn, CONT + FINAL, int(path.split("at=")[1]))


def s_cont_chunk_cut(conn, method, path):
    conn.sendall(CONT + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n8\r\nwor")
    time.sleep(0.1)
    conn.shutdown(socket.SHUT_RDWR)
    return False


def s_length_cut(conn, method, path):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.\n")
    time.sleep(0.1)
    conn.shutdown(socket.SHUT_RDWR)
    return False


def s_more_same(conn, method, path):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n"
                 b"Content-Length: 8\r\n\r\nsmuggled")


def s_more_later(conn, method, path):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    time.sleep(0.2)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")


def s_plain(conn, method, path):
    body = path.encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def s_head_length(conn, method, path):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")


def s_head_with_body(conn, method, path):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot this!")


def s_stall(conn, method, path):
    """Waits for a body that never comes whole: wsbal must time the client out (408)."""
    conn.settimeout(5)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
    return False


s_stall.before_body = True


def s_no_read(conn, method, path):
    """Reads nothing of the body: wsbal's queue to it fills and the client is paused."""
    time.sleep(3)
    return False


s_no_read.before_body = True

SCRIPTS = {
    "/cont-one": s_cont_one,
    "/cont-split": s_cont_split,
    "/cont-chunk-cut": s_cont_chunk_cut,
    "/length-cut": s_length_cut,
    "/more-same": s_more_same,
    "/more-later": s_more_later,
    "/plain": s_plain,
    "/head-length": s_head_length,
    "/head-body": s_head_with_body,
    "/stall": s_stall,
    "/no-read": s_no_read,
    "/slow-body": s_plain,
}

B = Scripted()
ECHO = Echo("e1")
W = Wsbal([("b1", B.url)], workers=1, sections={
    "listen": {"http": "proxy"},
    "upstream": {"http_timeout": "1s"},
})


def raw():
    s = socket.create_connection(("127.0.0.1", W.port), timeout=T)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s, timeout=T):
    """Everything until the close; the tail marks how it ended: b"" (FIN), "reset" or "timeout"."""
    data = b""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return data, "fin"
            data += b
    except ConnectionResetError:
        return data, "reset"
    except socket.timeout:
        return data, "timeout"


def post(path, body=b"hello"):
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" %
            (path.encode(), len(body), body))


def test_interim_and_final():
    s = raw()
    s.sendall(post("/cont-one"))
    h1, _, rest = read_answer(s)
    h2, body, rest = read_answer(s, rest)
    s.close()
    c.eq("a 100 and the final answer in one send(): both, in order",
         (b"HTTP/1.1 100 Continue", b"HTTP/1.1 200 OK", b"hello", b""),
         (h1.split(b"\r\n")[0], h2.split(b"\r\n")[0], body, rest))
    bad = []
    total = len(CONT + FINAL)
    s = raw()
    for at in range(1, total):
        s.sendall(post(f"/cont-split?at={at}"))
        try:
            h1, _, rest = read_answer(s)
            h2, body, rest = read_answer(s, rest)
        except (EOFError, OSError) as e:
            bad.append((at, repr(e)))
            s = raw()
            continue
        if (h1.split(b"\r\n")[0], h2.split(b"\r\n")[0], b"X-Final: 1" in h2, body, rest) != (
                b"HTTP/1.1 100 Continue", b"HTTP/1.1 200 OK", True, b"hello", b""):
            bad.append((at, h1, h2, body, rest))
    s.close()
    c.eq(f"the same cut at each of its {total - 1} inner bytes, on one client connection", [], bad)
    for version, ending in ((b"1.1", "fin"), (b"1.0", "reset")):
        s = raw()
        s.sendall(b"POST /cont-chunk-cut HTTP/%s\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" % version)
        data, how = read_all(s)
        s.close()
        if version == b"1.1":
            ok = (data.startswith(CONT + b"HTTP/1.1 200") and b"\r\n0\r\n" not in data and
                  data.endswith(b"8\r\nwor") and how == ending)
        else:
            ok = (data.startswith(b"HTTP/1.1 200") and CONT not in data and
                  b"Transfer-Encoding" not in data and how == ending)
        c.true(f"HTTP/{version.decode()}: a chunked answer cut inside a chunk ends the connection "
               f"({ending}), its last chunk never sent", ok, (data[-120:], how))


def test_upgrade_pipelined():
    w = Wsbal([("e1", ECHO.url)], workers=1, sections={"listen": {"http": "proxy"}})
    s = socket.create_connection(("127.0.0.1", w.port), timeout=T)
    s.sendall(b"GET /healthCheck HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
              frame(OP_TEXT, b"behind both"))
    h1, body, rest = read_answer(s)
    while b"\r\n\r\n" not in rest:
        rest += s.recv(65536)
    h2, _, rest = rest.partition(b"\r\n\r\n")
    while len(rest) < 2 + len(b"behind both"):
        rest += s.recv(65536)
    s.close()
    w.stop()
    c.eq("an upgrade and a frame pipelined behind a plain GET in one packet",
         (b"HTTP/1.1 200", b"HTTP/1.1 101", b"behind both"),
         (h1[:12], h2[:12], rest[2:2 + len(b"behind both")]))


def test_backend_cuts_and_overruns():
    s = raw()
    s.sendall(b"GET /length-cut HTTP/1.1\r\nHost: x\r\n\r\n")
    data, how = read_all(s)
    s.close()
    c.true("a backend closing inside a Content-Length body: the client's connection ends short "
           "of the length", data.endswith(b"\r\n\r\nonly ten.\n") and b"Content-Length: 100" in data
           and how in ("fin", "reset"), (data[-100:], how))
    for path in ("/more-same", "/more-later"):
        before = B.accepted
        s = raw()
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        h1, body, rest = read_answer(s)
        if path == "/more-later":
            time.sleep(0.4)  # the backend's extra bytes arrive while the connection is kept
        s.sendall(b"GET /plain?after HTTP/1.1\r\nHost: x\r\n\r\n")
        h2, body2, rest = read_answer(s, rest)
        s.close()
        with B.lock:
            conns = [n for n, p in B.requests if p in (path, "/plain?after")]
        c.eq(f"{path}: more than the Content-Length: the client gets the length, its next "
             "request its own answer, on another backend connection",
             (b"hello", b"/plain?after", b"", True),
             (body, body2, rest, len(set(conns[-2:])) == 2 and B.accepted > before))


def test_client_stalls():
    s = raw()
    s.sendall(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some")
    data, how = read_all(s)
    s.close()
    c.true("a client stalling inside its body: 408 after http_timeout, then the close",
           data.startswith(b"HTTP/1.1 408") and how == "fin", (data[:80], how))
    s = raw()
    big = 32 << 20  # more than the kernel's buffers on the way hold
    request = b"POST /no-read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % big
    request += b"x" * big  # built first: the body follows its head without a pause

    def push():
        try:
            s.sendall(request)
        except OSError:
            pass  # wsbal closed after its answer
    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    data, how = read_all(s)
    try:
        s.shutdown(socket.SHUT_RDWR)  # ends the pusher's sendall before its descriptor goes
    except OSError:
        pass
    pusher.join(T)
    s.close()
    c.true("a body the backend stops reading (the client paused by backpressure): 504, then "
           "the close", data.startswith(b"HTTP/1.1 504") and how in ("fin", "reset"),
           (data[:80], how))
    s = raw()
    parts = 8
    s.sendall(b"POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % parts)
    for _ in range(parts):
        time.sleep(0.3)  # 2.4 s in all, each pause under a third of http_timeout
        s.sendall(b"x")
    h, body, _ = read_answer(s)
    s.close()
    c.eq("a body sent slowly but steadily, longer than http_timeout in all: served",
         (b"HTTP/1.1 200", b"/slow-body"), (h[:12], body))


def test_head():
    s = raw()
    s.sendall(b"HEAD /head-length HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /plain?1 HTTP/1.1\r\nHost: x\r\n\r\n")
    h1, _, rest = read_answer(s, bodyless=True)
    h2, body, rest = read_answer(s, rest)
    s.close()
    c.eq("HEAD answered with a Content-Length: the length passes, no body, the next request "
         "gets its own answer", (True, b"/plain?1", b""),
         (b"Content-Length: 1000" in h1, body, rest))
    s = raw()
    s.sendall(b"HEAD /head-body HTTP/1.1\r\nHost: x\r\n\r\n")
    h1, _, rest = read_answer(s, bodyless=True)
    time.sleep(0.2)
    s.sendall(b"GET /plain?2 HTTP/1.1\r\nHost: x\r\n\r\n")
    h2, body, rest = read_answer(s, rest)
    s.close()
    c.eq("a HEAD answer the backend follows with a body: the body never reaches the client",
         (b"HTTP/1.1 200", b"/plain?2", b""), (h1[:12], body, rest))


code = run_tests(c, test_interim_and_final, test_upgrade_pipelined, test_backend_cuts_and_overruns,
                 test_client_stalls, test_head)
W.stop()
ECHO.stop()
B.stop()
sys.exit(code)

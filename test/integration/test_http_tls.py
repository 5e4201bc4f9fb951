"""Plain HTTP to TLS backends (wss:// URLs mean https://): idle backend connections are kept,
with their TLS state, like plain ones.

The backends are Python's http.server over TLS in threads of this process; each counts the TCP
connections it accepted and the ones it closed. One of them closes a connection idle for 0.3 s,
so wsbal meets a kept or pooled TLS connection the backend has ended.
"""
import http.client
import http.server
import json
import os
import ssl
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsbtest import T, Checks, Wsbal, run_tests, self_signed, wait_for  # noqa: E402

c = Checks()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        self.timeout = self.server.idle_timeout  # a connection idle this long is closed
        super().setup()

    def finish(self):
        super().finish()
        with self.server.lock:
            self.server.closed += 1

    def answer(self, body):
        body = json.dumps({"port": self.client_address[1], "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(b"")

    def do_POST(self):
        self.answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))


class TLSBackend(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert, key, idle_timeout=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.idle_timeout = idle_timeout
        self.accepted = self.closed = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"wss://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self):
        sock, addr = self.socket.accept()
        with self.lock:
            self.accepted += 1
        sock.settimeout(T)
        return self.ctx.wrap_socket(sock, server_side=True), addr

    def handle_error(self, request, client_address):
        pass  # an idle connection closed, a client gone

    def stop(self):
        self.shutdown()
        self.server_close()


def request(conn, method="GET", path="/x", body=None):
    conn.request(method, path, body=body)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"{}")


def test_kept_alive(cert, key):
    b = TLSBackend(cert, key)
    w = Wsbal([("t1", b.url)], workers=1, sections={
        "listen": {"http": "proxy"}, "upstream": {"tls_verify": "off"}})
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
    got = [request(conn)[0] for _ in range(5)]
    conn.close()
    c.eq("five requests on one client connection: one TLS backend connection",
         ([200] * 5, 1), (got, b.accepted))
    # The next client takes the pooled connection, TLS state and all.
    ports = set()
    for i in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
        st, seen = request(conn, "POST", body=b"p%d" % i)
        ports.add(seen.get("port"))
        conn.close()
    c.eq("three more client connections (POSTs) reuse the pooled TLS connection",
         (1, 1), (len(ports), b.accepted))
    w.stop()
    b.stop()


def test_backend_closes_idle(cert, key):
    b = TLSBackend(cert, key, idle_timeout=0.3)
    w = Wsbal([("t1", b.url)], workers=1, sections={
        "listen": {"http": "proxy"}, "upstream": {"tls_verify": "off"}})
    got = []
    # Kept by the client connection between its requests, then closed by the backend.
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
    got.append(request(conn)[0])
    wait_for(lambda: b.closed == 1)
    got.append(request(conn)[0])
    conn.close()
    # Pooled after its client left, then closed by the backend: a GET taken without a peek
    # (parked under a second ago) meets the closed connection and is retried on a new one; a
    # POST is sent only on a connection a peek finds still open.
    for method in ("GET", "POST"):
        wait_for(lambda: b.closed == b.accepted)
        conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
        got.append(request(conn, method, body=b"x" if method == "POST" else None)[0])
        conn.close()
    c.eq("a TLS connection the backend closed while idle: every request still answered",
         ([200] * 4, 4), (got, b.accepted))
    log = w.output()
    w.stop()
    b.stop()
    c.true("and no backend was marked failed for it", "failed an HTTP request" not in log,
           log[-2000:])


def test_reload_drops_pooled_tls(cert, key):
    """A reload makes the TLS settings new: a pooled connection made under the old ones is not
    handed to a new client, as nginx's and HAProxy's new workers start with none. Here the
    reload turns verification on, which this self-signed backend fails: 502, not the old
    connection's 200."""
    b = TLSBackend(cert, key)
    sections = {"listen": {"http": "proxy"}, "upstream": {"tls_verify": "off"}}
    w = Wsbal([("t1", b.url)], workers=1, sections=sections)
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
    first = request(conn)[0]
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
    second = request(conn)[0]
    conn.close()
    c.eq("before the reload: 200 twice on one pooled TLS connection", (200, 200, 1),
         (first, second, b.accepted))
    sections["upstream"]["tls_verify"] = "on"
    verdict, lines = w.reload([("t1", b.url)], sections)
    c.true("reload turning tls_verify on", verdict and verdict.startswith("reloaded"),
           repr(lines[-5:]))
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=T)
    conn.request("GET", "/x")
    r = conn.getresponse()
    after = r.status
    r.read()
    conn.close()
    c.eq("after it a new client is not given the old connection: verification fails, 502",
         (502, 2), (after, b.accepted))
    w.stop()
    b.stop()


def main():
    with tempfile.TemporaryDirectory() as d:
        cert, key = self_signed(d)
        return run_tests(c, lambda: test_kept_alive(cert, key),
                         lambda: test_backend_closes_idle(cert, key),
                         lambda: test_reload_drops_pooled_tls(cert, key))


if __name__ == "__main__":
    sys.exit(main())

"""Real client addresses: the PROXY protocol in front of client connections ([listen]
proxy_protocol, plain and TLS), towards backends ([upstream] send_proxy_protocol, health checks
included), and trust_forwarded with trusted networks.

The backend here is a raw-socket peer of this file: it reads an optional PROXY header and the
upgrade request, answers 101, and tells the client in one text frame what it saw.
"""
import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsbtest import (T, Checks, RawClient, Wsbal, close_payload, frame, free_port,  # noqa: E402
                     run_tests, wait_for, OP_CLOSE, OP_TEXT)

c = Checks()
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def parse_proxy(sock):
    """Reads one PROXY header off sock; returns what it says as a dict."""
    first = recv_exact(sock, 5)
    if first == b"PROXY":
        line = first
        while not line.endswith(b"\r\n"):
            line += recv_exact(sock, 1)
        f = line.decode().split()
        if f[1] == "UNKNOWN":
            return {"version": 1, "local": True}
        return {"version": 1, "local": False, "src": f[2], "dst": f[3], "sport": int(f[4]),
                "dport": int(f[5])}
    head = first + recv_exact(sock, 7)
    assert head == SIG, head
    ver_cmd, fam, length = struct.unpack("!BBH", recv_exact(sock, 4))
    body = recv_exact(sock, length)
    if ver_cmd == 0x20:
        return {"version": 2, "local": True}
    af, n = (socket.AF_INET, 4) if fam == 0x11 else (socket.AF_INET6, 16)
    sport, dport = struct.unpack("!HH", body[2 * n:2 * n + 4])
    return {"version": 2, "local": False, "src": socket.inet_ntop(af, body[:n]),
            "dst": socket.inet_ntop(af, body[n:2 * n]), "sport": sport, "dport": dport}


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


class Backend:
    """A WebSocket backend on raw sockets. expect_proxy: every connection starts with a PROXY
    header. Each upgrade is answered with a frame {"id", "proxy", "xff", "path"}; a client
    message "bye" makes it close with 1001 (a failover code); GET /health answers 200."""

    def __init__(self, ident, expect_proxy=False):
        self.ident = ident
        self.expect_proxy = expect_proxy
        self.seen = []  # (path, proxy header or None), one per connection that sent a head
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            conn.settimeout(T)
            proxy = parse_proxy(conn) if self.expect_proxy else None
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
            path = lines[0].split()[1]
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            with self.lock:
                self.seen.append((path, proxy))
            if path == "/health":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            accept = base64.b64encode(hashlib.sha1(
                (hdrs["sec-websocket-key"] + GUID).encode()).digest()).decode()
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            info = json.dumps({"id": self.ident, "proxy": proxy, "path": path,
                               "xff": hdrs.get("x-forwarded-for")}).encode()
            conn.sendall(frame(OP_TEXT, info, mask=False))
            conn.settimeout(None)
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                if unmask_text(data) == b"bye":
                    conn.sendall(frame(OP_CLOSE, close_payload(1001), mask=False))
                    time.sleep(0.1)
                    return
        except (OSError, EOFError, AssertionError, IndexError, KeyError, ValueError):
            pass
        finally:
            conn.close()

    def proxies(self, path):
        with self.lock:
            return [p for q, p in self.seen if q == path]

    def close(self):
        self.sock.close()


def unmask_text(data):
    """The payload of one small masked client frame."""
    if len(data) < 6:
        return b""
    n = data[1] & 0x7F
    key = data[2:6]
    return bytes(b ^ key[i % 4] for i, b in enumerate(data[6:6 + n]))


def v1(src, dst, sport=40000, dport=443):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst, sport=40000, dport=443, tlvs=b""):
    af, fam = (socket.AF_INET6, 0x21) if ":" in src else (socket.AF_INET, 0x11)
    body = socket.inet_pton(af, src) + socket.inet_pton(af, dst) + struct.pack("!HH", sport, dport)
    return SIG + struct.pack("!BBH", 0x21, fam, len(body) + len(tlvs)) + body + tlvs


V2_LOCAL = SIG + b"\x20\x00\x00\x00"


def upgrade_request(path="/", headers=None):
    key = base64.b64encode(os.urandom(16)).decode()
    hdrs = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    hdrs.update(headers or {})
    return (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
            + "\r\n").encode()


def connect(port, source="127.0.0.1"):
    cl = RawClient.__new__(RawClient)
    cl.sock = socket.create_connection(("127.0.0.1", port), timeout=T, source_address=(source, 0))
    cl.buf = b""
    return cl


def session(port, prefix, path="/", headers=None, source="127.0.0.1", bytewise=False):
    """Sends prefix + an upgrade request; returns (client, what the backend saw) after a 101."""
    cl = connect(port, source)
    data = prefix + upgrade_request(path, headers)
    if bytewise:
        cl.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            cl.send(data[i:i + 1])
            time.sleep(0.001)
    else:
        cl.send(data)
    status, _, _ = cl.read_head()
    if status != 101:
        cl.close()
        raise RuntimeError(f"upgrade answered {status}")
    _, _, payload = cl.read_frame()
    return cl, json.loads(payload)


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=T) as r:
        return r.read().decode()


def metric(admin, name):
    for line in http_get(admin, "/metrics").split("\n"):
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def pp_errors(admin, reason):
    return metric(admin, f'wsbal_proxy_protocol_errors_total{{reason="{reason}"}}')


@contextlib.contextmanager
def balancer(backends, sections, workers=1):
    """wsbal in front of these Backends; all of them stop at the end."""
    lb = Wsbal([(b.ident, b.url) for b in backends], workers=workers, sections=sections)
    try:
        yield lb
    finally:
        lb.stop()
        for b in backends:
            b.close()


def test_listener():
    admin = free_port()
    log = tempfile.mkstemp(prefix="wsbal-pp-access-")[1]
    with balancer([Backend("b1")], {
            "listen": {"proxy_protocol": "any", "handshake_timeout": "1s"},
            "wsbal": {"access_log": log}, "admin": {"address": f"127.0.0.1:{admin}"}}) as lb:
        cl, saw = session(lb.port, v1("203.0.113.7", "198.51.100.1"), path="/v1")
        c.eq("v1: the backend sees the announced client", "203.0.113.7", saw["xff"])
        sessions = json.loads(http_get(admin, "/api/v1/sessions"))["sessions"]
        c.eq("v1: the sessions API shows the announced client", ["203.0.113.7"],
             [s["client"] for s in sessions])
        cl.close()
        logged = wait_for(lambda: [json.loads(x) for x in open(log).read().split("\n") if x])
        c.eq("v1: the access log shows the announced client", ["203.0.113.7"],
             [x["client"] for x in logged])

        cl, saw = session(lb.port, v2("192.0.2.55", "198.51.100.1"))
        c.eq("v2 IPv4: announced client", "192.0.2.55", saw["xff"])
        cl.close()
        cl, saw = session(lb.port, v2("2001:db8::5", "2001:db8::1", tlvs=b"\x04\x00\x03abc"))
        c.eq("v2 IPv6 with a TLV: announced client", "2001:db8::5", saw["xff"])
        cl.close()
        cl, saw = session(lb.port, V2_LOCAL)
        c.eq("v2 LOCAL keeps the TCP peer", "127.0.0.1", saw["xff"])
        cl.close()
        cl, saw = session(lb.port, b"PROXY UNKNOWN\r\n")
        c.eq("v1 UNKNOWN keeps the TCP peer", "127.0.0.1", saw["xff"])
        cl.close()
        cl, saw = session(lb.port, v1("198.51.100.77", "198.51.100.1"), bytewise=True)
        c.eq("byte by byte: header and request both arrive whole", "198.51.100.77", saw["xff"])
        cl.close()
        cl, saw = session(lb.port, v2("198.51.100.78", "198.51.100.1"), bytewise=True)
        c.eq("byte by byte, v2", "198.51.100.78", saw["xff"])
        cl.close()

        # Refusals: HTTP without a header gets 400, anything else is closed; each is counted.
        cl = connect(lb.port)
        cl.send(upgrade_request())
        status, _, _ = cl.read_head()
        c.eq("no header before GET: 400", 400, status)
        c.true("and the connection closes", cl.closed_by_peer())
        cl.close()
        bad = [(b"\x16\x03\x01\x00\x05hello", "missing"),
               (b"PROXY TCP4 1.2.3 198.51.100.1 1 2\r\n" + upgrade_request(), "malformed"),
               (b"PROXY UNKNOWN " + b"x" * 120, "too_long"),
               (SIG + b"\x21\x11\xff\xff", "too_long"),
               (SIG + b"\x21\x31\x00\x6c" + b"\x00" * 108, "unsupported"),
               (SIG + b"\x11\x11\x00\x0c", "version")]
        for data, reason in bad:
            cl = connect(lb.port)
            cl.send(data)
            c.eq(f"{reason}: closed without an answer", b"", cl.read_rest())
            cl.close()
        c.eq("missing counted twice (GET and a ClientHello)", 2.0,
             wait_for(lambda: pp_errors(admin, "missing") == 2.0 and 2.0))
        for reason, n in (("malformed", 1), ("too_long", 2), ("unsupported", 1), ("version", 1)):
            c.eq(f"{reason} counted", float(n), pp_errors(admin, reason))
        # Half a header, then nothing: closed at handshake_timeout.
        cl = connect(lb.port)
        cl.send(b"PROXY TCP4 192.0.2")
        c.true("half a header then a stall: closed at the timeout", cl.closed_by_peer(timeout=5))
        cl.close()
        c.eq("timeout counted", 1.0, wait_for(lambda: pp_errors(admin, "timeout")))
        cl = connect(lb.port)
        cl.send(SIG + b"\x21")
        cl.close()
        c.eq("a peer leaving inside the header: truncated", 1.0,
             wait_for(lambda: pp_errors(admin, "truncated")))
        c.true("refusals are logged", lb.wait_line(r"PROXY protocol header refused "
                                                   r"reason=too_long client=127\.0\.0\.1")
               is not None)
        cl, saw = session(lb.port, v1("203.0.113.8", "198.51.100.1"))
        c.eq("still serving after all that", "203.0.113.8", saw["xff"])
        cl.close()
    os.unlink(log)

    # v2 only: a v1 header is the wrong version.
    with balancer([Backend("b1")], {"listen": {"proxy_protocol": "v2"},
                                    "admin": {"address": f"127.0.0.1:{admin}"}}) as lb:
        cl = connect(lb.port)
        cl.send(v1("192.0.2.1", "192.0.2.2"))
        c.eq("v1 on a v2 listener: closed", b"", cl.read_rest())
        c.eq("counted as version", 1.0, wait_for(lambda: pp_errors(admin, "version")))
        cl, saw = session(lb.port, v2("192.0.2.9", "192.0.2.2"))
        c.eq("v2 on a v2 listener", "192.0.2.9", saw["xff"])
        cl.close()


def test_hash_sticks():
    with balancer([Backend("b1"), Backend("b2")], {
            "listen": {"proxy_protocol": "v1"},
            "upstream": {"algorithm": "hash", "hash_key": "ip"}}, workers=2) as lb:
        chosen = {}
        for i in range(12):
            addr = f"198.51.100.{10 + i % 6}"
            cl, saw = session(lb.port, v1(addr, "192.0.2.1", sport=20000 + i))
            chosen.setdefault(addr, set()).add(saw["id"])
            cl.close()
        c.true("hash_key = ip: each announced address sticks to one backend",
               all(len(v) == 1 for v in chosen.values()), repr(chosen))
        c.true("and the addresses spread over both",
               set().union(*chosen.values()) == {"b1", "b2"}, repr(chosen))


def openssl_cert(d):
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tls_session(port, prefix, one_segment):
    """A PROXY header then TLS: with one_segment the header and the ClientHello share a send."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port), timeout=T)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out)
    pending = prefix
    if not one_segment:
        sock.sendall(prefix)
        pending = b""

    def pump():
        nonlocal pending
        data = pending + out.read()
        pending = b""
        if data:
            sock.sendall(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump()
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("closed in the TLS handshake")
            inc.write(chunk)
    tls.write(upgrade_request())
    pump()
    buf = b""
    while b"\r\n\r\n" not in buf or len(buf.split(b"\r\n\r\n", 1)[1]) < 2:
        try:
            buf += tls.read(65536)
        except ssl.SSLWantReadError:
            pump()
            inc.write(sock.recv(65536))
    head, rest = buf.split(b"\r\n\r\n", 1)
    while len(rest) < 2 or len(rest) < 2 + rest[1]:
        try:
            rest += tls.read(65536)
        except ssl.SSLWantReadError:
            inc.write(sock.recv(65536))
    sock.close()
    return int(head.split()[1]), json.loads(rest[2:2 + rest[1]])


def test_tls_listener():
    with tempfile.TemporaryDirectory() as d:
        cert, key = openssl_cert(d)
        with balancer([Backend("b1")], {
                "listen": {"proxy_protocol": "any", "tls_cert": cert, "tls_key": key}}) as lb:
            status, saw = tls_session(lb.port, v2("192.0.2.200", "192.0.2.1"), one_segment=True)
            c.eq("TLS: header and ClientHello in one segment", (101, "192.0.2.200"),
                 (status, saw["xff"]))
            status, saw = tls_session(lb.port, v1("2001:db8::20", "2001:db8::1"), one_segment=False)
            c.eq("TLS: header, then the ClientHello", (101, "2001:db8::20"), (status, saw["xff"]))
            cl = connect(lb.port)
            cl.send(upgrade_request())
            status, _, _ = cl.read_head()
            c.eq("TLS listener, plain GET without a header: a plain-text 400", 400, status)
            cl.close()


def test_send_proxy_protocol():
    for version in ("v1", "v2"):
        b1, b2 = Backend("b1", expect_proxy=True), Backend("b2", expect_proxy=True)
        with balancer([b1, b2], {
                "listen": {"proxy_protocol": "v2"},
                "upstream": {"send_proxy_protocol": version, "algorithm": "round_robin",
                             "health_check": "http", "health_path": "/health",
                             "health_interval": "200ms"}}) as lb:
            cl, saw = session(lb.port, v2("203.0.113.50", "192.0.2.1", sport=50505, dport=8443))
            p = saw["proxy"]
            c.eq(f"send {version}: the backend gets the real client and where it connected",
                 (int(version[1]), False, "203.0.113.50", 50505, "192.0.2.1", 8443),
                 (p["version"], p["local"], p["src"], p["sport"], p["dst"], p["dport"]))
            first = saw["id"]
            cl.send(frame(OP_TEXT, b"bye"))
            # The failover's new connection carries the header too; its 101 is not the client's.
            other = b2 if first == "b1" else b1
            got = wait_for(lambda: other.proxies("/"))
            c.eq(f"send {version}: after a failover, the same header to the next backend",
                 [(int(version[1]), "203.0.113.50", 50505)],
                 [(x["version"], x["src"], x["sport"]) for x in got])
            cl.close()
            # Without a PROXY header in front: the TCP peer and the listener's address.
            lb2 = Wsbal([("b1", b1.url)], workers=1, sections={
                "upstream": {"send_proxy_protocol": version}})
            try:
                cl = connect(lb2.port)
                cl.send(upgrade_request(path="/direct"))
                status, _, _ = cl.read_head()
                _, _, payload = cl.read_frame()
                p = json.loads(payload)["proxy"]
                c.eq(f"send {version} from a plain listener: peer and local address",
                     (101, "127.0.0.1", cl.sock.getsockname()[1], "127.0.0.1", lb2.port),
                     (status, p["src"], p["sport"], p["dst"], p["dport"]))
                cl.close()
            finally:
                lb2.stop()
            checks = wait_for(lambda: len(b1.proxies("/health")) >= 2 and b1.proxies("/health"))
            c.true(f"send {version}: health checks send a LOCAL header",
                   checks and all(x["local"] and x["version"] == int(version[1]) for x in checks),
                   repr(checks))
            c.true(f"send {version}: the backend stays up under checks with a header",
                   lb.wait_line(r"backend b1.* (down|failed)", timeout=0.5) is None)


def test_trusted_networks():
    admin = free_port()
    with balancer([Backend("b1")], {
            "listen": {"trust_forwarded": "127.0.0.2, 10.0.0.0/8, fd00::/8"},
            "admin": {"address": f"127.0.0.1:{admin}"}}) as lb:
        cl, saw = session(lb.port, b"", headers={"X-Forwarded-For": "198.51.100.9, 10.1.1.1"},
                          source="127.0.0.2")
        c.eq("trusted peer: its chain is kept and extended", "198.51.100.9, 10.1.1.1, 127.0.0.2",
             saw["xff"])
        sessions = json.loads(http_get(admin, "/api/v1/sessions"))["sessions"]
        c.eq("trusted peer: the real client is the rightmost untrusted address",
             ["198.51.100.9"], [s["client"] for s in sessions])
        cl.close()
        cl, saw = session(lb.port, b"", headers={"X-Forwarded-For": "198.51.100.9"},
                          source="127.0.0.3")
        c.eq("untrusted peer: its X-Forwarded-For is replaced", "127.0.0.3", saw["xff"])
        sessions = json.loads(http_get(admin, "/api/v1/sessions"))["sessions"]
        c.eq("untrusted peer: it is the client", ["127.0.0.3"], [s["client"] for s in sessions])
        cl.close()
        cl, saw = session(lb.port, b"", headers={"X-Forwarded-For": "198.51.100.9, <junk>, 10.1.1.1"},
                          source="127.0.0.2")
        sessions = json.loads(http_get(admin, "/api/v1/sessions"))["sessions"]
        c.eq("garbage in the chain: the peer is the client", ["127.0.0.2"],
             [s["client"] for s in sessions])
        cl.close()
    # Behind a PROXY-protocol balancer: the announced address is the peer the rule starts from.
    with balancer([Backend("b1")], {
            "listen": {"trust_forwarded": "10.0.0.0/8", "proxy_protocol": "v1"}}) as lb:
        cl, saw = session(lb.port, v1("10.2.3.4", "192.0.2.1"),
                          headers={"X-Forwarded-For": "203.0.113.33"})
        c.eq("announced peer trusted: chain extended by it", "203.0.113.33, 10.2.3.4", saw["xff"])
        cl.close()
        cl, saw = session(lb.port, v1("192.0.2.44", "192.0.2.1"),
                          headers={"X-Forwarded-For": "203.0.113.33"})
        c.eq("announced peer untrusted: chain dropped", "192.0.2.44", saw["xff"])
        cl.close()


if __name__ == "__main__":
    sys.exit(run_tests(c, test_listener, test_hash_sticks, test_tls_listener,
                       test_send_proxy_protocol, test_trusted_networks))

"""The error log: log_format = text|json in master and workers, switched by a reload; hostile
and over-long messages still one valid JSON object a line; <N> priorities when stderr is the
journal (JOURNAL_STREAM naming stderr's own file), none when it names another. Rejected upgrades
and failed TLS handshakes as lines with fields, hostile input escaped, a flood held to
log_rate_limit with the count of what was suppressed; the access log's start line and its new
fields over ws and wss."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.request

from wsbtest import (OP_TEXT, SANITIZER_MARKERS, T, WSBAL, Checks, Echo, Peer, RawClient, Wsbal,
                     close_payload, frame, free_port, run_tests, self_signed, wait_for)

c = Checks()
TEXT_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (master|worker \d+) "
                     r"(error|warn|info|debug): ")
TS_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse_json_line(line):
    """The object of one line, or None when it is not exactly one JSON object of the format."""
    try:
        o = json.loads(line)
    except ValueError:
        return None
    if not isinstance(o, dict) or not TS_RX.match(o.get("ts", "")):
        return None
    if o.get("level") not in ("error", "warn", "info", "debug") or "msg" not in o:
        return None
    if o.get("role") == "master" and "worker" not in o:
        return o
    if o.get("role") == "worker" and isinstance(o.get("worker"), int):
        return o
    return None


def reopen_lines(w):
    """Sends SIGUSR1, which makes the master and each worker log a line; returns the lines since."""
    with w.cond:
        mark = len(w.lines)
    w.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: sum("access log reopened" in l for l in w.lines[mark:]) >= w.workers)
    with w.cond:
        return w.lines[mark:]


def test_reload_switches_format(echo):
    w = Wsbal([("a", echo.url)], workers=2)
    try:
        start = w.output().split("\n")
        c.true("starts in text", all(TEXT_RX.match(l) for l in start if l), "\n".join(start))
        verdict, since = w.reload([("a", echo.url)], {"wsbal": {"log_format": "json"}})
        c.true("reload to json", verdict is not None and verdict.startswith("reloaded"), verdict)
        objs = [parse_json_line(l) for l in since]
        c.true("after the reload every master line is JSON", since and all(objs), "\n".join(since))
        # Workers take it too: SIGUSR1 makes each log a line (an idle worker reads the reload then).
        lines = reopen_lines(w)
        objs = [parse_json_line(l) for l in lines]
        c.true("worker lines are JSON", lines and all(objs), "\n".join(lines))
        workers = sorted(o["worker"] for o in objs
                         if o and o["role"] == "worker" and "reopened" in o["msg"])
        c.eq("one reopen line from each worker, numbered", [0, 1], workers)
        # And back to text without a restart.
        verdict, since = w.reload([("a", echo.url)], {"wsbal": {"log_format": "text"}})
        c.true("back to text", since and all(TEXT_RX.match(l) for l in since), "\n".join(since))
        lines = reopen_lines(w)
        c.true("worker lines text again", lines and all(TEXT_RX.match(l) for l in lines),
               "\n".join(lines))
    finally:
        c.eq("wsbal stops with 0", 0, w.stop())


class RawWsbal:
    """wsbal with its stderr in a file: the test reads the bytes as written."""

    def __init__(self, config, env=None, stderr_path=None):
        self.out_path = stderr_path
        self.out = open(stderr_path, "wb")
        e = {k: v for k, v in os.environ.items() if not k.startswith("WSBAL_")}
        e.pop("JOURNAL_STREAM", None)
        e.update(env or {})
        self.proc = subprocess.Popen([WSBAL.encode(), b"-c", config], stdout=subprocess.DEVNULL,
                                     stderr=self.out, env=e)

    def data(self):
        with open(self.out_path, "rb") as f:
            return f.read()

    def wait(self, what, pred):
        """what names it for the reader; returns whether pred(output) came true in time."""
        return wait_for(lambda: pred(self.data()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(T)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.out.close()
        found = [l for l in self.data().split(b"\n") if any(m.encode() in l for m in
                                                           SANITIZER_MARKERS)]
        c.true("no sanitizer reports", not found, b"\n".join(found[:20]))
        return rc


def config_text(echo, fmt, port):
    return (f"[wsbal]\nworkers = 2\nlog_format = {fmt}\n[listen]\naddress = 127.0.0.1:{port}\n"
            f"[admin]\naddress = off\n[upstream]\nhealth_check = off\n"
            f"[backend:a]\nurl = {echo.url}\n").encode()


def reload_at(echo, path, tmp):
    """Starts a JSON-logging wsbal on the configuration at path (bytes), reloads it once, stops
    it; returns its stderr's lines (bytes), checking it ended with a newline."""
    with open(path, "wb") as f:
        f.write(config_text(echo, "json", free_port()))
    w = RawWsbal(path, stderr_path=os.path.join(tmp, "err"))
    try:
        c.true("started", w.wait("listening", lambda d: b"listening on" in d), w.data())
        w.proc.send_signal(signal.SIGHUP)
        c.true("reloaded", w.wait("reloaded", lambda d: b"reloaded" in d), w.data())
    finally:
        c.eq("stops with 0", 0, w.stop())
    lines = w.data().split(b"\n")
    c.eq("ends with a newline", b"", lines[-1])
    return lines[:-1]


def test_hostile_message(echo):
    """The configuration's path is in the "reloaded PATH" line: give it a quote, a backslash, a
    newline, control bytes and bytes that are not UTF-8."""
    tmp = tempfile.mkdtemp(prefix="wsbal-log-")
    try:
        path = os.path.join(tmp.encode(), b'a "q" \\ \n\x01\x1b[31m \xff\xc3 .ini')
        lines = reload_at(echo, path, tmp)
        objs = [parse_json_line(l.decode("utf-8")) for l in lines]
        c.true("every line one JSON object", lines and all(objs), lines)
        msg = [o["msg"] for o in objs if o and o["msg"].startswith("reloaded")]
        want = "reloaded " + tmp + '/a "q" \\ \n\x01\x1b[31m \ufffd\ufffd .ini: generation'
        c.true("the message is whole, bad bytes as U+FFFD", msg and msg[0].startswith(want),
               repr(msg))
    finally:
        shutil.rmtree(tmp)


def test_long_message(echo):
    """A path of about 3000 bytes of 2-byte characters: the line is cut where a character starts,
    says how much went, and stays valid JSON (and UTF-8)."""
    tmp = tempfile.mkdtemp(prefix="wsbal-log-")
    try:
        d = tmp
        for _ in range(12):
            d = os.path.join(d, "é" * 120)
        os.makedirs(d)
        path = os.path.join(d, "x.ini").encode()
        lines = reload_at(echo, path, tmp)
        line = [l for l in lines if b"reloaded" in l][0]
        o = parse_json_line(line.decode("utf-8"))  # strict: a cut character would raise
        c.true("the long line is one JSON object", o is not None, line[:200])
        m = re.search(r" \[truncated (\d+) bytes\]$", o["msg"] if o else "")
        c.true("it ends with the marker", m is not None, o["msg"][-80:] if o else "")
        full = len(("reloaded " + path.decode() + ": generation 2, 1 backend").encode())
        kept = len(o["msg"].encode()) - len(m.group(0)) if m else 0
        c.true("kept at most 2048 bytes, the marker counts the rest",
               m is not None and kept <= 2048 and kept + int(m.group(1)) == full,
               f"kept {kept}, full {full}, marker {m.group(0) if m else None}")
        c.true("lines stay bounded", max(len(l) for l in lines) < 2300,
               str(max(len(l) for l in lines)))
    finally:
        shutil.rmtree(tmp)


def test_journal(echo):
    """JOURNAL_STREAM naming the file stderr is: every line, master's and workers', starts with
    its priority; naming another file: none (a child whose stderr was redirected)."""
    tmp = tempfile.mkdtemp(prefix="wsbal-log-")
    try:
        for fmt in ("text", "json"):
            for right in (True, False):
                cfg = os.path.join(tmp, "c.ini")
                with open(cfg, "wb") as f:
                    f.write(config_text(echo, fmt, free_port()))
                err = os.path.join(tmp, f"err-{fmt}-{right}")
                open(err, "wb").close()
                st = os.stat(err)
                ino = st.st_ino if right else st.st_ino + 1
                w = RawWsbal(cfg.encode(), env={"JOURNAL_STREAM": f"{st.st_dev}:{ino}"},
                             stderr_path=err)
                try:
                    c.true("started", w.wait("listening", lambda d: b"listening on" in d), w.data())
                    w.proc.send_signal(signal.SIGUSR1)
                    w.wait("reopen lines", lambda d: d.count(b"reopened") >= 2)
                finally:
                    c.eq("stops with 0", 0, w.stop())
                lines = w.data().decode().split("\n")[:-1]
                what = f"{fmt}, JOURNAL_STREAM {'matching' if right else 'another file'}"
                if right:
                    ok = all(re.match(r"<[3467]>", l) for l in lines)
                    body = [l[3:] for l in lines]
                    prios = {l[:3] for l in lines if "reopened" in l or "listening" in l}
                    c.eq(f"{what}: info lines are <6>", {"<6>"}, prios)
                    c.true(f"{what}: the stop's info line too", any(
                        l.startswith("<6>") and "stopping" in l for l in lines), "\n".join(lines))
                else:
                    ok = not any(l.startswith("<") for l in lines)
                    body = lines
                c.true(f"{what}: {'every' if right else 'no'} line prefixed", lines and ok,
                       "\n".join(lines))
                if fmt == "json":
                    c.true(f"{what}: JSON after the prefix",
                           all(parse_json_line(l) for l in body), "\n".join(body))
                    c.true(f"{what}: worker lines there", any(
                        (parse_json_line(l) or {}).get("role") == "worker" for l in body))
                else:
                    c.true(f"{what}: text after the prefix", all(TEXT_RX.match(l) for l in body),
                           "\n".join(body))
    finally:
        shutil.rmtree(tmp)


# ---- rejected upgrades, failed TLS handshakes, the rate limit, the access log ----

def since(w, mark):
    with w.cond:
        return w.lines[mark:]


def mark_of(w):
    with w.cond:
        return len(w.lines)


def exchange(port, data, close_first=False):
    """Sends data on a fresh connection and returns what comes back until wsbal closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=T) as sock:
        if data:
            sock.sendall(data)
        if close_first:
            return b""
        out = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return out
                out += chunk
        except (ConnectionResetError, socket.timeout):
            return out


def upgrade(path=b"/", headers=(), drop=()):
    """An upgrade request's head, as bytes; headers (name, value bytes) added, drop left out."""
    hdrs = [(b"Host", b"127.0.0.1"), (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"Sec-WebSocket-Version", b"13")]
    hdrs = [h for h in hdrs if h[0] not in drop] + list(headers)
    return b"GET " + path + b" HTTP/1.1\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in hdrs) \
        + b"\r\n"


def check_lines_safe(lines, what):
    """Every line one JSON object of the format, no control character in it."""
    bad = [l for l in lines if parse_json_line(l) is None or any(ord(ch) < 0x20 for ch in l)]
    c.true(f"{what}: every line one JSON object, no control character", lines and not bad,
           "\n".join(repr(l) for l in bad[:5]))
    return [parse_json_line(l) for l in lines if parse_json_line(l)]


HOSTILE_UA = b'ua "quoted" \\ back {"level":"error"} \xff\xfe'


def test_rejected_upgrades():
    dead = free_port()  # nothing listens: the upgrade that passes every check gets 502
    w = Wsbal([("dead", f"ws://127.0.0.1:{dead}")], workers=1, sections={
        "wsbal": {"log_format": "json"},
        "listen": {"path": "/ws/", "allowed_origins": "https://ok.example",
                   "handshake_timeout": "1s", "max_header_bytes": "1k"}})
    try:
        mark = mark_of(w)
        answers = {
            404: exchange(w.port, upgrade(b"/other", [(b"User-Agent", HOSTILE_UA)])),
            403: exchange(w.port, upgrade(b"/ws/x", [(b"Origin", b"https://evil.example")])),
            426: exchange(w.port, upgrade(b"/ws/", drop=(b"Upgrade",))),
            431: exchange(w.port, upgrade(b"/ws/", [(b"User-Agent", b"x" * 2000)])),
            502: exchange(w.port, upgrade(b"/ws/ok", [(b"Origin", b"https://ok.example")])),
        }
        for status, got in answers.items():
            c.true(f"answered {status}", got.startswith(f"HTTP/1.1 {status} ".encode()), got[:80])
        # Bytes a request line may not hold, a bare LF inside a header, a TLS record: 400s.
        for raw in (b"GET /ws/a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
                    b'GET /ws/ HTTP/1.1\r\nUser-Agent: a\n{"fake":"line"}\r\n\r\n',
                    b"\x16\x03\x01\x00\x05\x01\x1b[2J\r\n\r\n"):
            got = exchange(w.port, raw)
            c.true(f"400 for {raw[:24]!r}", got.startswith(b"HTTP/1.1 400 "), got[:80])
        # Connections that end without a whole request: said, unless nothing came at all.
        partial = b"GET /ws/ HTTP/1.1\r\nHost: a\r\n"
        exchange(w.port, partial, close_first=True)
        exchange(w.port, b"", close_first=True)
        exchange(w.port, partial)  # handshake_timeout: wsbal closes it after 1 s
        # 8 rejected upgrades, the closed line and the timeout line: the last may still be in
        # the pipe from wsbal's stderr when its connection's close has reached us.
        want = 10
        wait_for(lambda: sum('"msg":"upgrade rejected' in l or "request head" in l
                             for l in since(w, mark)) >= want)
        objs = check_lines_safe(since(w, mark), "rejected upgrades")
        rej = [o for o in objs if o["msg"] == "upgrade rejected"]
        by = {o.get("status"): o for o in rej}
        c.eq("one line per rejected upgrade", 8, len(rej))
        o = by.get(404, {})
        c.eq("404: fields", ("not_found", "path not served", "127.0.0.1", "GET", "/other",
                             "127.0.0.1", 'ua "quoted" \\ back {"level":"error"} \ufffd\ufffd'),
             tuple(o.get(k) for k in ("reason", "why", "client", "method", "path", "host",
                                      "user_agent")))
        c.true("404: the session id", re.fullmatch(r"[0-9a-f]{16}", o.get("session", "")), o)
        c.eq("403", ("forbidden", "origin not allowed"),
             (by.get(403, {}).get("reason"), by.get(403, {}).get("why")))
        c.eq("426", "bad_request", by.get(426, {}).get("reason"))
        c.eq("431", "HTTP head larger than the limit", by.get(431, {}).get("why"))
        o = by.get(502, {})
        c.eq("502: the backend's failure", ("backend_error", "Connection refused", 1, "/ws/ok"),
             (o.get("reason"), o.get("why"), o.get("attempts"), o.get("path")))
        bad = [o for o in rej if o.get("status") == 400]
        c.eq("three 400s", 3, len(bad))
        c.true("the TLS record's bytes as its method, escaped",
               any(o.get("method", "").startswith("\x16\x03\x01") for o in bad), bad)
        closed = [o for o in objs if o["msg"] == "connection closed before a full request head"]
        c.eq("one closed line (the silent connection has none)", [len(partial)],
             [o.get("bytes") for o in closed])
        slow = [o for o in objs if o["msg"] == "no full request head within handshake_timeout"]
        c.eq("one timeout line", [("timeout", len(partial))],
             [(o.get("reason"), o.get("bytes")) for o in slow])

        # The same hostile request in text: one line, the value quoted and escaped.
        verdict, _ = w.reload([("dead", f"ws://127.0.0.1:{dead}")], {
            "wsbal": {"log_format": "text"}, "listen": {"path": "/ws/"}})
        c.true("reloaded to text", verdict and verdict.startswith("reloaded"), verdict)
        mark = mark_of(w)
        exchange(w.port, upgrade(b"/other", [(b"User-Agent", HOSTILE_UA)]))
        m = w.wait_line(r"upgrade rejected .*", start=mark)
        line = m.group(0) if m else ""
        c.true("text: fields as key=value, the user agent quoted and escaped",
               'status=404 reason=not_found why="path not served" client=127.0.0.1' in line and
               'user_agent="ua \\"quoted\\" \\\\ back {\\"level\\":\\"error\\"} \\xff\\xfe"' in line,
               line)
    finally:
        c.eq("wsbal stops with 0", 0, w.stop())


def metrics_text(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=T) as r:
        return r.read().decode()


def suppressed_metric(port, kind):
    m = re.search(r'wsbal_log_lines_suppressed_total\{kind="' + kind + r'"\} (\d+)',
                  metrics_text(port))
    return int(m.group(1)) if m else None


def test_flood():
    """500 bad requests as fast as one client sends them, log_rate_limit = 2/s (a burst of 10):
    a few lines, each dropped one counted, and the next line that passes says how many went."""
    admin = free_port()
    w = Wsbal([("a", "ws://127.0.0.1:9")], workers=1, sections={
        "wsbal": {"log_format": "json", "log_rate_limit": "2/s"},
        "admin": {"address": f"127.0.0.1:{admin}"}})
    try:
        mark = mark_of(w)
        started = time.monotonic()
        total = 500
        for _ in range(total):
            exchange(w.port, b"BAD\r\n\r\n")
        elapsed = time.monotonic() - started

        def rejected():
            objs = (parse_json_line(l) for l in since(w, mark))
            return [o for o in objs if o and o["msg"].startswith("upgrade rejected")]
        during = len(rejected())
        c.true(f"at most the burst and the rate's lines ({elapsed:.1f} s)",
               0 < during <= 10 + 2 * (elapsed + 1), str(during))
        # One more now and then until a line passes: it carries the count. Each request's fate
        # is waited for (counted as dropped, or its line in the log) before the next is sent,
        # so no request is dropped after the line that passes without that line counting it.
        def one_more():
            before, seen = suppressed_metric(admin, "rejected"), len(rejected())
            exchange(w.port, b"BAD\r\n\r\n")
            wait_for(lambda: suppressed_metric(admin, "rejected") != before or
                     len(rejected()) > seen)
            return any("suppressed" in o for o in rejected()[during:])
        c.true("a line passes again, with the count", wait_for(one_more, step=0.1))
        check_lines_safe(since(w, mark), "flood")
        objs = rejected()
        dropped = sum(o.get("suppressed", 0) for o in objs)
        last = [o for o in objs if "suppressed" in o][-1]
        c.true("its message says it", re.fullmatch(
            r"upgrade rejected \(\d+ similar lines suppressed\)", last["msg"]), last["msg"])
        metric = suppressed_metric(admin, "rejected")
        c.eq("wsbal_log_lines_suppressed_total{kind=rejected} counts every dropped line", dropped,
             metric)
        c.true("nearly every line of the flood was dropped", dropped >= total - during - 10,
               f"{dropped} of {total}")
        c.eq("no TLS line suppressed", 0, suppressed_metric(admin, "tls"))
    finally:
        c.eq("wsbal stops with 0", 0, w.stop())


def client_hello(sni, ciphers=(0x003B,)):
    """A TLS 1.2 ClientHello naming sni (any bytes but NUL) and offering only ciphers
    (TLS_RSA_WITH_NULL_SHA256 by default, which no server enables)."""
    names = b"\x00" + struct.pack("!H", len(sni)) + sni
    ext = struct.pack("!HHH", 0, len(names) + 2, len(names)) + names
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack("!H", 2 * len(ciphers)) +
            b"".join(struct.pack("!H", x) for x in ciphers) + b"\x01\x00" +
            struct.pack("!H", len(ext)) + ext)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


HOSTILE_SNI = b'evil"\\\x01\x1b[31m\xff.example'


def test_tls_failures(echo, tmp):
    pem, key = self_signed(tmp)
    w = Wsbal([("a", echo.url)], workers=1, sections={
        "wsbal": {"log_format": "json"},
        "listen": {"tls_cert": pem, "tls_key": key, "handshake_timeout": "1s"}})
    try:
        mark = mark_of(w)
        exchange(w.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to wss
        exchange(w.port, client_hello(HOSTILE_SNI))
        exchange(w.port, b"", close_first=True)  # a TCP health check: no line
        exchange(w.port, b"\x16\x03\x01\x00")  # a record header, then silence: timeout
        wait_for(lambda: sum("TLS handshake failed" in l for l in since(w, mark)) >= 3)
        objs = [o for o in check_lines_safe(since(w, mark), "TLS failures")
                if o["msg"] == "TLS handshake failed"]
        got = sorted((o.get("reason"), o.get("detail", "")) for o in objs)
        c.eq("three lines: plain HTTP, no shared cipher, timeout",
             [("http_request", "http request"), ("no_shared_cipher", "no shared cipher"),
              ("timeout", "")], got)
        c.true("client side, client address",
               all(o.get("side") == "client" and o.get("client") == "127.0.0.1" for o in objs),
               objs)
        sni = [o.get("sni") for o in objs if o.get("reason") == "no_shared_cipher"]
        c.eq("the hostile SNI, escaped", ['evil"\\\x01\x1b[31m\ufffd.example'], sni)
    finally:
        c.eq("wsbal stops with 0", 0, w.stop())


SPEC_KEYS = {"ts", "session", "client", "path", "backends", "duration_ms", "messages_in",
             "messages_out", "bytes_in", "bytes_out", "failovers", "close_code", "closed_by"}


def access_lines(path, n):
    def read():
        try:
            with open(path, "rb") as f:
                return f.read().split(b"\n")[:-1]
        except FileNotFoundError:
            return []
    wait_for(lambda: len(read()) >= n)
    return [json.loads(l) for l in read()]


def one_session(lb, access, tls_ctx=None):
    """A session with a user agent and a subprotocol: one message, then the client closes 1001
    with a reason. Returns the access log's lines once the end line is there."""
    cl = RawClient(lb.port)
    if tls_ctx is not None:
        cl.sock = tls_ctx.wrap_socket(cl.sock, server_hostname="localhost")
    cl.request("/chat?room=1", {"Host": "example.test", "User-Agent": "tester/1.0 (\"x\")",
                                "Sec-WebSocket-Protocol": "chat"})
    status, hdrs, _ = cl.read_head()
    c.eq("101", 101, status)
    cl.send(frame(OP_TEXT, b"hello"))
    c.eq("echoed", b"hello", cl.read_frame()[2])
    cl.send(frame(0x8, close_payload(1001, b"bye now")))
    cl.read_frame()
    cl.close()
    return wait_for(lambda: any(o.get("event") == "end" for o in access_lines(access, 1))) and \
        access_lines(access, 1)


def check_new_fields(o, what, tls):
    c.eq(f"{what}: host, user agent, subprotocol",
         ("example.test", 'tester/1.0 ("x")', "chat"),
         (o.get("host"), o.get("user_agent"), o.get("subprotocol")))
    c.eq(f"{what}: TLS version and SNI", ("TLSv1.3", "localhost") if tls else ("", ""),
         (o.get("tls_version"), o.get("sni")))
    c.true(f"{what}: connect_ms and worker", isinstance(o.get("connect_ms"), int) and
           o.get("worker") == 0, o)
    c.eq(f"{what}: the session's pool", "default", o.get("pool"))


def test_access_log(tmp):
    peer = Peer("p", protocol="chat")
    pem, key = self_signed(tmp)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        for tls in (False, True):
            what = "wss" if tls else "ws"
            access = os.path.join(tmp, f"access-{what}.log")
            listen = {"tls_cert": pem, "tls_key": key} if tls else {}
            # The start line over ws only: wss shows the default (off) writes none.
            lb = Wsbal([("p", peer.url)], workers=1, sections={
                "wsbal": {"access_log": access, "access_log_start": "off" if tls else "on"},
                "listen": listen})
            try:
                lines = one_session(lb, access, ctx if tls else None) or []
            finally:
                c.eq("wsbal stops with 0", 0, lb.stop())
            events = [o.get("event") for o in lines]
            c.eq(f"{what}: lines", ["end"] if tls else ["start", "end"], events)
            end = lines[-1] if lines else {}
            c.true(f"{what}: SPEC's keys all there", SPEC_KEYS <= set(end), sorted(end))
            c.eq(f"{what}: a WebSocket session's line", "ws", end.get("type"))
            c.eq(f"{what}: the close", (1001, "going away", "bye now", "client", ["p"]),
                 tuple(end.get(k) for k in ("close_code", "close_text", "close_reason",
                                            "closed_by", "backends")))
            check_new_fields(end, f"{what} end", tls)
            if not tls and len(lines) == 2:
                start = lines[0]
                c.eq("start: session, path, backend", (end["session"], "/chat?room=1", "p"),
                     (start.get("session"), start.get("path"), start.get("backend")))
                check_new_fields(start, "ws start", tls)
                c.true("start: no end fields", "duration_ms" not in start, start)
    finally:
        peer.stop()


def main():
    echo = Echo("e1")
    tmp = tempfile.mkdtemp(prefix="wsbal-log-")
    try:
        return run_tests(c, lambda: test_reload_switches_format(echo),
                         lambda: test_hostile_message(echo), lambda: test_long_message(echo),
                         lambda: test_journal(echo), test_rejected_upgrades, test_flood,
                         lambda: test_tls_failures(echo, tmp), lambda: test_access_log(tmp))
    finally:
        echo.stop()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    raise SystemExit(main())

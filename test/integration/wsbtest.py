"""Shared pieces of the integration tests: processes on 127.0.0.1, raw WebSocket frames, checks.

Run with Debian's python3 (python3-websockets). Every wait has a deadline, so a broken program
makes a test fail, never hang.
"""
import asyncio
import base64
import os
import random
import re
import select
import socket
import struct
import subprocess
import tempfile
import threading
import time

WSBAL = os.environ.get("WSBAL", "build/wsbal")
ECHO = os.environ.get("WSBAL_ECHO", "build/wsbal-echo")
T = 10  # seconds any single wait may take

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Checks:
    """Counts checks; a failure prints what was expected and what came."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def eq(self, name, expected, got):
        if expected == got:
            self.passed += 1
            return True
        self.failed += 1
        exp, came = repr(expected), repr(got)
        print(f"FAIL {name}: expected {exp[:300]}, got {came[:300]}", flush=True)
        return False

    def true(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            return True
        self.failed += 1
        print(f"FAIL {name}: {detail}", flush=True)
        return False

    def summary(self):
        """The closing line test runners read; returns the exit status."""
        findings = sanitizer_findings()
        self.true("no sanitizer reports in any process", not findings, "\n".join(findings[:20]))
        crashes = [line for p in ALL_PROCESSES for line in p.output().split("\n")
                   if re.search(r"worker \d+ \(pid \d+\) (killed by signal|exited with status [1-9])",
                                line)]
        self.true("no worker crashed", not crashes, "\n".join(crashes[:20]))
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def tcp_table(v6=True):
    """{inode: (state, local port, remote port)} of this machine's TCP sockets, from /proc/net
    (IPv4, and IPv6 unless v6 is False); the state is the kernel's hex code ("01" established,
    "0A" listening)."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6") if v6 else ("/proc/net/tcp",):
        with open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                out[int(fields[9])] = (fields[3], int(fields[1].rsplit(":", 1)[1], 16),
                                       int(fields[2].rsplit(":", 1)[1], 16))
    return out


def socket_fds(pid):
    """{inode: descriptor number} of the sockets process pid holds."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = re.match(r"socket:\[(\d+)\]$", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if m:
            out[int(m.group(1))] = int(fd)
    return out


def free_port():
    """A free port below the kernel's ephemeral range, for wsbal to bind by number a moment later.

    A port the kernel hands out for bind(0) comes from the range it also gives every outgoing
    connection its local port from: with many test clients and backends connecting, one of them
    could take the port before wsbal binds it ("Address already in use"). Below that range only
    another test choosing by number can, and picks are random over thousands of ports."""
    low = _ephemeral_low()
    start = 10000 if low > 12000 else 1024
    for _ in range(200):
        port = random.randrange(start, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def admin_call(port, method, path, body=None, timeout=T):
    """(status, body bytes) of one request to an admin server on 127.0.0.1; body, when given,
    goes as JSON. Tests written since issue 17 share it rather than each having its own."""
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def admin_status(port):
    """GET /api/v1/status of the admin server on 127.0.0.1:port, parsed, or None when not 200."""
    import json
    code, body = admin_call(port, "GET", "/api/v1/status")
    return json.loads(body) if code == 200 else None


def metric_value(port, name):
    """The value of one unlabelled (or fully labelled, as written) integer sample of /metrics,
    or None when it is not there."""
    code, body = admin_call(port, "GET", "/metrics")
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\d+)$", body, re.M)
    return int(m.group(1)) if code == 200 and m else None


def wait_for(what, timeout=T, step=0.05):
    """Polls what() until it is true or the deadline passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = what()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)

def self_signed(tmp):
    """A self-signed certificate for localhost made by the openssl CLI in tmp: (pem, key)."""
    key, pem = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", pem, "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return pem, key


ALL_PROCESSES = []
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def sanitizer_findings():
    """Output lines of every process started so far in which a sanitizer reported a problem."""
    found = []
    for p in ALL_PROCESSES:
        found += [f"{os.path.basename(p.argv[0])}: {line}" for line in p.output().split("\n")
                  if any(m in line for m in SANITIZER_MARKERS)]
    return found


class Process:
    """A child process whose output lines are collected so tests can wait for one."""

    def __init__(self, argv, env=None):
        ALL_PROCESSES.append(self)
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern, timeout=T, start=0):
        """Waits for an output line matching pattern (from line index start); returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and i >= len(self.lines)):
                    return None
                self.cond.wait(min(left, 0.2))

    def output(self):
        with self.cond:
            return "\n".join(self.lines)

    def pids(self):
        """This process and its children (wsbal's workers), from /proc."""
        out = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.proc.pid:
                        out.append(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        return out

    def stop(self, sig=15, timeout=T):
        """Sends sig (0: none, just wait) and waits; returns the exit status (None if killed)."""
        if self.proc.poll() is None:
            if sig:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self.reader.join(2)
        return self.proc.returncode


class Echo(Process):
    """A wsbal-echo backend on an ephemeral port."""

    def __init__(self, ident, *args):
        super().__init__([ECHO, "--host", "127.0.0.1", "--port", "0", "--id", ident, *args])
        m = self.wait_line(r"listening on [^ ]*:(\d+)")
        if m is None:
            self.stop()
            raise RuntimeError(f"wsbal-echo {ident} did not start: {self.output()}")
        self.port = int(m.group(1))
        self.ident = ident
        self.url = f"ws://127.0.0.1:{self.port}"


class Peer(Process):
    """A test backend of peer_backend.py (python3-websockets) on a given or ephemeral port."""

    def __init__(self, ident, mode="echo", port=0, protocol=None, delay_101=0, tls=None,
                 host="127.0.0.1", client_ca=None, report=None):
        """tls: (certificate file, key file) to serve wss; host: what the URL names; client_ca:
        require a client certificate from this CA; report: the count its GET /metric gives."""
        here = os.path.dirname(os.path.abspath(__file__))
        # Tests restart a peer on its port: one below the ephemeral range stays free meanwhile.
        port = port or free_port()
        argv = ["/usr/bin/python3", os.path.join(here, "peer_backend.py"), "--port", str(port),
                "--id", ident, "--mode", mode]
        if protocol:
            argv += ["--protocol", protocol]
        if delay_101:
            argv += ["--delay-101", str(delay_101)]
        if tls:
            argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        if client_ca:
            argv += ["--tls-client-ca", client_ca]
        if report is not None:
            argv += ["--report", str(report)]
        super().__init__(argv)
        m = self.wait_line(r"listening on [^ ]*:(\d+)")
        if m is None:
            self.stop()
            raise RuntimeError(f"peer {ident} did not start: {self.output()}")
        self.port = int(m.group(1))
        self.ident = ident
        self.url = f"{'wss' if tls else 'ws'}://{host}:{self.port}"


class Wsbal(Process):
    """wsbal with a generated configuration, listening on a fresh port of 127.0.0.1."""

    def __init__(self, backends, workers=2, sections=None, extra_env=None, log_level="info",
                 expect_start=True, wrapper=None):
        self.port = free_port()
        self.workers = workers
        self.log_level = log_level
        fd, self.config = tempfile.mkstemp(prefix="wsbal-test-", suffix=".ini")
        os.close(fd)
        self.write_config(backends, sections)
        # WSBAL_IO (the relay's I/O path) is no configuration: `meson test --setup epoll` sets it.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("WSBAL_") or k == "WSBAL_IO"}
        env.update(extra_env or {})
        # wrapper: a command line that ends by exec'ing its arguments (test_discovery's namespace).
        super().__init__((wrapper or []) + [WSBAL, "-c", self.config], env=env)
        self.url = f"ws://127.0.0.1:{self.port}"
        if expect_start and self.wait_line(r"listening on") is None:
            self.stop()
            raise RuntimeError(f"wsbal did not start:\n{self.output()}")

    def write_config(self, backends, sections=None, raw=None):
        """Writes the INI file: defaults for the tests, then sections, then backends (or raw text)."""
        sections = {k: dict(v) for k, v in (sections or {}).items()}
        wsbal = sections.setdefault("wsbal", {})
        wsbal.setdefault("workers", str(self.workers))
        wsbal.setdefault("log_level", self.log_level)
        sections.setdefault("listen", {}).setdefault("address", f"127.0.0.1:{self.port}")
        sections.setdefault("admin", {}).setdefault("address", "off")
        sections.setdefault("upstream", {}).setdefault("health_check", "off")
        text = ""
        for name, keys in sections.items():
            text += f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for name, url in backends or []:
            text += f"[backend:{name}]\nurl = {url}\n"
        with open(self.config, "w") as f:
            f.write(raw if raw is not None else text)

    def reload(self, backends, sections=None, raw=None):
        """Rewrites the file, sends SIGHUP; returns the master's verdict line ("reloaded ..." or
        "reload failed ...") and the output lines since the signal."""
        self.write_config(backends, sections, raw)
        with self.cond:
            mark = len(self.lines)
        self.proc.send_signal(1)
        m = self.wait_line(r"(reloaded .*|reload failed.*)", start=mark)
        with self.cond:
            since = self.lines[mark:]
        return (m.group(1) if m else None), since

    def stop(self, sig=15, timeout=T):
        rc = super().stop(sig, timeout)
        if os.path.exists(self.config):
            os.unlink(self.config)
        return rc


# ---- raw WebSocket pieces, for what a well-behaved client library will not send ----

def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length_override=None):
    """One frame; masked with a random key unless mask is False."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length_override is None else length_override
    key = os.urandom(4) if mask else b""
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload)) if len(payload) < 4096 \
            else _mask_fast(payload, key)
    return head + key + payload


def _mask_fast(payload, key):
    k = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(len(payload), "big")


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class RawClient:
    """A blocking socket client that speaks the handshake and frames by hand."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=T)
        self.buf = b""

    @classmethod
    def upgraded(cls, port, path="/", headers=None):
        """A client whose upgrade went through (RuntimeError otherwise), and the 101's headers."""
        cl = cls(port)
        cl.request(path, headers)
        status, hdrs, _ = cl.read_head()
        if status != 101:
            cl.close()
            raise RuntimeError(f"upgrade answered {status}")
        return cl, hdrs

    def send(self, data):
        self.sock.sendall(data)

    def request(self, path="/", headers=None, key=None):
        key = key or base64.b64encode(os.urandom(16)).decode()
        hdrs = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        hdrs.update(headers or {})
        head = f"GET {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None) + "\r\n"
        self.send(head.encode())
        return key

    def _fill(self, timeout=T):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def read_head(self, timeout=T):
        """Reads a response head; returns (status, {lower-case name: value}, raw head)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill(timeout)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode(errors="replace").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, head

    def read_rest(self, timeout=T):
        """Everything until the peer closes the connection."""
        try:
            while True:
                self._fill(timeout)
        except (EOFError, ConnectionResetError):
            pass
        data, self.buf = self.buf, b""
        return data

    def read_frame(self, timeout=T):
        """Returns (fin, opcode, payload) of the next frame (server frames are unmasked)."""
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n, pos = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
                elif n >= 126:
                    n = None
                if n is not None and b1 & 0x80:
                    pos += 4  # a masked server frame: the test decides whether that is a failure
                if n is not None and len(self.buf) >= pos + n:
                    payload = self.buf[pos:pos + n]
                    self.buf = self.buf[pos + n:]
                    return bool(b0 & 0x80), b0 & 0x0F, payload
            self._fill(timeout)

    def closed_by_peer(self, timeout=T):
        """True when the peer closes the TCP connection (after any bytes still coming)."""
        try:
            self.sock.settimeout(timeout)
            while self.sock.recv(65536):
                pass
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


async def chatter(url, stop, stats):
    """One session sending a numbered message every 20 ms until stop, checking every echo."""
    import websockets
    async with websockets.connect(url, compression=None) as ws:
        i = 0
        while not stop.is_set():
            msg = f"msg {i}"
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), T)
            if got != msg:
                stats["wrong"] += 1
            stats["echoed"] += 1
            i += 1
            await asyncio.sleep(0.02)
        await ws.close()
        stats["closed_clean"] += ws.close_code == 1000


class Chatters:
    """n sessions echoing through url in a thread of their own until stop(); stats counts."""

    def __init__(self, url, n):
        self.n = n
        self.stats = {"echoed": 0, "wrong": 0, "closed_clean": 0, "errors": []}
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()

        async def run_all():
            tasks = [asyncio.ensure_future(chatter(f"{url}/c{i}", self.stop_event, self.stats))
                     for i in range(n)]
            for r in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(r, BaseException):
                    self.stats["errors"].append(repr(r))

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(run_all()),
                                       daemon=True)
        self.thread.start()

    def more_echoes(self, n, timeout=T):
        """Waits until n more echoes came; returns whether they did."""
        before, deadline = self.stats["echoed"], time.monotonic() + timeout
        while self.stats["echoed"] < before + n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.stats["echoed"] >= before + n

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(3 * T)

    def stop_and_check(self, checks, what):
        """Stops the sessions; each must have closed with 1000, none got a wrong echo or an error."""
        self.stop()
        st = self.stats
        checks.eq(f"no session closed, failed or got a wrong echo {what}",
                  (self.n, 0, []), (st["closed_clean"], st["wrong"], st["errors"][:3]))


def run_tests(checks, *tests):
    """Runs each test in order; a crash of the test code itself is a failure, never a pass.
    Returns the exit status of checks.summary()."""
    import traceback
    try:
        for test in tests:
            test()
    except Exception as e:
        traceback.print_exc()
        checks.true("test ran to the end", False, repr(e))
    return checks.summary()


def run(coro):
    """Runs an asyncio coroutine with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, 120))

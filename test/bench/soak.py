"""Soak with faults: wsbal in front of wsbal-echo backends for M minutes, under verified
request/response traffic, session churn and faults drawn from a seeded RNG; then checks that no
message the failover rules cover was lost or duplicated, that nothing crashed, that the admin API
counts are exact, and how wsbal's memory moved (see test/bench/README.md, "Soak").

Every message carries its session, sequence number and a CRC-32 of its body; each session sends a
burst of 1-3 messages (some fragmented) and waits for their echoes, which must come back whole, in
order, once each. Faults: backend SIGKILL + restart on its port, SIGHUP reloads (some add or remove
a backend), admin drains and undrains, forced failovers through the admin API, worker SIGKILL.
Sessions a worker kill ends are expected closes: each must carry the killed worker's (slot,
incarnation) in its session id, which the access log's start lines give for each client path.

Memory (PSS, RSS and USS of master + workers) is sampled empty at the start, after the warm-up
and at the end, both times with exactly --sessions sessions open and churn and faults paused for
MEMORY_SETTLE seconds (wsbal's heap trim runs in between); the master's and worker 0's memory
per mapping (heap, segment, anonymous, each library) is kept with each sample and in the trend.
Worker kills spare slot 0, so the master and worker 0 run the whole soak: the growth of their RSS
after the warm-up is what is asserted (< 1%), and only for runs of --assert-memory-minutes or more
(10 by default: a shorter run has no real warm-up). Their PSS and the master's USS move with every
worker forked or dying (pages shared with it, or no longer), so those are reported, not asserted,
as are worker 0's USS and the PSS and RSS of the whole instance, respawned workers included.
"""
import argparse
import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import re
import signal
import struct
import sys
import time
import urllib.error
import urllib.request
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import compare  # noqa: E402  (test/bench, this script's directory)
from compare import children_of  # noqa: E402
from wsbtest import free_port  # noqa: E402  (a port below the ephemeral range: free for restarts)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ECHO_TIMEOUT = 30.0   # a burst not echoed within this is a stalled session
CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 10.0
SETTLE_TIMEOUT = 60.0
MEMORY_SETTLE = 6.0   # seconds idle before a memory sample: longer than wsbal's heap trim tick
KILL_GRACE = 5.0      # a handshake cut this long after a worker kill is the kill's
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                       r"Assertion .* failed|\babort")


def log(msg):
    print(time.strftime("%H:%M:%S ") + "soak: " + msg, file=sys.stderr, flush=True)


def mem_kb(pid):
    """(PSS, RSS, USS) of one process in KiB, or None once it is gone. USS (its private pages)
    does not move when a process it shares pages with dies or is forked, as PSS does."""
    out = collections.Counter()
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k = line.split(":")[0]
                if k in ("Pss", "Rss", "Private_Clean", "Private_Dirty"):
                    out[k] = int(line.split()[1])
    except OSError:
        return None
    return out["Pss"], out["Rss"], out["Private_Clean"] + out["Private_Dirty"]


def mem_by_mapping(pid):
    """{mapping: {"rss": KiB, "uss": KiB}} of one process from /proc/PID/smaps, mappings grouped by
    name: [heap], [stack], each library or file, the shared segment (a MAP_SHARED anonymous
    mapping reads "/dev/zero (deleted)") and unnamed anonymous mappings as [anon]. It tells which
    kind of memory moved between two samples; {} once the process is gone."""
    out = {}
    cur = None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                head = line.split()
                if not head:
                    continue
                if not head[0].endswith(":") or "-" in head[0]:
                    name = " ".join(head[5:]) if len(head) > 5 else "[anon]"
                    if name.startswith("/") and not name.startswith("/dev/zero"):
                        name = os.path.basename(name.replace(" (deleted)", ""))  # rebuilt
                    cur = out.setdefault(name, {"rss": 0, "uss": 0})
                elif cur is not None and head[0] == "Rss:":
                    cur["rss"] += int(head[1])
                elif cur is not None and head[0] in ("Private_Clean:", "Private_Dirty:"):
                    cur["uss"] += int(head[1])
    except OSError:
        return {}
    return {k: v for k, v in out.items() if v["rss"]}


class Processes(compare.Processes):
    """compare.py's: every process started is stopped by its own id (and its group) at the end.
    Here each also gets SIGKILL from the kernel if this script dies (setpriv --pdeathsig execs
    the program, so the pid stays), and they stop in reverse order: wsbal before its backends."""

    def start(self, name, args):
        return super().start(name, ["setpriv", "--pdeathsig", "KILL", "--"] + args)

    def kill(self, p):
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        self.live.remove(p)

    def stop_all(self):
        for p in reversed(list(self.live)):
            self.stop(p, grace=3.0)


# ---- one client session: a hand-written WebSocket client on asyncio ----

def mask_bytes(payload, key):
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def client_frame(opcode, payload, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + (mask_bytes(payload, key) if n else b"")


class Conn(asyncio.Protocol):
    def __init__(self, sess, request, key):
        self.s = sess
        self.request = request
        self.accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        self.buf = bytearray()
        self.upgraded = False
        self.frag_op = None
        self.frags = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 16384:
                    self.s.handshake_failed("head too long")
                    self.transport.abort()
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            parts = head[0].split()
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
            if status != 101 or hdrs.get("sec-websocket-accept", "").encode() != self.accept:
                self.s.handshake_failed("status %d" % status)
                self.transport.abort()
                return
            self.upgraded = True
            self.s.upgraded()
        self.parse()

    def parse(self):
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, hl = b1 & 0x7F, 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, hl = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, hl = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if b1 & 0x80:
                self.s.protocol_error("masked frame from wsbal")
                self.transport.abort()
                return
            if len(buf) - pos < hl + n:
                break
            payload = bytes(buf[pos + hl:pos + hl + n])
            pos += hl + n
            fin, op = bool(b0 & 0x80), b0 & 0x0F
            if op == 0x9:
                self.transport.write(client_frame(0xA, payload))
            elif op == 0xA:
                pass
            elif op == 0x8:
                self.s.got_close(payload)
            elif op in (0x1, 0x2):
                if self.frag_op is not None:
                    self.s.protocol_error("new message inside a fragmented one")
                if fin:
                    self.s.got_message(op, payload)
                else:
                    self.frag_op, self.frags = op, [payload]
            elif op == 0x0:
                if self.frag_op is None:
                    self.s.protocol_error("continuation without a message")
                    continue
                self.frags.append(payload)
                if fin:
                    op, self.frag_op = self.frag_op, None
                    self.s.got_message(op, b"".join(self.frags))
                    self.frags = []
            else:
                self.s.protocol_error("opcode %d" % op)
        del buf[:pos]

    def connection_lost(self, exc):
        self.s.lost(exc)


class Session:
    """One client session: bursts of verified messages, then a clean close when asked to stop."""

    def __init__(self, soak, cid):
        self.k = soak
        self.cid = cid
        self.path = "/soak/%d" % cid
        self.rng = random.Random((soak.seed << 24) ^ cid)
        self.seq = 0
        self.pending = collections.deque()   # (seq, opcode, bytes) sent, not echoed yet
        self.sent = self.echoed = 0
        self.missing = []        # sequence numbers that never came back
        self.duplicates = self.corrupt = 0
        self.conn = None
        self.wake = asyncio.Event()
        self.stop_asked = False
        self.open = False        # upgraded and not ended
        self.ended = False
        self.close_sent = False
        self.close_got = None    # the close payload wsbal sent, if any
        self.outcome = None      # clean, handshake, abrupt, closed_by_wsbal, stalled, protocol
        self.detail = ""
        self.t_start = self.t_open = self.t_end = None
        self.hs_error = None

    # -- events from Conn --
    def upgraded(self):
        self.open = True
        self.t_open = time.monotonic()
        self.wake.set()

    def handshake_failed(self, why):
        self.hs_error = why
        self.wake.set()

    def protocol_error(self, why):
        self.k.stats["protocol_errors"] += 1
        self.detail = why
        self.outcome = self.outcome or "protocol"

    def got_close(self, payload):
        if self.close_got is None:
            self.close_got = payload
            if not self.close_sent:
                self.close_sent = True
                self.conn.transport.write(client_frame(0x8, payload[:2]))
        self.wake.set()

    def got_message(self, op, data):
        try:
            cid, seq, crc, _ = data.split(b".", 3)
            cid, seq, crc = int(cid), int(seq), int(crc, 16)
        except ValueError:
            cid, seq, crc = -1, -1, -1
        body = data.split(b".", 3)[3] if cid >= 0 else b""
        if cid != self.cid or zlib.crc32(body) != crc:
            self.corrupt += 1
            self.detail = "corrupt echo %r" % data[:60]
            return
        while self.pending and self.pending[0][0] < seq:
            self.missing.append(self.pending.popleft()[0])
        if not self.pending or self.pending[0][0] > seq:
            self.duplicates += 1   # an echo of a message already answered
            self.detail = "duplicate of %d" % seq
            return
        want_seq, want_op, want = self.pending.popleft()
        if op != want_op or data != want:
            self.corrupt += 1
            self.detail = "echo %d differs from what was sent" % seq
            return
        self.echoed += 1
        self.k.stats["echoed"] += 1
        if not self.pending:
            self.wake.set()

    def lost(self, exc):
        self.open = False
        self.ended = True
        self.t_end = time.monotonic()
        if self.outcome is None:
            if self.t_open is None:
                self.outcome = "handshake"
                self.hs_error = self.hs_error or ("lost: %r" % exc)
            elif self.close_got is not None and self.close_sent:
                code = struct.unpack("!H", self.close_got[:2])[0] if len(self.close_got) >= 2 else 1005
                if self.stop_asked and code == 1000:
                    self.outcome = "clean"
                else:
                    self.outcome = "closed_by_wsbal"
                    self.detail = "close %d %r" % (code, self.close_got[2:60])
            else:
                self.outcome = "abrupt"
                self.detail = repr(exc)
        self.wake.set()

    # -- the session's own task --
    def message(self):
        self.seq += 1
        r = self.rng
        n = r.randint(16, 512) if r.random() < 0.95 else r.randint(4096, 16384)
        op = 0x1 if r.random() < 0.5 else 0x2
        body = r.randbytes(n)
        if op == 0x1:
            body = base64.b64encode(body)
        data = b"%d.%d.%08x." % (self.cid, self.seq, zlib.crc32(body)) + body
        return self.seq, op, data

    def send(self, op, data):
        r = self.rng
        if r.random() < 0.1 and len(data) > 8:
            cuts = sorted(r.sample(range(1, len(data)), min(2, len(data) - 1)))
            pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
            out = [client_frame(op if i == 0 else 0x0, p, i == len(pieces) - 1)
                   for i, p in enumerate(pieces)]
            self.conn.transport.write(b"".join(out))
        else:
            self.conn.transport.write(client_frame(op, data))

    async def wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), left)
            except asyncio.TimeoutError:
                pass
        return True

    async def run(self):
        k = self.k
        self.t_start = time.monotonic()
        key = base64.b64encode(os.urandom(16)).decode()
        request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "\r\n" % (self.path, key)).encode()
        try:
            _, self.conn = await asyncio.wait_for(k.loop.create_connection(
                lambda: Conn(self, request, key), "127.0.0.1", k.port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as e:
            self.ended, self.outcome, self.hs_error = True, "handshake", "connect: %r" % e
            self.t_end = time.monotonic()
            return
        if not await self.wait(lambda: self.open or self.ended or self.hs_error, CONNECT_TIMEOUT) \
                or not self.open:
            self.outcome = "handshake"
            self.hs_error = self.hs_error or "no 101 within %g s" % CONNECT_TIMEOUT
            self.conn.transport.abort()
            await self.wait(lambda: self.ended, 5)
            return
        while not self.ended and not self.stop_asked and self.close_got is None and not k.stopping:
            for _ in range(self.rng.randint(1, 3)):
                seq, op, data = self.message()
                self.pending.append((seq, op, data))
                self.sent += 1
                k.stats["sent"] += 1
                self.send(op, data)
            if not await self.wait(lambda: not self.pending or self.ended or self.close_got,
                                   ECHO_TIMEOUT):
                self.outcome = "stalled"
                self.detail = "no echo of %s within %g s" % ([p[0] for p in self.pending],
                                                             ECHO_TIMEOUT)
                self.conn.transport.abort()
                break
            if self.ended or self.close_got is not None:
                break
            pause = self.rng.expovariate(1.0 / k.a.interval)
            await self.wait(lambda: self.stop_asked or self.ended, min(pause, 4 * k.a.interval))
        if not self.ended and self.close_got is None and not self.close_sent:
            self.close_sent = True
            self.conn.transport.write(client_frame(0x8, struct.pack("!H", 1000) + b"bye"))
        if not await self.wait(lambda: self.ended, CLOSE_TIMEOUT):
            self.outcome = self.outcome or "close_timeout"
            self.conn.transport.abort()
            await self.wait(lambda: self.ended, 5)
        # What was sent and never answered on a session that ended is not a loss the rules
        # cover: the session itself went. Remember it for the report.
        self.unanswered_at_end = len(self.pending)


# ---- the soak ----

def wsbal_config(k):
    pool = "".join("\n[backend:%s]\nurl = ws://127.0.0.1:%d\n" % (b.name, b.port)
                   for b in k.backends if b.in_config)
    return f"""; generated by test/bench/soak
[wsbal]
workers = {k.a.workers}
worker_balance = {k.a.worker_balance}
log_level = info
access_log = {k.access_log}
access_log_start = on
shutdown_timeout = 2s

[listen]
address = 127.0.0.1:{k.port}

[upstream]
algorithm = least_conn
health_check = tcp
health_interval = 1s
health_timeout = 1s
max_failovers = 1000
breaker_cooldown = 2s

[admin]
address = 127.0.0.1:{k.admin}
{pool}"""


BACKEND_UP_GRACE = 4.0  # s after a restart: health_interval 1 s x rise 2, plus a check's timeout


class Backend:
    def __init__(self, name, port, in_config):
        self.name, self.port, self.in_config = name, port, in_config
        self.proc = None
        self.drained = False
        self.busy = False   # being killed and restarted
        self.kills = 0
        self.ready_at = 0.0  # monotonic time from which wsbal takes it again after a restart

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Soak:
    def __init__(self, a, rundir):
        self.a = a
        self.seed = a.seed
        self.rng = random.Random(a.seed)
        self.rundir = rundir
        self.procs = Processes(rundir)
        self.access_log = os.path.join(rundir, "access.log")
        self.exe = lambda name: os.path.join(a.build, name)
        self.stats = collections.Counter()
        self.sessions = []
        self.active = set()
        self.next_cid = 0
        self.churn_paused = False
        self.faults_paused = False
        self.fault_busy = 0
        self.faults = collections.Counter()
        self.fault_log = []
        self.worker_kills = []    # {"t", "slot", "pid", "prefix"}
        self.fig = {}
        self.failures = []
        self.stopping = False

    # -- admin API (blocking calls, run in the executor) --
    def http(self, method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin, path), method=method,
                                     data=body)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read()[:200]

    async def api(self, method, path, body=None):
        return await self.loop.run_in_executor(None, self.http, method, path, body)

    async def get(self, path):
        status, body = await self.api("GET", path)
        if status != 200:
            raise RuntimeError("GET %s: %d %r" % (path, status, body))
        return body

    async def session_list(self):
        out, offset = [], 0
        partial = False
        while offset is not None:
            page = await self.get("/api/v1/sessions?limit=1000&offset=%d" % offset)
            partial = partial or page["partial"]
            out += page["sessions"]
            offset = page["next_offset"]
        return out, partial

    # -- processes --
    def start_backend(self, b):
        b.proc = self.procs.start(b.name, [self.exe("wsbal-echo"), "--host", "127.0.0.1",
                                           "--port", str(b.port), "--id", b.name])

    async def wait_port(self, port, proc, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("%s exited with %s" % (proc.name, proc.returncode))
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("%s did not listen on %d" % (proc.name, port))

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(wsbal_config(self))

    def wsbal_pids(self):
        if self.wsbal.poll() is not None:
            return []
        return [self.wsbal.pid] + children_of(self.wsbal.pid)

    async def start(self):
        a = self.a
        self.backends = [Backend("b%d" % i, free_port(), i < a.backends) for i in range(a.backends + 1)]
        for b in self.backends:
            self.start_backend(b)
        for b in self.backends:
            await self.wait_port(b.port, b.proc)
        self.port, self.admin = free_port(), free_port()
        self.config = os.path.join(self.rundir, "wsbal.ini")
        self.write_config()
        self.wsbal_log = os.path.join(self.rundir, "wsbal.err")
        self.wsbal = self.procs.start("wsbal", [self.exe("wsbal"), "-c", self.config])
        deadline = time.monotonic() + 30
        while True:
            try:
                s = await self.get("/api/v1/status")
                if len(s["workers"]) == a.workers and all(w["pid"] > 0 for w in s["workers"]):
                    break
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline or self.wsbal.poll() is not None:
                raise RuntimeError("wsbal did not start: see %s" % self.wsbal_log)
            await asyncio.sleep(0.1)
        await self.wait_port(self.port, self.wsbal)
        await asyncio.sleep(1.0)
        self.fig["memory_empty"] = self.memory()

    def memory(self):
        per = {}
        for pid in self.wsbal_pids():
            m = mem_kb(pid)
            if m:
                per[pid] = m
        return {"pss_kb": sum(m[0] for m in per.values()), "rss_kb": sum(m[1] for m in per.values()),
                "uss_kb": sum(m[2] for m in per.values()),
                "per_process": {str(p): {"pss_kb": m[0], "rss_kb": m[1], "uss_kb": m[2]}
                                for p, m in per.items()}}

    # -- sessions --
    def spawn_session(self):
        s = Session(self, self.next_cid)
        self.next_cid += 1
        self.sessions.append(s)
        self.active.add(s)
        task = self.loop.create_task(s.run())
        task.add_done_callback(lambda t, s=s: self.session_done(s, t))

    def session_done(self, s, task):
        self.active.discard(s)
        if not task.cancelled() and task.exception() is not None:
            s.outcome, s.detail = "error", repr(task.exception())
        self.stats[s.outcome] += 1

    async def keeper(self):
        """Keeps --sessions sessions open, opening at most 200 at once."""
        while not self.stopping:
            opening = sum(1 for s in self.active if not s.open and not s.ended)
            while len(self.active) < self.a.sessions and opening < 200 and not self.stopping:
                self.spawn_session()
                opening += 1
            await asyncio.sleep(0.05)

    async def churn(self):
        """Closes a random open session every 1/--churn s (the keeper opens its successor)."""
        step = 1.0 / self.a.churn
        nxt = time.monotonic()
        while not self.stopping:
            nxt += step
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            if self.churn_paused:
                nxt = time.monotonic()
                continue
            cands = [s for s in self.active if s.open and not s.stop_asked]
            if cands:
                s = self.rng_churn.choice(cands)
                s.stop_asked = True
                s.wake.set()
                self.stats["churned"] += 1

    # -- faults --
    def available(self):
        now = time.monotonic()
        return [b for b in self.backends
                if b.in_config and b.alive and not b.drained and not b.busy and now >= b.ready_at]

    def note(self, kind, what):
        self.faults[kind] += 1
        self.fault_log.append((round(time.monotonic() - self.t0, 2), kind, what))
        if self.a.verbose:
            log("fault %s: %s" % (kind, what))

    async def fault_backend_kill(self, r):
        cands = [b for b in self.backends if b.alive and not b.busy]
        if len(self.available()) < 3:
            cands = [b for b in cands if b not in self.available()]
        if not cands:
            return
        b = r.choice(cands)
        down = r.uniform(0.5, 5.0)
        b.busy = True
        self.procs.kill(b.proc)
        b.kills += 1
        self.note("backend_kill", "%s down for %.1f s" % (b.name, down))
        self.fault_busy += 1
        try:
            await asyncio.sleep(down)
            self.start_backend(b)
            await self.wait_port(b.port, b.proc)
            # A health check may have marked it down (interval 1 s, fall 3) and takes two
            # passing checks (rise 2) to mark it up again, and its breaker may be open (2 s):
            # until then a failover cannot pick it, so the faults must not count on it (a soak
            # in CI closed two sessions with 1013 when a kill and a forced move left nothing
            # else).
            b.ready_at = time.monotonic() + BACKEND_UP_GRACE
        finally:
            self.fault_busy -= 1
            b.busy = False

    async def fault_reload(self, r):
        extra = self.backends[-1]
        change = r.random()
        if change < 0.35 and not extra.in_config:
            extra.in_config, what = True, "adds %s" % extra.name
        elif change < 0.7 and extra.in_config and len(self.available()) >= 3:
            extra.in_config, what = False, "removes %s" % extra.name
        else:
            what = "same backends"
        self.write_config()
        gen = (await self.get("/api/v1/status"))["generation"]
        self.wsbal.send_signal(signal.SIGHUP)
        for b in self.backends:
            b.drained = False  # a reload reads enabled from the file
        self.note("reload", what)
        deadline = time.monotonic() + 20
        while (await self.get("/api/v1/status"))["generation"] <= gen:
            if time.monotonic() > deadline:
                self.failures.append("reload at %.0f s not applied within 20 s" %
                                     (time.monotonic() - self.t0))
                return
            await asyncio.sleep(0.1)

    async def fault_drain(self, r):
        cands = self.available()
        if len(cands) < 3:
            return
        b = r.choice(cands)
        st, body = await self.api("POST", "/api/v1/backends/%s/drain" % b.name)
        if st != 202:
            self.failures.append("drain %s: %d %r" % (b.name, st, body))
            return
        b.drained = True
        hold = r.uniform(2.0, 15.0)
        self.note("drain", "%s for %.1f s" % (b.name, hold))
        self.fault_busy += 1
        try:
            await asyncio.sleep(hold)
            if b.drained and b.in_config:
                st, body = await self.api("POST", "/api/v1/backends/%s/enable" % b.name)
                if st != 200:
                    self.failures.append("enable %s: %d %r" % (b.name, st, body))
                b.drained = False
                self.note("undrain", b.name)
        finally:
            self.fault_busy -= 1

    async def fault_failover(self, r):
        total = (await self.get("/api/v1/status"))["totals"]["sessions"]
        if total == 0:
            return
        page = await self.get("/api/v1/sessions?limit=100&offset=%d" % r.randrange(0, max(1, total - 100)))
        chosen = r.sample(page["sessions"], min(len(page["sessions"]), r.randint(1, 30)))
        moved = gone = 0
        for sess in chosen:
            target = r.choice(self.available() + [None])
            q = "?backend=%s" % target.name if target is not None else ""
            st, body = await self.api("POST", "/api/v1/sessions/%s/failover%s" % (sess["id"], q))
            if st == 504:
                # "its worker did not answer in time": a worker the soak killed is still starting
                # (slow under ASan) and the lookup asks every worker. Asked again once it runs,
                # the answer is 202 or 404; a second 504 is a failure.
                await asyncio.sleep(2)
                st, body = await self.api("POST", "/api/v1/sessions/%s/failover%s" % (sess["id"], q))
            if st == 202:
                moved += 1
            elif st == 404:
                gone += 1
            else:
                self.failures.append("failover %s: %d %r" % (sess["id"], st, body))
        self.stats["forced_failovers"] += moved
        self.note("failover", "%d sessions asked to move (%d gone meanwhile)" % (moved, gone))

    async def fault_worker_kill(self, r):
        if self.a.workers < 2:
            return
        status = await self.get("/api/v1/status")
        if any(w["pid"] <= 0 for w in status["workers"]):
            return   # one is still being respawned
        w = r.choice([w for w in status["workers"] if w["slot"] != 0])
        sessions, _ = await self.session_list()
        ids = [int(s["id"], 16) for s in sessions if s["worker"] == w["slot"]]
        prefix = ids[0] >> 40 if ids else None
        os.kill(w["pid"], signal.SIGKILL)
        self.worker_kills.append({"t": time.monotonic(), "slot": w["slot"], "pid": w["pid"],
                                  "prefix": prefix, "sessions": w["sessions"]})
        self.note("worker_kill", "worker %d (pid %d, %d sessions)" % (w["slot"], w["pid"],
                                                                    w["sessions"]))

    async def faults_loop(self):
        r = self.rng
        kinds = [("backend_kill", 3, self.fault_backend_kill), ("reload", 2, self.fault_reload),
                 ("drain", 1.5, self.fault_drain), ("failover", 2.5, self.fault_failover),
                 ("worker_kill", 1, self.fault_worker_kill)]
        total = sum(k[1] for k in kinds)
        first = list(kinds)
        r.shuffle(first)
        tasks = set()
        while not self.stopping:
            await asyncio.sleep(r.expovariate(1.0 / self.a.fault_interval))
            if self.faults_paused or self.stopping:
                continue
            if first:   # every kind once first, in a random order, so a short run has each
                name, weight, fn = first.pop()
            else:
                x = r.uniform(0, total)
                for name, weight, fn in kinds:
                    x -= weight
                    if x <= 0:
                        break
            # Each fault gets an RNG of its own, drawn here, so the order of faults replays.
            t = self.loop.create_task(fn(random.Random(r.getrandbits(64))))
            tasks.add(t)
            t.add_done_callback(lambda t: (tasks.discard(t), self.fault_error(t)))

    def fault_error(self, t):
        if not t.cancelled() and t.exception() is not None:
            self.failures.append("fault task: %r" % t.exception())

    # -- checkpoints --
    async def quiesce(self):
        """Pauses churn and faults, lets every fault end and every session be open again."""
        self.churn_paused = self.faults_paused = True
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while self.fault_busy or any(s.pending or not s.open for s in self.active) or \
                len(self.active) < self.a.sessions or any(s.stop_asked for s in self.active):
            if time.monotonic() > deadline:
                raise RuntimeError("sessions did not settle within %g s" % SETTLE_TIMEOUT)
            await asyncio.sleep(0.1)

    async def counts_exact(self, name, want):
        """The API's counts against what the clients hold: status total, per worker, per
        backend. GET /api/v1/sessions gives backend null for a session moving and for one on a
        backend a reload removed (which /backends no longer lists): once settled, only a removed
        backend may account for them."""
        deadline = time.monotonic() + 10
        while True:
            status = await self.get("/api/v1/status")
            backends = (await self.get("/api/v1/backends"))["backends"]
            sessions, partial = await self.session_list()
            per_backend = collections.Counter(s["backend"] for s in sessions)
            per_worker = collections.Counter(s["worker"] for s in sessions)
            listed = {b["name"]: b["sessions"] for b in backends}
            got = {
                "clients": want,
                "status_total": status["totals"]["sessions"],
                "session_list": len(sessions),
                "backends_sum": sum(listed.values()),
                "backend_null": per_backend.get(None, 0),
                "removed_backends": [b.name for b in self.backends if not b.in_config],
            }
            ok = (not partial and got["status_total"] == want and got["session_list"] == want and
                  (got["backend_null"] == 0 or got["removed_backends"]) and
                  set(per_backend) - {None} <= set(listed) and
                  got["backends_sum"] + got["backend_null"] == want and
                  all(per_backend.get(n, 0) == c for n, c in listed.items()) and
                  all(per_worker.get(w["slot"], 0) == w["sessions"] for w in status["workers"]))
            if ok or time.monotonic() > deadline:
                got["exact"] = ok
                got["per_backend"] = listed
                self.fig["counts_" + name] = got
                log("counts %s: %s" % (name, json.dumps(got)))
                return ok
            await asyncio.sleep(0.2)

    async def checkpoint(self, name):
        await self.quiesce()
        # wsbal gives heap freed by a burst back every 5 s (common/heap_trim.c): the sample is
        # of the memory the sessions hold, after the last burst's was returned.
        await asyncio.sleep(MEMORY_SETTLE)
        ok = await self.counts_exact(name, sum(1 for s in self.active if s.open))
        m = self.memory()
        m["sessions"] = sum(1 for s in self.active if s.open)
        status = await self.get("/api/v1/status")
        m["workers"] = {str(w["slot"]): w["pid"] for w in status["workers"]}
        m["worker_sessions"] = {str(w["slot"]): w["sessions"] for w in status["workers"]}
        m["master"] = self.wsbal.pid
        m["t"] = round(time.monotonic() - self.t0, 1)
        m["maps"] = {"master": mem_by_mapping(self.wsbal.pid),
                     "worker0": mem_by_mapping(m["workers"].get("0", 0))}
        self.fig["memory_" + name] = m
        log("%s: %d sessions, wsbal PSS %d KiB, RSS %d KiB" % (name, m["sessions"], m["pss_kb"],
                                                               m["rss_kb"]))
        self.churn_paused = self.faults_paused = False
        return ok

    async def progress(self):
        """A line every 30 s, and a memory sample of the master and worker 0 (a trend between
        the checkpoints: taken under traffic, so with however many sessions are open)."""
        trend = self.fig.setdefault("memory_trend", [])
        while not self.stopping:
            await asyncio.sleep(30)
            try:
                w0 = next(w["pid"] for w in (await self.get("/api/v1/status"))["workers"]
                          if w["slot"] == 0)
            except (OSError, RuntimeError, StopIteration):
                w0 = 0
            m, mw = mem_kb(self.wsbal.pid), mem_kb(w0) if w0 > 0 else None
            if m and mw:
                trend.append({"t": round(time.monotonic() - self.t0), "worker0_pid": w0,
                              "open": sum(1 for s in self.active if s.open),
                              "master_uss_kb": m[2], "worker0_uss_kb": mw[2],
                              "worker0_rss_kb": mw[1], "total_pss_kb": self.memory()["pss_kb"],
                              "master_maps": mem_by_mapping(self.wsbal.pid),
                              "worker0_maps": mem_by_mapping(w0)})
            st = self.stats
            log("t=%4.0f s open %d, sent %d, echoed %d, churned %d, faults %s, failures %d" % (
                time.monotonic() - self.t0, sum(1 for s in self.active if s.open), st["sent"],
                st["echoed"], st["churned"], dict(self.faults), len(self.failures)))

    async def run(self):
        a = self.a
        self.loop = asyncio.get_running_loop()
        self.rng_churn = random.Random(self.seed ^ 0x5a5a)
        await self.start()
        self.t0 = time.monotonic()
        end = self.t0 + a.minutes * 60
        warm = self.t0 + a.warmup
        helpers = [self.loop.create_task(c) for c in (self.keeper(), self.churn(), self.progress())]
        faults = self.loop.create_task(self.faults_loop())
        try:
            await asyncio.sleep(max(0.0, warm - time.monotonic()))
            await self.checkpoint("warm")
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            faults.cancel()
            await self.checkpoint("end")
            self.churn_paused = True
            # Wait for the respawns of the last kills before counting them.
            self.stopping = True
            for t in helpers:
                t.cancel()
            for s in list(self.active):
                s.stop_asked = True
                s.wake.set()
            deadline = time.monotonic() + 30
            while self.active and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await self.counts_exact("after_close", 0)
            self.fig["zero_after_close"] = self.fig["counts_after_close"]["exact"] and not self.active
            status = await self.get("/api/v1/status")
            self.fig["workers_at_end"] = status["workers"]
            self.master_alive = self.wsbal.poll() is None
        finally:
            self.stopping = True
            faults.cancel()
            for t in helpers:
                t.cancel()
            # Stopped here, not after asyncio.run: their connections' end is what ends every
            # session task, which asyncio.run waits for (a cancelled wait_for may not cancel).
            self.procs.stop_all()

    # -- verdict --
    def wsbal_lines(self):
        try:
            with open(os.path.join(self.rundir, "wsbal.err"), errors="replace") as f:
                return f.read().split("\n")
        except OSError:
            return []

    def ids_by_path(self):
        ids = {}
        try:
            with open(self.access_log, errors="replace") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if e.get("event") == "start":
                        ids[e["path"]] = int(e["session"], 16)
        except OSError:
            pass
        return ids

    def verdict(self):
        a, f = self.a, self.fig
        lines = self.wsbal_lines()
        dropped = collections.Counter()
        for line in lines:
            m = re.search(r"session ([0-9a-f]{16}): dropped a message that preceded two", line)
            if m:
                dropped[int(m.group(1), 16)] += 1
        ids = self.ids_by_path()
        kill_prefixes = {k["prefix"]: k for k in self.worker_kills if k["prefix"] is not None}
        kill_times = [k["t"] for k in self.worker_kills]

        lost = dup = corrupt = 0
        lost_two_losses = 0
        expected_closes = []
        unexpected = collections.Counter()
        examples = []
        hs_at_kill = killed_unlogged = 0
        for s in self.sessions:
            sid = ids.get(s.path)
            dup += s.duplicates
            corrupt += s.corrupt
            allowed = dropped.get(sid, 0) if sid is not None else 0
            lost_two_losses += min(len(s.missing), allowed)
            lost += max(0, len(s.missing) - allowed)
            if s.missing and len(examples) < 10 and len(s.missing) > allowed:
                examples.append("%s (%s): missing %s" % (s.path, "%016x" % sid if sid else "?",
                                                         s.missing[:5]))
            if s.duplicates or s.corrupt:
                if len(examples) < 10:
                    examples.append("%s: %s" % (s.path, s.detail))
            on_killed = sid is not None and (sid >> 40) in kill_prefixes
            if s.outcome == "clean":
                continue
            if s.outcome is None and self.stopping:
                unexpected["still open at the end"] += 1
                continue
            if s.outcome == "abrupt" and on_killed:
                expected_closes.append(s)
                continue
            if s.outcome == "abrupt" and sid is None and any(
                    s.t_open <= t and t <= s.t_end <= t + KILL_GRACE for t in kill_times):
                # Upgraded but never in the access log: a worker that lives writes the start line
                # right after the 101, so only one killed in between leaves none.
                killed_unlogged += 1
                continue
            if s.outcome == "handshake" and any(s.t_start - 1 <= t <= (s.t_end or 0) and
                                                (s.t_end or 0) <= t + KILL_GRACE
                                                for t in kill_times):
                hs_at_kill += 1
                continue
            unexpected[s.outcome] += 1
            if len(examples) < 20:
                examples.append("%s (%s): %s %s %s" % (s.path, "%016x" % sid if sid else "no id",
                                                       s.outcome, s.hs_error or "", s.detail))
        ended_by_kill = collections.Counter(ids[s.path] >> 40 for s in expected_closes)
        # Every session of a killed worker must have ended with it (none may survive it).
        survivors = [s for s in self.sessions if s.outcome == "clean" and ids.get(s.path) is not None
                     and (ids[s.path] >> 40) in kill_prefixes
                     and s.t_end > kill_prefixes[ids[s.path] >> 40]["t"] + KILL_GRACE]
        kills_unresolved = [k for k in self.worker_kills if k["prefix"] is None and k["sessions"]]
        for s in survivors[:5]:
            k = kill_prefixes[ids[s.path] >> 40]
            examples.append("%s (%016x) on worker %d, killed at %.1f s, ended cleanly at %.1f s" % (
                s.path, ids[s.path], k["slot"], k["t"] - self.t0, s.t_end - self.t0))

        deaths = [l for l in lines if re.search(
            r"worker \d+ \(pid \d+\) (killed by signal|exited with status [1-9])", l)]
        killed_pids = {k["pid"] for k in self.worker_kills}
        death_pids = [int(re.search(r"\(pid (\d+)\)", l).group(1)) for l in deaths]
        unexplained_deaths = [l for l, p in zip(deaths, death_pids) if p not in killed_pids or
                              "signal 9" not in l]
        missing_deaths = killed_pids - set(death_pids)
        sanitizer = [l for l in lines if SANITIZER.search(l)]
        errors = collections.Counter(re.sub(r"[0-9a-f]{16}|\d+", "N", l.split(": ", 1)[-1])[:100]
                                     for l in lines if " error: " in l or " ERROR" in l)
        master_alive = getattr(self, "master_alive", False)

        warm, endm = f.get("memory_warm"), f.get("memory_end")
        mem = {}
        if warm and endm:
            def growth(pids, key):
                w0 = sum(warm["per_process"][p][key] for p in pids if p in warm["per_process"])
                e0 = sum(endm["per_process"][p][key] for p in pids if p in endm["per_process"])
                return w0, e0, 100.0 * (e0 - w0) / w0 if w0 else 0.0
            worker0 = [str(warm["workers"]["0"])] \
                if warm["workers"].get("0") == endm["workers"].get("0") else []
            whole_run = [str(warm["master"])] + worker0
            for key in ("pss_kb", "rss_kb", "uss_kb"):
                mem["survivors_" + key] = growth(whole_run, key)
                mem["worker0_" + key] = growth(worker0, key)
                mem["total_" + key] = (warm[key], endm[key],
                                       100.0 * (endm[key] - warm[key]) / warm[key] if warm[key] else 0)
            mem["survivors"] = whole_run
        f["memory_growth"] = mem
        assert_mem = a.minutes >= a.assert_memory_minutes
        st = self.stats
        f.update(seed=self.seed, minutes=a.minutes, sessions=a.sessions, workers=a.workers,
                 backends=a.backends, churn_per_s=a.churn, fault_interval_s=a.fault_interval,
                 interval_s=a.interval, sent=st["sent"], echoed=st["echoed"],
                 sessions_opened=len(self.sessions), churned=st["churned"],
                 forced_failovers=st["forced_failovers"], faults=dict(self.faults),
                 worker_kills=[dict(k, t=round(k["t"] - self.t0, 2), ended=ended_by_kill[k["prefix"]])
                               for k in self.worker_kills],
                 lost=lost, duplicated=dup, corrupt=corrupt,
                 lost_after_two_backend_losses=lost_two_losses,
                 expected_closes=len(expected_closes), handshakes_cut_by_kills=hs_at_kill,
                 killed_before_start_line=killed_unlogged,
                 unexpected=dict(unexpected), examples=examples,
                 sessions_surviving_their_killed_worker=len(survivors),
                 unexplained_deaths=unexplained_deaths[:10], kills_without_death_line=len(missing_deaths),
                 sanitizer_lines=sanitizer[:10], error_lines=dict(errors.most_common(20)),
                 master_alive=master_alive, failures=self.failures[:20],
                 outcomes={k: v for k, v in st.items() if k in
                           ("clean", "abrupt", "handshake", "closed_by_wsbal", "stalled",
                            "protocol", "close_timeout", "error")},
                 date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))

        def pct(key):
            v = mem.get(key)
            return "%d -> %d KiB (%+.2f%%)" % v if v else "n/a"
        kills_note = "%d, all on the %d killed workers" % (len(expected_closes), len(self.worker_kills))
        if killed_unlogged:
            kills_note += ", + %d upgraded just before a kill, no start line" % killed_unlogged
        checks = [
            ("messages sent / echoed and verified", "%d / %d" % (st["sent"], st["echoed"]), "-", None),
            ("sessions opened (churn %g/s, closed by churn %d)" % (a.churn, st["churned"]),
             str(len(self.sessions)), "-", None),
            ("faults", ", ".join("%s %d" % kv for kv in sorted(self.faults.items())), "-", None),
            ("messages lost (covered by the rules)", str(lost), "0", lost == 0),
            ("messages duplicated", str(dup), "0", dup == 0),
            ("echoes corrupt or out of order", str(corrupt), "0", corrupt == 0),
            ("messages lost after two backend losses (outside the rules, logged)",
             str(lost_two_losses), "-", None),
            ("sessions ended by worker kills (expected)", kills_note, "only the killed workers'",
             not survivors and not kills_unresolved),
            ("handshakes cut by a worker kill (expected)", str(hs_at_kill), "-", None),
            ("other session ends (failures)", str(sum(unexpected.values())) +
             (" %s" % dict(unexpected) if unexpected else ""), "0", not unexpected),
            ("worker deaths not caused by the soak, kills without a respawn line",
             "%d, %d" % (len(unexplained_deaths), len(missing_deaths)), "0, 0",
             not unexplained_deaths and not missing_deaths and master_alive),
            ("sanitizer / abort / assertion lines in the error log", str(len(sanitizer)), "0",
             not sanitizer),
            ("harness failures (API answers, reloads)", str(len(self.failures)), "0", not self.failures),
            ("API counts exact after warm-up / at the end / zero after closing",
             "%s / %s / %s" % tuple(f.get("counts_" + n, {}).get("exact") for n in
                                    ("warm", "end", "after_close")), "all exact",
             all(f.get("counts_" + n, {}).get("exact") for n in ("warm", "end", "after_close"))),
            ("wsbal PSS empty / warm / end (all processes)", "%s / %s / %s KiB" % (
                f.get("memory_empty", {}).get("pss_kb"), (warm or {}).get("pss_kb"), (endm or {}).get("pss_kb")),
             "-", None),
            ("RSS growth after warm-up, master + worker 0 (both ran the whole soak)",
             pct("survivors_rss_kb"), "< 1%" + ("" if assert_mem else " (not asserted: short run)"),
             (mem.get("survivors_rss_kb", (0, 0, 99))[2] < 1.0) if assert_mem else None),
            ("USS growth after warm-up, worker 0 (its private pages)", pct("worker0_uss_kb"), "-",
             None),
            ("PSS growth after warm-up, master + worker 0", pct("survivors_pss_kb"), "-", None),
            ("PSS / RSS growth after warm-up, all processes (respawned workers included)",
             "%s; %s" % (pct("total_pss_kb"), pct("total_rss_kb")), "-", None),
        ]
        f["checks"] = [{"figure": c[0], "value": c[1], "target": c[2], "met": c[3]} for c in checks]
        return checks


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="test/bench/soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--build", required=True)
    ap.add_argument("--seed", type=int, default=None, help="replays the faults and traffic of a run")
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--worker-balance", choices=["spread", "pack"], default="spread",
                    help="[wsbal] worker_balance of the soaked wsbal")
    ap.add_argument("--backends", type=int, default=3,
                    help="in the pool at the start; one more is added and removed by reloads")
    ap.add_argument("--churn", type=float, default=10.0, help="sessions closed (and replaced) a second")
    ap.add_argument("--interval", type=float, default=2.0,
                    help="mean pause of a session between bursts, seconds")
    ap.add_argument("--fault-interval", type=float, default=8.0, help="mean seconds between faults")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before the warm-up sample (default: a sixth of the run, <= 300)")
    ap.add_argument("--assert-memory-minutes", type=float, default=10.0)
    ap.add_argument("--out", default=None, help="directory for the run (default test/bench/results)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every fault")
    a = ap.parse_args(argv)
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 2 ** 31)
    if a.warmup is None:
        a.warmup = min(300.0, a.minutes * 10.0)
    if not 0 < a.warmup < a.minutes * 60:
        ap.error("--warmup must be inside the run")
    if a.workers < 2:
        ap.error("--workers must be 2 or more (slot 0 is never killed)")
    return a


def main(argv):
    a = parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    out = a.out or os.path.join(here, "results")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    rundir = os.path.join(out, "soak-%s-seed%d" % (stamp, a.seed))
    os.makedirs(rundir, exist_ok=True)
    log("seed %d (--seed %d replays it), %g minutes, %d sessions, run directory %s" % (
        a.seed, a.seed, a.minutes, a.sessions, rundir))
    soak = Soak(a, rundir)

    async def body():
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, me.cancel)
        await soak.run()
    try:
        asyncio.run(body())
    except asyncio.CancelledError:
        log("interrupted")
        soak.failures.append("interrupted")
    except RuntimeError as e:
        log("stopped: %s" % e)
        soak.failures.append(str(e))
    finally:
        soak.stopping = True
        soak.procs.stop_all()
    checks = soak.verdict()
    print("| figure | value | target | met |")
    print("|---|---|---|---|")
    for name, value, target, met in checks:
        print("| %s | %s | %s | %s |" % (name, value, target,
                                         "-" if met is None else ("yes" if met else "**no**")))
    for e in soak.fig["examples"]:
        print("  " + e)
    for e in soak.failures[:20]:
        print("  failure: " + e)
    ok = all(c[3] is not False for c in checks)
    result = os.path.join(out, "soak-%s-seed%d.json" % (stamp, a.seed))
    with open(result, "w") as f:
        json.dump(soak.fig, f, indent=1, default=str)
    log("%s; result in %s, logs in %s" % ("PASSED" if ok else "FAILED", result, rundir))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

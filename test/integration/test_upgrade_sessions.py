"""Binary upgrade with live sessions (issue 19): 1,000 sessions stream request/response messages
through 2 workers and 2 backends while the program file is replaced by another build (this one
with its version string changed: 0.1.0 -> 0.1.9, the same length) and SIGUSR2 is sent. First the
file is a program that crashes: the old master must go on serving every session. Then the real
upgrade: every ws:// session moves (no close, no lost, repeated or reordered message, the access
log's one line per session counts the whole life), sessions with a TLS backend leg drain in the
old workers. Prints the figures: time from SIGUSR2 to the last moved session, the longest pause
a client saw (p50/p99/max), sessions moved vs drained.
"""
import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import websockets

import wsbtest
from wsbtest import T, Checks, Echo, Peer, Wsbal, admin_call, free_port, run_tests, wait_for

c = Checks()
N = int(os.environ.get("WSBAL_UPGRADE_SESSIONS", "1000"))
N_TLS = 40  # of them, with a wss backend: these drain
INTERVAL = 1.0  # seconds between one client's messages
SCRATCH = tempfile.mkdtemp(prefix="wsbal-upgrade-sessions-")
PROGRAM = os.path.join(SCRATCH, "wsbal")
REAL = wsbtest.WSBAL
NEW_VERSION = b"0.1.9"


def put_program(data):
    """Replaces the program file as a package would: a new file under the same name."""
    tmp = PROGRAM + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.rename(tmp, PROGRAM)


def second_build():
    """The program with another version string, as a second build directory would give it: each
    copy of the string literal (one per object file in a sanitizer build) patched in place."""
    data = open(REAL, "rb").read()
    old = b"\x000.1.0\x00"
    c.true("the version string is in the program", data.count(old) >= 1)
    return data.replace(old, b"\x00" + NEW_VERSION + b"\x00")


class Clients:
    """N sessions in one asyncio loop of their own thread, each sending "i:k" and waiting for its
    echo every INTERVAL; they record every answer's round trip."""

    def __init__(self, url):
        import threading
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.connected = 0
        self.rounds = [0] * N
        self.rtt = [[] for _ in range(N)]  # (sent at, round trip)
        self.wrong, self.errors, self.clean = [], [], 0
        self.stop_event = None
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(self.main()),
                                       daemon=True)
        self.thread.start()

    async def one(self, i):
        path = f"/secure/c{i}" if i < N_TLS else f"/c{i}"
        try:
            ws = await websockets.connect(self.url + path, ping_interval=None, max_size=None,
                                          open_timeout=3 * T)
        except Exception as e:
            self.errors.append(f"{i}: connect: {e!r}")
            return
        self.connected += 1
        await asyncio.sleep((i % 100) / 100 * INTERVAL)  # spread over the interval
        try:
            k = 0
            while not self.stop_event.is_set():
                msg = f"{i}:{k}"
                t0 = time.monotonic()
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), 3 * T)
                self.rtt[i].append((t0, time.monotonic() - t0))
                if got != msg:
                    self.wrong.append((msg, got))
                k += 1
                self.rounds[i] = k
                try:
                    await asyncio.wait_for(self.stop_event.wait(), INTERVAL)
                except asyncio.TimeoutError:
                    pass
            await ws.close()
            self.clean += ws.close_code == 1000
        except Exception as e:
            self.errors.append(f"{i}: {e!r}")

    async def main(self):
        self.stop_event = asyncio.Event()
        sem = asyncio.Semaphore(100)  # connects in waves: the accept queues stay short

        async def gated(i):
            async with sem:
                pass
            await self.one(i)

        await asyncio.gather(*(gated(i) for i in range(N)))

    def min_rounds(self):
        return min(self.rounds)

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(6 * T)


def status(lb):
    """The status, or {} when the request failed (the old master now answers a request it had
    accepted as it hands the admin port over, and closes idle connections: http.client may
    have reused one of those)."""
    try:
        code, body = admin_call(lb.admin, "GET", "/api/v1/status")
    except (ConnectionError, http.client.HTTPException):
        return {}
    return json.loads(body) if code == 200 else {}


def log_ms(line):
    """A log line's time stamp in ms since midnight (UTC)."""
    m = re.match(r"\d{4}-\d\d-\d\dT(\d\d):(\d\d):(\d\d)\.(\d{3})Z", line)
    return m and ((int(m.group(1)) * 60 + int(m.group(2))) * 60 + int(m.group(3))) * 1000 + \
        int(m.group(4))


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else 0


def test_sessions_survive():
    echoes = [Echo("e1"), Echo("e2")]
    secure = Peer("s1", tls=wsbtest.self_signed(SCRATCH))
    shutil.copy2(REAL, PROGRAM)
    access = os.path.join(SCRATCH, "access.log")
    admin = free_port()
    wsbtest.WSBAL = PROGRAM
    try:
        lb = Wsbal([(e.ident, e.url) for e in echoes], sections={
            "wsbal": {"shutdown_timeout": "60s", "access_log": access},
            "admin": {"address": f"127.0.0.1:{admin}"},
            "pool:secure": {"tls_verify": "off"},
            "route:secure": {"path": "/secure", "pool": "secure"},
            "backend:s1": {"url": secure.url, "pool": "secure"}})
    finally:
        wsbtest.WSBAL = REAL
    lb.admin = admin
    old_pid = lb.proc.pid
    new_pid = 0
    cl = Clients(lb.url)
    try:
        c.true(f"{N} sessions open", wait_for(lambda: cl.connected == N or cl.errors, 6 * T),
               f"{cl.connected} {cl.errors[:3]}")
        c.true("every session has echoed twice", wait_for(lambda: cl.min_rounds() >= 2, 4 * T))
        t_steady = time.monotonic()  # round trips from here on are the baseline

        # A program that crashes before it is ready: the old master keeps every session.
        put_program(b"#!/bin/sh\nkill -SEGV $$\n")
        mark = len(lb.lines)
        lb.proc.send_signal(signal.SIGUSR2)
        c.true("the crashing program is refused",
               lb.wait_line(r"upgrade refused: .*killed by signal 11", start=mark) is not None)
        before = cl.min_rounds()
        c.true("every session echoes on after the refusal",
               wait_for(lambda: cl.min_rounds() >= before + 2, 4 * T))
        c.eq("no session failed after the refusal", [], cl.errors[:3])

        # The real upgrade.
        put_program(second_build())
        v = subprocess.run([PROGRAM, "-V"], capture_output=True, timeout=T).stdout.decode()
        c.eq("the new program file is another build", f"wsbal {NEW_VERSION.decode()}", v.strip())
        mark = len(lb.lines)
        t_signal = time.monotonic()
        lb.proc.send_signal(signal.SIGUSR2)
        done = wait_for(lambda: (lambda s: s if s.get("pid") != old_pid and
                                 s.get("upgraded_sessions", 0) >= N - N_TLS else None)(
            status(lb)), timeout=6 * T, step=0.02)
        t_moved = time.monotonic()
        c.true("every ws:// session moved to the new master", done is not None,
               json.dumps(status(lb))[:300])
        st = done or status(lb)
        new_pid = st.get("pid", 0)
        c.eq("the status shows the new build's version", NEW_VERSION.decode(), st.get("version"))
        c.eq("and the sessions moved", N - N_TLS, st.get("upgraded_sessions"))
        before = cl.min_rounds()
        c.true("every session echoes on after the move",
               wait_for(lambda: cl.min_rounds() >= before + 2, 4 * T))
        c.true("the old master still serves the sessions that drain", lb.proc.poll() is None)
    finally:
        cl.stop()
    c.eq("no session closed early, lost, repeated or reordered a message",
         ([], [], N), (cl.errors[:3], cl.wrong[:3], cl.clean))
    c.eq("the old master exits 0 once its draining sessions ended", 0, lb.proc.wait(2 * T))

    # Figures.
    lines = lb.output().split("\n")[mark:]
    window = [max((r for t, r in cl.rtt[i] if t >= t_signal - INTERVAL), default=0)
              for i in range(N_TLS, N)]
    base = [r for i in range(N) for t, r in cl.rtt[i] if t_steady <= t < t_signal - INTERVAL]
    moved = [int(m.group(1)) for x in lines for m in [re.search(r"handover: (\d+) sessions moved",
                                                                x)] if m]
    sig = next((log_ms(x) for x in lines if "SIGUSR2: starting" in x), None)
    ticks = [(log_ms(x), float(m.group(1))) for x in lines
             for m in [re.search(r"handover: moved .*longest pause ([\d.]+) ms", x)] if m]
    print(f"FIGURE sessions {N}: moved {sum(moved)}, drained {N - sum(moved)} "
          f"(the {N_TLS} with a wss backend)")
    print(f"FIGURE SIGUSR2 to the last moved session (upgraded_sessions = {N - N_TLS} in the "
          f"new master's status, polled every 20 ms): "
          f"{1000 * (t_moved - t_signal):.0f} ms")
    if sig is not None and ticks:
        print(f"FIGURE SIGUSR2 to the last moved session (log time stamps): "
              f"{max(t for t, _ in ticks) - sig} ms; the longest a session was not relayed "
              f"while it moved (encoded to taken, in the old workers): "
              f"{max(p for _, p in ticks):.2f} ms")
    print(f"FIGURE longest round trip per moved session across the upgrade, as the test's "
          f"Python clients saw it (their own load included): "
          f"p50 {1000 * pct(window, 50):.1f} ms, p99 {1000 * pct(window, 99):.1f} ms, "
          f"max {1000 * max(window, default=0):.1f} ms (before it: p50 {1000 * pct(base, 50):.1f},"
          f" p99 {1000 * pct(base, 99):.1f} ms)")
    c.eq("moved vs drained from the old workers' logs", N - N_TLS, sum(moved))

    # One access-log line per session, written once, with the whole life.
    ends = {}
    with open(access) as f:
        for line in f:
            e = json.loads(line)
            if e.get("event", "end") == "end" and e.get("type", "ws") == "ws":
                ends.setdefault(e["path"], []).append(e)
    twice = [p for p, v in ends.items() if len(v) != 1]
    c.eq("one access-log line per session", (N, []), (len(ends), twice[:3]))
    short = [p for p, v in ends.items() if int(p.rsplit("c", 1)[1]) >= N_TLS and
             v[0]["messages_in"] != cl.rounds[int(p.rsplit("c", 1)[1])]]
    c.eq("a moved session's line counts every message of its life", [], short[:3])

    if new_pid > 1:
        os.kill(new_pid, signal.SIGTERM)
        c.true("the new master stops",
               wait_for(lambda: not os.path.exists(f"/proc/{new_pid}"), T))
    lb.stop()
    for p in echoes + [secure]:
        p.stop()


def kill_scratch_programs():
    """Kills every process running a program of SCRATCH: the new master is not this test's
    child (the old master started it), so a failed run would otherwise leave it serving."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/exe").startswith(SCRATCH + "/"):
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


def main():
    try:
        return run_tests(c, test_sessions_survive)
    finally:
        kill_scratch_programs()
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

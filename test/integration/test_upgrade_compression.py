"""Binary upgrade with compressed and routed sessions (issue 19, state format 2).

Upgrade 1, compression on with compression_context_takeover = on, so each client decides:
sessions offering no_context_takeover both ways stream compressed messages both ways through the
upgrade and move: no close, nothing lost or reordered, every echo inflating to what was sent, the
new master's compression counters growing, route and pool unchanged in the access log and in
GET /api/v1/sessions. Sessions with context takeover keep zlib streams and drain: the graceful
stop's 1001, not counted as moved. A raw client inside a compressed message (its first fragment
sent) stays until the message ends, then moves. Upgrade 2, after a reload to the default (off):
python3-websockets' own offer moves too, and the first sessions move a second time.
The program file is the same build (format 2 to format 2); the new masters are not this test's
children, so they are stopped by pid, or found by their configuration file if the test failed.
"""
import asyncio
import itertools
import json
import os
import re
import signal
import sys
import threading
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wsbtest import (OP_CLOSE, OP_CONT, OP_TEXT, T, Checks, Echo, RawClient, Wsbal, admin_call,
                     close_payload, frame, free_port, run_tests, wait_for)

c = Checks()
CONFIGS = []  # configuration files of the masters started: a failed run stops them by these
BOTH_NO = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
INTERVAL = 0.05


def both_no():
    """Offers no_context_takeover both ways: no zlib stream kept whatever wsbal allows."""
    return {"compression": None, "extensions": [ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True)]}


DEFAULT = {"compression": "deflate"}  # python3-websockets' own offer: context takeover allowed
# First upgrade, with compression_context_takeover = on: movers on /chat (route chat-rt) and on
# the default route, and sessions that keep zlib streams and drain.
FIRST = [(f"/chat/m{i}", both_no()) for i in range(3)] + [(f"/m{i}", both_no()) for i in range(3)]
TAKEOVER = [(f"/d{i}", DEFAULT) for i in range(3)]
# Second upgrade, after a reload to the default (off): python3-websockets' default offer moves.
SECOND = [("/chat/p0", DEFAULT), ("/p1", DEFAULT)]


def texts(i, k):
    """Round k of session i: a big compressible message (wsbal deflates 256 B or more) and a
    small one (sent as it is), back to back, so their echoes must come in that order."""
    return [f"{i}:{k}:big:" + "compress me " * 60, f"{i}:{k}:small"]


class Clients:
    """python3-websockets sessions (path, connect arguments) in an asyncio loop of their own
    thread: each sends a round of two messages, waits for both echoes, and again every INTERVAL
    until stopped."""

    def __init__(self, url, specs):
        self.url, self.specs, self.n = url, specs, len(specs)
        self.loop = asyncio.new_event_loop()
        self.rounds = [0] * self.n
        self.codes = [None] * self.n
        self.wrong, self.errors = [], []
        self.stopping = False
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(self.main()),
                                       daemon=True)
        self.thread.start()

    async def one(self, i):
        path, kw = self.specs[i]
        try:
            ws = await websockets.connect(self.url + path, ping_interval=None, open_timeout=T,
                                          **kw)
        except Exception as e:
            self.errors.append(f"{path}: connect: {e!r}")
            return
        try:
            for k in itertools.count():
                if self.stopping:
                    break
                sent = texts(i, k)
                for msg in sent:
                    await ws.send(msg)
                got = [await asyncio.wait_for(ws.recv(), T) for _ in sent]
                self.wrong += [(path, k, g[:40]) for m, g in zip(sent, got) if g != m]
                self.rounds[i] = k + 1
                await asyncio.sleep(INTERVAL)
            await ws.close()
        except websockets.ConnectionClosed:
            pass  # its close code says how
        except Exception as e:
            self.errors.append(f"{path}: {e!r}")
        self.codes[i] = ws.close_code

    async def main(self):
        await asyncio.gather(*(self.one(i) for i in range(self.n)))

    def streaming(self, rounds=2, which=None):
        """Waits until each session (of which) has done rounds more rounds than now."""
        which = range(self.n) if which is None else which
        now = list(self.rounds)
        return wait_for(lambda: all(self.rounds[i] >= now[i] + rounds for i in which) or
                        self.errors, T) and not self.errors

    def stop(self):
        self.stopping = True  # each session sees it after its round
        self.thread.join(3 * T)


def status(admin):
    try:
        code, body = admin_call(admin, "GET", "/api/v1/status")
        return json.loads(body) if code == 200 else {}
    except Exception:  # the admin port changing hands: ask again
        return {}


def pools(admin):
    """path -> (pool, route) of every session the master at admin lists."""
    code, body = admin_call(admin, "GET", "/api/v1/sessions?limit=100")
    return {s["path"]: (s["pool"], s["route"]) for s in json.loads(body)["sessions"]
            } if code == 200 else {}


def compression(admin):
    """wsbal_compression_bytes_total by its labels."""
    _, body = admin_call(admin, "GET", "/metrics")
    return {line.split("{", 1)[1].split("}", 1)[0]: int(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("wsbal_compression_bytes_total{")}


def deflate(data):
    """A client's compressed message payload (RFC 7692 7.2.1: the sync flush's tail removed)."""
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH))[:-4]


def read_message(cl):
    """A whole message's payload from the raw client, inflated when its first frame has RSV1."""
    while len(cl.buf) < 1:
        cl._fill()
    compressed = bool(cl.buf[0] & 0x40)
    data = b""
    while True:
        fin, op, payload = cl.read_frame()
        data += payload
        if fin:
            return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff") \
                if compressed else data


def stray_masters(config):
    """Pids of wsbal processes (masters and workers) started with this configuration file."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if config.encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def upgrade(pid, admin, moved):
    """SIGUSR2 to the master pid; the new master's status once its workers took moved sessions."""
    os.kill(pid, signal.SIGUSR2)
    return wait_for(lambda: (lambda s: s if s.get("pid", pid) != pid and
                             s.get("upgraded_sessions", 0) >= moved else None)(status(admin)),
                    timeout=3 * T, step=0.02) or {}


def counters_grow(admin, clients, moved, what):
    """The master at admin compresses and inflates for the moved sessions while they stream on."""
    before = compression(admin)
    c.true(f"{what}: every moved session streams on", clients.streaming(4, range(moved)),
           clients.errors[:3])
    after = compression(admin)
    for d in ("client_to_backend", "backend_to_client"):
        key = f'direction="{d}",stage="wire"'
        c.true(f"{what}: the new master compresses {d}", after.get(key, 0) > before.get(key, 0),
               f"{before} {after}")


def test_compressed_sessions_move():
    echo, chat = Echo("e1"), Echo("e2")
    admin = free_port()
    access = f"/tmp/wsbal-upgrade-compression-{os.getpid()}.log"
    sections = {
        "wsbal": {"shutdown_timeout": "3s", "access_log": access},
        "listen": {"compression": "on", "compression_context_takeover": "on"},
        "admin": {"address": f"127.0.0.1:{admin}"},
        "route:chat-rt": {"path": "/chat", "pool": "chat"},
        "backend:e2": {"url": chat.url, "pool": "chat"}}
    lb = Wsbal([("e1", echo.url)], sections=sections)
    CONFIGS.append(lb.config)
    pids = [lb.proc.pid]
    first = Clients(lb.url, FIRST + TAKEOVER)
    second, raw = None, None
    try:
        c.true("every session streams", first.streaming(), first.errors[:3])
        raw, hdrs = RawClient.upgraded(lb.port, "/chat/raw",
                                       {"Sec-WebSocket-Extensions": BOTH_NO})
        c.eq("the raw client has compression", BOTH_NO, hdrs.get("sec-websocket-extensions"))
        pool_of = {p: ("chat", "chat-rt") if p.startswith("/chat") else ("default", "default")
                   for p, _ in FIRST + TAKEOVER + SECOND + [("/chat/raw", None)]}
        listed = pools(admin)
        c.eq("sessions listed with their pools and routes", {p: pool_of[p] for p in listed},
             listed)
        # Inside a compressed message: its first fragment is in, its last is not.
        big = b"raw message " * 50
        z = deflate(big)
        raw.send(frame(OP_TEXT, z[:len(z) // 2], fin=False, rsv=4))

        mark = len(lb.lines)
        st = upgrade(pids[0], admin, len(FIRST))
        c.true("upgrade 1: the compressed sessions without context moved", st, f"{status(admin)}")
        pids.append(st.get("pid", 0))
        c.true("the raw client inside its compressed message did not (nor did the takeover ones)",
               not wait_for(lambda: status(admin).get("upgraded_sessions", 0) > len(FIRST), 0.5))
        raw.send(frame(OP_CONT, z[len(z) // 2:], fin=True))
        c.eq("its message ends whole, and its compressed echo inflates to it", big,
             read_message(raw))
        c.true("then it moves", wait_for(
            lambda: status(admin).get("upgraded_sessions") == len(FIRST) + 1, T),
            f"{status(admin)}")
        again = b"after the move " * 40
        raw.send(frame(OP_TEXT, deflate(again), rsv=4))
        c.eq("the new worker inflates and deflates for it", again, read_message(raw))
        raw.send(frame(OP_CLOSE, close_payload(1000)))
        fin, op, payload = raw.read_frame()
        c.eq("the raw session closes cleanly", (OP_CLOSE, 1000),
             (op, int.from_bytes(payload[:2], "big")))
        counters_grow(admin, first, len(FIRST), "upgrade 1")
        listed = pools(admin)
        c.eq("the moved sessions keep their pools and routes", {p: pool_of[p] for p, _ in FIRST},
             listed)
        c.true("the takeover sessions drain: the graceful stop's close", wait_for(
            lambda: all(first.codes[len(FIRST):]), 3 * T), f"{first.codes}")
        c.eq("with 1001", [1001] * len(TAKEOVER), first.codes[len(FIRST):])
        c.eq("the first master exits once they have", 0, lb.proc.wait(T))
        totals = [tuple(map(int, m.groups())) for x in lb.lines[mark:] for m in [re.search(
            r"handover: (\d+) sessions moved, (\d+) refused, (\d+) lost", x)] if m]
        c.eq("moved, refused and lost in its workers' logs", (len(FIRST) + 1, 0, 0),
             tuple(sum(t[k] for t in totals) for k in range(3)))

        # The default setting, reloaded: python3-websockets' own offer gets no context takeover.
        sections["listen"]["compression_context_takeover"] = "off"
        lb.write_config([("e1", echo.url)], sections)
        os.kill(pids[1], signal.SIGHUP)
        c.true("the second master reloads", wait_for(lambda: status(admin).get("generation") == 2,
                                                     T), f"{status(admin)}")
        second = Clients(lb.url, SECOND)
        c.true("new sessions stream", second.streaming(), second.errors[:3])
        st = upgrade(pids[1], admin, len(FIRST) + len(SECOND))
        c.eq("upgrade 2: every session moves (the first ones again)", len(FIRST) + len(SECOND),
             st.get("upgraded_sessions"))
        pids.append(st.get("pid", 0))
        counters_grow(admin, first, len(FIRST), "upgrade 2, the sessions moved twice")
        counters_grow(admin, second, len(SECOND), "upgrade 2, python3-websockets' default offer")
        listed = pools(admin)
        c.eq("the moved sessions keep their pools and routes",
             {p: pool_of[p] for p, _ in FIRST + SECOND}, listed)
        c.true("the second master exits", wait_for(
            lambda: not os.path.exists(f"/proc/{pids[1]}"), T))
    finally:
        for clients in (first, second):
            if clients is not None:
                clients.stop()
        if raw is not None:
            raw.close()
    for clients, n in ((first, len(FIRST)), (second, len(SECOND))):
        c.eq("no moved session closed early, lost, changed or reordered a message",
             ([], [], [1000] * n), (clients.errors[:3], clients.wrong[:3], clients.codes[:n]))

    # One access-log line per session, with its route, whichever process wrote it.
    def ends():
        try:
            with open(access) as f:
                lines = [json.loads(x) for x in f if x.strip()]
        except OSError:
            return {}
        return {e["path"]: e for e in lines if e.get("event", "end") == "end"}
    wait_for(lambda: len(ends()) >= len(pool_of), T)
    c.eq("each session's one access-log line names its route, moved or not",
         {p: route for p, (pool, route) in pool_of.items()},
         {p: e.get("route") for p, e in ends().items()})

    c.true("the third master serves the configuration", pids[-1] in stray_masters(lb.config),
           f"{stray_masters(lb.config)} {pids}")
    if len(pids) == 3 and pids[-1] > 1:
        os.kill(pids[-1], signal.SIGTERM)
        c.true("the third master stops",
               wait_for(lambda: not os.path.exists(f"/proc/{pids[-1]}"), T))
    lb.stop()
    echo.stop()
    chat.stop()
    if os.path.exists(access):
        os.unlink(access)


def main():
    try:
        return run_tests(c, test_compressed_sessions_move)
    finally:
        for pid in (pid for config in CONFIGS for pid in stray_masters(config)):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())

"""Binary upgrade with compressed and routed sessions (issue 19, state format 2).

wsbal runs with compression on and compression_context_takeover = on, so each client decides:
sessions that offer no_context_takeover both ways (what the default compression_context_takeover
= off negotiates for every client: the same parameters) stream compressed messages both ways
through the upgrade and move: no close, nothing lost or reordered, every echo inflating to what
was sent, the new master's compression counters growing, their route and pool unchanged in the
access log and in GET /api/v1/sessions. Sessions with context takeover keep a zlib stream and
drain: they end with the graceful stop's 1001 and are not counted as moved. A raw client inside
a compressed message (its first fragment sent) stays until the message ends, then moves.
The program file is the same build (format 2 to format 2); the new master is not this test's
child, so it is stopped by its pid, or found by its configuration file if the test failed.
"""
import asyncio
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wsbtest import (OP_CLOSE, OP_CONT, OP_TEXT, T, Checks, Echo, RawClient, Wsbal, admin_call,
                     close_payload, frame, free_port, run_tests, wait_for)

c = Checks()
CONFIGS = []  # configuration files of the masters started: a failed run stops them by these
ROUTED, PLAIN, TAKEOVER = 3, 3, 3  # movable sessions on /chat (route chat-rt), on /, and drainers
MOVABLE = ROUTED + PLAIN
BOTH_NO = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
INTERVAL = 0.05


def texts(i, k):
    """Round k of session i: a big compressible message (wsbal deflates 256 B or more) and a
    small one (sent as it is), back to back, so their echoes must come in that order."""
    return [f"{i}:{k}:big:" + "compress me " * 60, f"{i}:{k}:small"]


class Clients:
    """The websockets sessions, in an asyncio loop of their own thread: each sends a round of
    two messages, waits for both echoes, and again every INTERVAL until stopped."""

    def __init__(self, url):
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.n = MOVABLE + TAKEOVER
        self.rounds = [0] * self.n
        self.codes = [None] * self.n
        self.wrong, self.errors, self.connected = [], [], 0
        self.stopping = False
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(self.main()),
                                       daemon=True)
        self.thread.start()

    @staticmethod
    def path(i):
        return f"/chat/m{i}" if i < ROUTED else f"/m{i}" if i < MOVABLE else f"/d{i}"

    async def one(self, i):
        if i < MOVABLE:  # no zlib stream kept: movable
            kw = {"compression": None, "extensions": [ClientPerMessageDeflateFactory(
                server_no_context_takeover=True, client_no_context_takeover=True)]}
        else:  # python3-websockets' default offer: context takeover both ways here
            kw = {"compression": "deflate"}
        try:
            ws = await websockets.connect(self.url + self.path(i), ping_interval=None,
                                          open_timeout=T, **kw)
        except Exception as e:
            self.errors.append(f"{i}: connect: {e!r}")
            return
        self.connected += 1
        try:
            for k in itertools.count():
                if self.stopping:
                    break
                sent = texts(i, k)
                for msg in sent:
                    await ws.send(msg)
                got = [await asyncio.wait_for(ws.recv(), T) for _ in sent]
                self.wrong += [(i, k, g[:40]) for m, g in zip(sent, got) if g != m]
                self.rounds[i] = k + 1
                await asyncio.sleep(INTERVAL)
            await ws.close()
        except websockets.ConnectionClosed:
            pass  # its close code says how
        except Exception as e:
            self.errors.append(f"{i}: {e!r}")
        self.codes[i] = ws.close_code

    async def main(self):
        await asyncio.gather(*(self.one(i) for i in range(self.n)))

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
    """path -> pool of every session the master at admin lists."""
    code, body = admin_call(admin, "GET", "/api/v1/sessions?limit=100")
    return {s["path"]: s["pool"] for s in json.loads(body)["sessions"]} if code == 200 else {}


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


def test_compressed_sessions_move():
    echo, chat = Echo("e1"), Echo("e2")
    admin = free_port()
    access = f"/tmp/wsbal-upgrade-compression-{os.getpid()}.log"
    lb = Wsbal([("e1", echo.url)], sections={
        "wsbal": {"shutdown_timeout": "3s", "access_log": access},
        "listen": {"compression": "on", "compression_context_takeover": "on"},
        "admin": {"address": f"127.0.0.1:{admin}"},
        "route:chat-rt": {"path": "/chat", "pool": "chat"},
        "backend:e2": {"url": chat.url, "pool": "chat"}})
    CONFIGS.append(lb.config)
    old_pid, new_pid = lb.proc.pid, 0
    cl = Clients(lb.url)
    raw = None
    try:
        c.true("every session streams", wait_for(
            lambda: min(cl.rounds) >= 2 or cl.errors, T), f"{cl.rounds} {cl.errors[:3]}")
        raw, hdrs = RawClient.upgraded(lb.port, "/chat/raw",
                                       {"Sec-WebSocket-Extensions": BOTH_NO})
        c.eq("the raw client has compression", BOTH_NO,
             hdrs.get("sec-websocket-extensions"))
        before = pools(admin)
        c.eq("sessions listed with their pools before the upgrade",
             ["chat"] * (ROUTED + 1) + ["default"] * (PLAIN + TAKEOVER),
             [before.get(p) for p in [Clients.path(i) for i in range(ROUTED)] + ["/chat/raw"] +
              [Clients.path(i) for i in range(ROUTED, cl.n)]])
        # Inside a compressed message: its first fragment is in, its last is not.
        big = b"raw message " * 50
        z = deflate(big)
        raw.send(frame(OP_TEXT, z[:len(z) // 2], fin=False, rsv=4))

        mark = len(lb.lines)
        lb.proc.send_signal(signal.SIGUSR2)
        st = wait_for(lambda: (lambda s: s if s.get("pid", old_pid) != old_pid and
                               s.get("upgraded_sessions", 0) >= MOVABLE else None)(
            status(admin)), timeout=3 * T, step=0.02)
        c.true("the compressed sessions without context moved", st is not None,
               f"{status(admin)} {lb.output()[-2000:]}")
        st = st or {}
        new_pid = st.get("pid", 0)
        c.true("the raw client inside its compressed message did not (nor did the takeover ones)",
               not wait_for(lambda: status(admin).get("upgraded_sessions", 0) > MOVABLE, 0.5))
        raw.send(frame(OP_CONT, z[len(z) // 2:], fin=True))
        c.eq("its message ends whole, and its compressed echo inflates to it", big,
             read_message(raw))
        c.true("then it moves", wait_for(
            lambda: status(admin).get("upgraded_sessions") == MOVABLE + 1, T), f"{status(admin)}")
        again = b"after the move " * 40
        raw.send(frame(OP_TEXT, deflate(again), rsv=4))
        c.eq("the new worker inflates and deflates for it", again, read_message(raw))

        counts = compression(admin)
        rounds = list(cl.rounds)
        c.true("every moved session streams on", wait_for(
            lambda: all(cl.rounds[i] >= rounds[i] + 4 for i in range(MOVABLE)), T),
            f"{rounds} {cl.rounds}")
        grown = compression(admin)
        for d in ("client_to_backend", "backend_to_client"):
            key = f'direction="{d}",stage="wire"'
            c.true(f"the new master compresses {d} for the moved sessions",
                   grown.get(key, 0) > counts.get(key, 0) > 0, f"{counts} {grown}")
        after = pools(admin)
        c.eq("the moved sessions keep their pools",
             {p: before[p] for p in [Clients.path(i) for i in range(MOVABLE)] + ["/chat/raw"]},
             after)
        c.true("the takeover sessions drain: the graceful stop's close",
               wait_for(lambda: all(cl.codes[i] is not None for i in range(MOVABLE, cl.n)),
                        3 * T), f"{cl.codes}")
        c.eq("with 1001", [1001] * TAKEOVER, cl.codes[MOVABLE:])
        c.eq("the old master exits once they have", 0, lb.proc.wait(T))
        ends = [tuple(map(int, m.groups())) for x in lb.lines[mark:]
                for m in [re.search(r"handover: (\d+) sessions moved, (\d+) refused, (\d+) lost",
                                    x)] if m]
        c.eq("moved, refused and lost in the old workers' logs", (MOVABLE + 1, 0, 0),
             tuple(sum(e[k] for e in ends) for k in range(3)))
        raw.send(frame(OP_CLOSE, close_payload(1000)))
        fin, op, payload = raw.read_frame()
        c.eq("the raw session closes cleanly", (OP_CLOSE, 1000),
             (op, int.from_bytes(payload[:2], "big")))
    finally:
        cl.stop()
        if raw is not None:
            raw.close()
    c.eq("no moved session closed early, lost, changed or reordered a message",
         ([], [], [1000] * MOVABLE), (cl.errors[:3], cl.wrong[:3], cl.codes[:MOVABLE]))

    # One access-log line per session, with its route, whichever process wrote it.
    def ends():
        try:
            with open(access) as f:
                lines = [json.loads(x) for x in f if x.strip()]
        except OSError:
            return {}
        return {e["path"]: e for e in lines if e.get("event", "end") == "end"}
    wait_for(lambda: len(ends()) >= cl.n + 1, T)
    got = {p: e.get("route") for p, e in ends().items()}
    want = {Clients.path(i): "chat-rt" if i < ROUTED else "default" for i in range(cl.n)}
    want["/chat/raw"] = "chat-rt"
    c.eq("each session's one access-log line names its route, moved or not", want, got)

    c.true("the new master serves the configuration", new_pid in stray_masters(lb.config),
           f"{stray_masters(lb.config)} {new_pid}")
    if new_pid > 1:
        os.kill(new_pid, signal.SIGTERM)
        c.true("the new master stops",
               wait_for(lambda: not os.path.exists(f"/proc/{new_pid}"), T))
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

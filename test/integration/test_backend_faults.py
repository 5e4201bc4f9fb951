"""Backends that fail at the worst moment, and answers a client can provoke: no worker crashes,
the session moves on, and nothing a client chooses opens a healthy backend's breaker.

Real processes on 127.0.0.1: wsbal, python3-websockets backends (peer_backend.py), and scripted
backends written here on raw sockets, which put a 101 and what follows it in one send().
"""
import asyncio
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time
import urllib.request

import websockets

from wsbtest import (OP_TEXT, T, Checks, Peer, RawClient, Wsbal, frame, free_port, run,
                     run_tests, wait_for)

c = Checks()
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(head):
    key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
           if line.lower().startswith(b"sec-websocket-key:")][0]
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def answer_101(head):
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_for(head) + b"\r\n\r\n")


def server_frame(opcode, payload):
    """An unmasked frame, as a server sends them (payloads here stay below 126 bytes)."""
    return struct.pack("!BB", 0x80 | opcode, len(payload)) + payload


def read_client_frame(sock, buf):
    """(opcode, payload, rest of buf) of the next masked client frame; None at end of file."""
    while True:
        if len(buf) >= 2:
            n, pos = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, pos = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, pos = struct.unpack("!Q", buf[2:10])[0], 10
            if n < 126 or pos > 2:
                if len(buf) >= pos + 4 + n:
                    key = buf[pos:pos + 4]
                    data = bytes(b ^ key[i % 4] for i, b in enumerate(buf[pos + 4:pos + 4 + n]))
                    return buf[0] & 0x0F, data, buf[pos + 4 + n:]
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk


class Scripted:
    """A backend on a raw socket. behave(path) says what it does after a request head:
    ("close", code)  the 101 and a close frame with code in one send(), then waits for the end;
    ("fin",)         the 101, then its end of file at once;
    ("rst",)         the 101, then a reset;
    ("status", N)    an HTTP answer with status N and a short body;
    ("drop",)        no answer: the connection ends right after the request;
    ("echo",)        the 101, then echoes text and binary frames, answers pings and the close."""

    def __init__(self, ident, behave):
        self.ident, self.behave = ident, behave
        self.requests = []  # paths, in order
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(T)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, rest = head.split(b"\r\n\r\n", 1)
            path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            with self.lock:
                self.requests.append(path)
            what = self.behave(path)
            if what[0] == "close":
                # One send(): the 101 and the close frame reach wsbal in the same read.
                conn.sendall(answer_101(head) + server_frame(0x8, struct.pack("!H", what[1])))
                while conn.recv(65536):
                    pass
            elif what[0] == "fin":
                conn.sendall(answer_101(head))
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
            elif what[0] == "rst":
                conn.sendall(answer_101(head))
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif what[0] == "status":
                body = f"{what[1]} from {self.ident}\n".encode()
                conn.sendall(f"HTTP/1.1 {what[1]} Oops\r\nContent-Length: {len(body)}\r\n"
                             f"Connection: close\r\n\r\n".encode() + body)
            elif what[0] == "drop":
                pass
            elif what[0] == "echo":
                conn.sendall(answer_101(head))
                self._echo(conn, rest)
        except OSError:
            pass
        finally:
            conn.close()

    def _echo(self, conn, buf):
        while True:
            got = read_client_frame(conn, buf)
            if got is None:
                return
            op, data, buf = got
            if op == 0x8:
                conn.sendall(server_frame(0x8, data[:2]))
                return
            if op == 0x9:
                conn.sendall(server_frame(0xA, data))
            elif op in (0x1, 0x2):
                conn.sendall(server_frame(op, self.ident.encode() if data == b"who" else data))

    def count(self, path_prefix):
        with self.lock:
            return sum(p.startswith(path_prefix) for p in self.requests)

    def stop(self):
        self.stopping = True
        self.sock.close()


def backends_state(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/v1/backends", timeout=5) as r:
        got = json.loads(r.read())
    items = got["backends"] if isinstance(got, dict) else got
    return {b["name"]: (b["breaker"], b["failures"]) for b in items}


async def who(ws):
    await ws.send("who")
    return await asyncio.wait_for(ws.recv(), T)


BAD_BEHAVIOURS = [("close 1001", ("close", 1001)), ("close 1012", ("close", 1012)),
                  ("close 4000", ("close", 4000)), ("fin", ("fin",)), ("rst", ("rst",))]


def test_101_and_end_in_one_read():
    """The only primary answers 101 and at once closes (a failover code or not), ends or resets;
    two backups echo. First connect: the session starts on it. Failover: a backup closes with
    1012, the session moves to it again, then to the other backup."""
    for label, what in BAD_BEHAVIOURS:
        # The session meant to move starts on a backup: its first request here gets a 503.
        bad = Scripted("bad", lambda path, what=what: ("status", 503)
                       if path == "/moving" and bad.count("/moving") == 1 else what)
        b1, b2 = Peer("b1"), Peer("b2")
        moves = what[0] != "close" or what[1] != 4000
        held = what[0] == "close"
        # A high threshold keeps the bad backend in every session's way: each one meets it.
        lb = Wsbal([("bad", bad.url)], workers=2, sections={
            "upstream": {"breaker_threshold": "1000", "max_failovers": "10"},
            "backend:b1": {"url": b1.url, "backup": "on"},
            "backend:b2": {"url": b2.url, "backup": "on"}})
        try:
            async def first_connect(i):
                try:
                    return await first_connect_once(i)
                except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
                    return None, None, repr(e)  # a crashed worker drops the connection

            async def first_connect_once(i):
                async with websockets.connect(lb.url + f"/first{i}", compression=None,
                                              ping_interval=None) as ws:
                    try:
                        where = await who(ws)
                        await ws.send(f"hello {i}")
                        return where, await asyncio.wait_for(ws.recv(), T), None
                    except websockets.ConnectionClosed:
                        return None, None, ws.close_code

            async def many_first():
                return await asyncio.gather(*[first_connect(i) for i in range(12)])

            results = run(many_first())
            if moves:
                c.eq(f"{label}, first connect: 12 sessions moved to a backup and echo",
                     [True] * 12, [r[0] in ("b1", "b2") and r[1] == f"hello {i}"
                                   for i, r in enumerate(results)])
            else:
                c.eq(f"{label}, first connect: the backend's close reaches the client",
                     [(None, None, 4000)] * 12, results)
            c.eq(f"{label}, first connect: the bad backend saw every session", 12,
                 bad.count("/first"))

            async def failover_path():
                async with websockets.connect(lb.url + "/moving", compression=None,
                                              ping_interval=None) as ws:
                    start = await who(ws)
                    before = bad.count("/moving")
                    # The backup closes with 1012; "m1" goes right behind, held while moving.
                    # Its close came with the 101, so the bad backend was sent nothing and m1
                    # must reach the next one. (After a 101 alone, m1 is resent to the bad
                    # backend, and a message that preceded two losses is dropped: not sent.)
                    mark = len(lb.output().split("\n"))
                    await ws.send("close:1012")
                    if held:
                        await ws.send("m1")
                    # Then nothing until the move is over: a message the backup may have read
                    # before its close would be one that preceded two losses, and dropped.
                    if moves:
                        lb.wait_line(r"moved to b[12]", start=mark)
                    try:
                        echo = await asyncio.wait_for(ws.recv(), T) if held else "m1"
                        now = await who(ws)
                        return start, before, echo, now, None
                    except websockets.ConnectionClosed:
                        return start, before, None, None, ws.close_code

            try:
                start, before, echo, now, code = run(failover_path())
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
                start, before, echo, now, code = None, None, None, None, repr(e)
            c.eq(f"{label}, failover: the session started on a backup after a 503", 1, before)
            c.eq(f"{label}, failover: the move went through the bad backend again", 2,
                 bad.count("/moving"))
            if moves:
                # A failover's round starts afresh: the backup that said 1012 may take it back.
                c.true(f"{label}, failover: on a backup, the held message echoed once",
                       echo == "m1" and now in ("b1", "b2") and code is None,
                       f"{echo!r}, {now}, {code}")
            else:
                c.eq(f"{label}, failover: the new backend's close reaches the client",
                     (None, None, 4000), (echo, now, code))
            where, _, code = run(first_connect(99))
            c.true(f"{label}: wsbal still serves new sessions",
                   where in ("b1", "b2") if moves else code == 4000, f"{where}, {code}")
        finally:
            lb.stop()
            bad.stop()
            b1.stop()
            b2.stop()


def test_5xx_opens_no_breaker():
    """A path the application answers with 500, asked for over and over: each request tries
    both backends and gets 502, and neither breaker opens; others still get 101."""
    apps = [Scripted(f"app{i}", lambda path: ("status", 500) if path.startswith("/bad")
                     else ("echo",)) for i in (1, 2)]
    ap = free_port()
    lb = Wsbal([(a.ident, a.url) for a in apps], workers=2, sections={
        "upstream": {"breaker_threshold": "2", "breaker_cooldown": "60s"},
        "admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        statuses = []
        for i in range(20):
            cl = RawClient(lb.port)
            cl.request(f"/bad{i}")
            statuses.append(cl.read_head()[0])
            cl.close()
        c.eq("every request for the failing path gets 502", [502] * 20, statuses)
        c.eq("each was tried on both backends", 40, sum(a.count("/bad") for a in apps))
        c.eq("no breaker opened, nothing counted",
             {"app1": ("closed", 0), "app2": ("closed", 0)}, backends_state(ap))
        cl = RawClient(lb.port)
        cl.request("/ok")
        c.eq("a normal request still upgrades", 101, cl.read_head()[0])
        cl.close()
    finally:
        lb.stop()
        for a in apps:
            a.stop()


def test_status_gives_the_trial_back():
    """A backend whose breaker opened comes back; the trial session asks for a path it answers
    with 500. The trial is given back at once (not held until it expires, connect_timeout + 2 s),
    so the next session that reaches the backend closes the breaker."""
    mode = {"a": "drop"}
    a = Scripted("a", lambda path: ("drop",) if mode["a"] == "drop"
                 else ("status", 500) if path.startswith("/bad") else ("echo",))
    b = Scripted("b", lambda path: ("echo",))
    ap = free_port()
    lb = Wsbal([("a", a.url), ("b", b.url)], workers=1, sections={
        "upstream": {"breaker_threshold": "1", "breaker_cooldown": "1s",
                     "connect_timeout": "10s", "slow_start": "0"},
        "admin": {"address": f"127.0.0.1:{ap}"}})

    def session(path, ask=False):
        cl = RawClient(lb.port)
        try:
            cl.request(path)
            status = cl.read_head()[0]
            if status == 101 and ask:
                cl.send(frame(OP_TEXT, b"who"))
                return cl.read_frame()[2].decode()
            return status
        finally:
            cl.close()

    try:
        deadline = time.monotonic() + T
        while backends_state(ap)["a"][0] != "open" and time.monotonic() < deadline:
            session("/ok")
        c.eq("a dropped request opened the breaker", "open", backends_state(ap)["a"][0])
        mode["a"] = "healthy"
        time.sleep(1.1)  # the cooldown is the behaviour under test
        deadline = time.monotonic() + T
        while a.count("/bad") == 0 and time.monotonic() < deadline:
            c.true("a request for the failing path still upgrades elsewhere",
                   session("/bad") == 101)
        c.eq("the trial went to a request for the failing path", 1, a.count("/bad"))
        c.eq("its 500 counted nothing (one failure, the drop)", 1, backends_state(ap)["a"][1])
        t0, answers = time.monotonic(), []
        while "a" not in answers and time.monotonic() < t0 + 3:
            answers.append(session("/ok", ask=True))
        c.true("within 3 s a session reaches the backend again", "a" in answers,
               f"{len(answers)} sessions, all on {set(answers)}")
        c.eq("its first message closed the breaker", ("closed", 0), backends_state(ap)["a"])
    finally:
        lb.stop()
        a.stop()
        b.stop()


def test_client_provoked_close_opens_no_breaker():
    """A client whose first message makes the backend close with 1011 (peer_backend's
    "close:CODE"): the session moves, but the backend's answer to the client is not a failure."""
    peers = [Peer("p1"), Peer("p2")]
    ap = free_port()
    lb = Wsbal([(p.ident, p.url) for p in peers], workers=2, sections={
        "upstream": {"breaker_threshold": "2", "breaker_cooldown": "60s"},
        "admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        async def provoke(i):
            async with websockets.connect(lb.url + f"/p{i}", compression=None,
                                          ping_interval=None) as ws:
                await ws.send("close:1011")
                try:
                    return await who(ws)
                except websockets.ConnectionClosed:
                    return ws.close_code

        async def go():
            out = []
            for i in range(8):
                try:
                    out.append(await provoke(i))
                except websockets.WebSocketException as e:
                    out.append(repr(e))  # 503: every breaker open
            return out

        c.eq("every provoking session moved and lives", [True] * 8,
             [w in ("p1", "p2") for w in run(go())])
        c.eq("no breaker opened", {"p1": "closed", "p2": "closed"},
             {k: v[0] for k, v in backends_state(ap).items()})
    finally:
        lb.stop()
        for p in peers:
            p.stop()


def syn_sent_to(port):
    """Sockets on this machine still connecting (SYN_SENT) to 127.0.0.1:port."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        return sum(1 for line in f.readlines()[1:]
                   if line.split()[2] == want and line.split()[3] == "02")


def test_request_waits_for_the_connect():
    """A backend whose listen queue is full drops wsbal's SYN, so the connection is still under
    way when wsbal writes the upgrade request: the request waits until the connection is up (the
    SYN sent again once the queue has room) and the upgrade completes."""
    slow = socket.socket()
    slow.bind(("127.0.0.1", 0))
    slow.listen(0)
    port = slow.getsockname()[1]
    fillers = []
    for _ in range(2):  # a queue of one, and one connect more that stays in SYN_SENT
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    lb = Wsbal([("a", f"ws://127.0.0.1:{port}")], workers=1,
               sections={"upstream": {"connect_timeout": "20s"}})
    cl = None
    try:
        c.true("a filler connect is held back", wait_for(lambda: syn_sent_to(port) >= 1))
        cl = RawClient(lb.port)
        cl.request("/slow")
        c.true("wsbal's connect is held back too", wait_for(lambda: syn_sent_to(port) >= 2))
        got = None
        slow.settimeout(T)
        while got is None:  # the fillers come first; wsbal's connection is the one that speaks
            conn, _ = slow.accept()
            conn.settimeout(0.5)
            try:
                head = conn.recv(65536)
            except socket.timeout:
                conn.close()
                continue
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            got = conn
        got.sendall(answer_101(head))
        c.eq("the upgrade completes once the connection is up", 101, cl.read_head()[0])
        got.close()
    finally:
        if cl is not None:
            cl.close()
        lb.stop()
        slow.close()
        for f in fillers:
            f.close()


def main():
    return run_tests(c, test_101_and_end_in_one_read, test_request_waits_for_the_connect, test_5xx_opens_no_breaker,
                     test_status_gives_the_trial_back,
                     test_client_provoked_close_opens_no_breaker)


if __name__ == "__main__":
    sys.exit(main())

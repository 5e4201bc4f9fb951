"""Failover: sessions move to another backend without the client noticing.

Real processes on 127.0.0.1: wsbal, python3-websockets backends (peer_backend.py) and wsbal-echo,
clients from python3-websockets or hand-built frames. Every wait has a deadline.
"""
import asyncio
import random
import re
import signal
import struct
import sys
import time

import websockets

from wsbtest import (ALL_PROCESSES, OP_CLOSE, OP_CONT, OP_TEXT, T, Checks, Echo, Peer, RawClient, Wsbal, frame,
                     free_port, run, run_tests)

c = Checks()
rng = random.Random(20261123)


def restart(peer, **kw):
    """Kills a backend outright and starts it again on the same port."""
    peer.stop(sig=signal.SIGKILL)
    return Peer(peer.ident, port=peer.port, **kw)


async def who(ws):
    await ws.send("who")
    return await asyncio.wait_for(ws.recv(), T)


async def stream_through_kill(lb, peers, n_messages=60, window=4):
    """Streams numbered messages with a few in flight; kills the serving backend mid-way."""
    async with websockets.connect(lb.url + "/stream", compression=None, ping_interval=None) as ws:
        serving = await who(ws)
        kill_after = rng.randrange(5, n_messages - 10)
        got, sent, killed = [], 0, None
        while len(got) < n_messages:
            while sent < n_messages and sent - len(got) < window:
                await ws.send(f"m{sent}")
                sent += 1
            got.append(await asyncio.wait_for(ws.recv(), T))
            if len(got) == kill_after and killed is None:
                idx = [p.ident for p in peers].index(serving)
                peers[idx] = restart(peers[idx])
                killed = serving
        now = await who(ws)
        await ws.close()
        return got, killed, now, ws.close_code


def test_kill_rounds():
    peers = [Peer("p1"), Peer("p2")]
    lb = Wsbal([(p.ident, p.url) for p in peers], sections={"upstream": {"max_failovers": "100"}})
    try:
        moved, ids = 0, set()
        for rnd in range(20):
            got, killed, now, code = run(stream_through_kill(lb, peers))
            expected = [f"m{i}" for i in range(60)]
            if not c.eq(f"round {rnd}: every message echoed once, in order", expected, got):
                break
            c.true(f"round {rnd}: now on the other backend", now != killed, f"{killed} -> {now}")
            c.eq(f"round {rnd}: the client closed normally, never saw a close", 1000, code)
            moved += now != killed
        c.eq("20 sessions moved", 20, moved)
        # The new backend saw the reconnect header carrying the session id wsbal logged.
        lost = set(re.findall(r"session ([0-9a-f]{16}): backend \S+ lost", lb.output()))
        seen = set()
        for p in ALL_PROCESSES:  # the killed backends' logs too
            seen |= set(re.findall(r"connect reconnect=([0-9a-f]{16})", p.output()))
        c.true("every failover reconnect carried the session id", lost and lost <= seen,
               f"lost {sorted(lost)[:3]}, seen {sorted(seen)[:3]}")
    finally:
        lb.stop()
        for p in peers:
            p.stop()


def test_close_codes():
    peers = [Peer("p1"), Peer("p2")]
    lb = Wsbal([(p.ident, p.url) for p in peers])
    try:
        async def backend_closes(code):
            async with websockets.connect(lb.url + "/", compression=None, ping_interval=None) as ws:
                before = await who(ws)
                await ws.send(f"close:{code}")
                try:
                    after = await who(ws)
                    await ws.send("still there?")
                    echo = await asyncio.wait_for(ws.recv(), T)
                    return before, after, echo, None
                except websockets.ConnectionClosed:
                    return before, None, None, ws.close_code
        for code in (1001, 1011, 1012):
            before, after, echo, closed = run(backend_closes(code))
            c.true(f"backend close {code} is transparent", closed is None and after not in (None, before)
                   and echo == "still there?", f"{before} -> {after}, echo {echo!r}, closed {closed}")
            c.true(f"the log names close {code} as the reason",
                   lb.wait_line(rf"backend p\d closed with {code}: failing over") is not None, "")
        for code in (1000, 4000):
            before, after, echo, closed = run(backend_closes(code))
            c.eq(f"backend close {code} is relayed to the client", code, closed)
    finally:
        lb.stop()
        for p in peers:
            p.stop()


def test_bad_replacements():
    """Backends that hang, refuse with 503 or drop after 101: bounded, then 1013."""
    for mode, extra in (("silent", {}), ("503", {}),
                        ("drop", {"max_failovers": "3", "breaker_threshold": "1"})):
        good = Peer("good")
        bads = [Peer(f"{mode}{i}", mode=mode) for i in range(2)]
        up = {"upstream": {"connect_timeout": "1s", **extra}}
        lb = Wsbal([("good", good.url)], sections=up)
        try:
            async def go():
                async with websockets.connect(lb.url + "/", compression=None, ping_interval=None) as ws:
                    c.eq(f"{mode}: starts on the good backend", "good", await who(ws))
                    verdict, _ = lb.reload([("good", good.url)] + [(b.ident, b.url) for b in bads], up)
                    c.true(f"{mode}: reload adds the bad backends", verdict and "reloaded" in verdict,
                           str(verdict))
                    t0 = time.monotonic()
                    good.stop(sig=signal.SIGKILL)
                    try:
                        await asyncio.wait_for(ws.recv(), 20)
                    except websockets.ConnectionClosed:
                        pass
                    return ws.close_code, time.monotonic() - t0
            code, took = run(go())
            c.eq(f"{mode}: the client gets 1013 when no backend takes the session", 1013, code)
            c.true(f"{mode}: within a bounded time", took < 10, f"{took:.1f}s")
            if mode == "drop":
                c.true("drop: the backends dropping every session after 101 trip their breaker",
                       lb.wait_line(r"breaker of backend drop\d open") is not None,
                       lb.output()[-1500:])
        finally:
            lb.stop()
            for b in bads:
                b.stop()


def test_subprotocol_mismatch():
    p1 = Peer("p1", protocol="chat")
    other = Peer("other", protocol="other")
    p3 = Peer("p3", protocol="chat")
    lb = Wsbal([("p1", p1.url)])
    try:
        async def go():
            async with websockets.connect(lb.url + "/", subprotocols=["chat"], compression=None,
                                          ping_interval=None) as ws:
                c.eq("subprotocol chat chosen", "chat", ws.subprotocol)
                lb.reload([("p1", p1.url), ("other", other.url), ("p3", p3.url)])
                p1.stop(sig=signal.SIGKILL)
                return await who(ws)
        c.eq("the backend without the client's subprotocol is skipped", "p3", run(go()))
    finally:
        lb.stop()
        for p in (p1, other, p3):
            p.stop()


def session_on_p1_then_p2():
    """A raw session held on p1, then p2 added by a reload: where a failover must go.
    Returns the peers, wsbal, the client and the log mark after the reload."""
    p1, p2 = Peer("p1"), Peer("p2")
    lb = Wsbal([("p1", p1.url)])
    cl = RawClient(lb.port)
    cl.request("/")
    c.eq("raw session upgrades", 101, cl.read_head()[0])
    lb.reload([("p1", p1.url), ("p2", p2.url)])
    return p1, p2, lb, cl, len(lb.output().split("\n"))


def test_fragmented_in_flight():
    p1, p2, lb, cl, mark = session_on_p1_then_p2()
    try:
        cl.send(frame(OP_TEXT, b"first part, ", fin=False))
        time.sleep(0.2)  # the fragment reaches p1 before it dies
        p1.stop(sig=signal.SIGKILL)
        c.true("wsbal moved the session", lb.wait_line(r"moved to p2", start=mark) is not None,
               lb.output()[-1500:])
        cl.send(frame(OP_CONT, b"second part, ", fin=False) + frame(OP_CONT, b"end"))
        fin, op, payload = cl.read_frame()
        c.eq("the fragmented message arrives whole at the new backend",
             (OP_TEXT, b"first part, second part, end"), (op, payload))
        cl.close()
    finally:
        lb.stop()
        p2.stop()


def test_backend_dies_mid_message():
    """A backend message cut off by the backend's death is never half-delivered."""
    p1, p2, lb, cl, mark = session_on_p1_then_p2()
    try:
        cl.send(frame(OP_TEXT, b"halfdie:p1"))
        c.true("the session moved after the backend died mid-message",
               lb.wait_line(r"moved to p2", start=mark) is not None, lb.output()[-1500:])
        cl.send(frame(OP_TEXT, b"who"))
        frames = [cl.read_frame(), cl.read_frame()]
        # p1's half message is gone; the unanswered request went to p2, which echoed it whole.
        c.eq("the client never saw the half message, only whole ones from the new backend",
             [(True, OP_TEXT, b"halfdie:p1"), (True, OP_TEXT, b"p2")], frames)
        cl.close()
    finally:
        lb.stop()
        p1.stop()
        p2.stop()


def test_silent_backend_detected():
    """A backend that stops answering pings is taken as lost after ping_interval."""
    mute, p2 = Peer("mute", mode="mute"), Peer("p2")
    up = {"upstream": {"ping_interval": "1s"}}
    lb = Wsbal([("mute", mute.url)], sections=up)
    try:
        async def go():
            async with websockets.connect(lb.url + "/", compression=None, ping_interval=None) as ws:
                lb.reload([("mute", mute.url), ("p2", p2.url)], up)
                t0 = time.monotonic()
                await ws.send("who")  # unanswered by the mute backend, resent to p2
                answer = await asyncio.wait_for(ws.recv(), 10)
                return answer, time.monotonic() - t0
        answer, took = run(go())
        c.eq("a message the mute backend swallowed is answered by the next one", "p2", answer)
        c.true("after about two ping intervals", 0.9 < took < 5, f"{took:.1f}s")
        c.true("the log names the missing pong as the reason",
               lb.wait_line(r"backend mute lost \(no pong\): failing over") is not None, "")
    finally:
        lb.stop()
        mute.stop()
        p2.stop()


def test_breaker():
    """Consecutive failures open a backend's breaker; after the cooldown one trial decides."""
    import json
    import urllib.request
    ap = free_port()
    dead = f"ws://127.0.0.1:{free_port()}"
    p1 = Peer("p1")
    lb = Wsbal([("dead", dead), ("p1", p1.url)], workers=2, sections={
        "upstream": {"breaker_threshold": "2", "breaker_cooldown": "2s"},
        "admin": {"address": f"127.0.0.1:{ap}"}})

    def dead_state():
        with urllib.request.urlopen(f"http://127.0.0.1:{ap}/api/v1/backends/dead", timeout=5) as r:
            b = json.loads(r.read())
        return b["breaker"], b["failures"]

    def session():
        cl = RawClient(lb.port)
        cl.request("/")
        status = cl.read_head()[0]
        cl.close()
        return status

    try:
        statuses = []
        deadline = time.monotonic() + T
        while dead_state()[0] != "open" and time.monotonic() < deadline:
            statuses.append(session())
        c.eq("every session still upgrades (the dead backend is skipped)", [101] * len(statuses),
             statuses)
        state, failures = dead_state()
        c.eq("two failures in a row open the breaker", ("open", 2), (state, failures))
        for _ in range(10):
            session()
        c.eq("while open, nobody tries the backend", ("open", 2), dead_state())
        time.sleep(2.2)  # the cooldown is the behaviour under test
        for _ in range(10):
            session()
        state, failures = dead_state()
        c.eq("after the cooldown exactly one trial ran, failed, and opened it again",
             ("open", 3), (state, failures))
        c.true("the breaker's changes are logged",
               lb.wait_line(r"breaker of backend dead: trial session") is not None, "")
    finally:
        lb.stop()
        p1.stop()


async def streamer(url, stop, stats, idx):
    async with websockets.connect(url, compression=None, ping_interval=None) as ws:
        i = 0
        while not stop.is_set():
            await ws.send(f"{idx}:{i}")
            got = await asyncio.wait_for(ws.recv(), T)
            if got != f"{idx}:{i}":
                stats["wrong"].append((f"{idx}:{i}", got))
            stats["echoed"] += 1
            i += 1
            await asyncio.sleep(0.05)
        await ws.close()
        stats["clean"] += ws.close_code == 1000


def test_rolling_restart():
    ports = [free_port() for _ in range(3)]
    echoes = [Echo(f"e{i}", "--port", str(ports[i])) if False else None for i in range(3)]
    import subprocess
    from wsbtest import ECHO, Process

    def start_echo(i):
        p = Process([ECHO, "--host", "127.0.0.1", "--port", str(ports[i]), "--id", f"e{i}"])
        if p.wait_line(r"listening on") is None:
            raise RuntimeError(p.output())
        return p

    echoes = [start_echo(i) for i in range(3)]
    lb = Wsbal([(f"e{i}", f"ws://127.0.0.1:{ports[i]}") for i in range(3)],
               sections={"upstream": {"max_failovers": "10"}})
    stats = {"echoed": 0, "wrong": [], "clean": 0}
    try:
        async def go():
            stop = asyncio.Event()
            tasks = [asyncio.ensure_future(streamer(lb.url + f"/r{i}", stop, stats, i))
                     for i in range(200)]
            await asyncio.sleep(1)
            for i in range(3):
                echoes[i].stop(sig=signal.SIGKILL)
                await asyncio.sleep(0.3)
                echoes[i] = await asyncio.get_running_loop().run_in_executor(None, start_echo, i)
                await asyncio.sleep(1)
            stop.set()
            return await asyncio.gather(*tasks, return_exceptions=True)

        results = run(go())
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        c.eq("rolling restart: no session saw a close or an error", [], errors[:3])
        c.eq("rolling restart: every echo right (none lost, none duplicated)", [], stats["wrong"][:3])
        c.eq("rolling restart: all 200 sessions closed normally at the end", 200, stats["clean"])
        moved = [int(x) for x in re.findall(r"moved to \S+ in (\d+) ms", lb.output())]
        moved.sort()
        if moved:
            p50, p99 = moved[len(moved) // 2], moved[min(len(moved) - 1, len(moved) * 99 // 100)]
            print(f"failover reconnect time over {len(moved)} moves: p50 {p50} ms, p99 {p99} ms, "
                  f"{stats['echoed']} echoes", flush=True)
        c.true("rolling restart: sessions moved", len(moved) >= 100, f"{len(moved)} moves")
    finally:
        lb.stop()
        for e in echoes:
            e.stop()


def main():
    return run_tests(c, test_close_codes, test_subprotocol_mismatch, test_fragmented_in_flight,
                     test_backend_dies_mid_message, test_silent_backend_detected,
                     test_bad_replacements, test_breaker, test_kill_rounds, test_rolling_restart)


if __name__ == "__main__":
    sys.exit(main())

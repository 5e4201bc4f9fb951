"""Worker limits against peers that lie, stall or flood: the lingering close, pongs during a
failover, failover_buffer_total, and accepting when no session can be allocated.

Real processes on 127.0.0.1 (wsbal, wsbal-echo, peer_backend.py) and raw-socket clients. Every
wait has a deadline.
"""
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.request

from wsbtest import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, T, Checks, Echo, Peer, RawClient, Wsbal,
                     frame, free_port, metric_value, run_tests)

c = Checks()


def upgraded(lb, path="/"):
    """A raw client whose upgrade went through."""
    return RawClient.upgraded(lb.port, path)[0]


def wsbal_or_stop(peers, *args, **kw):
    """Starts wsbal; when it does not start, stops the peers first, so none outlives the test."""
    try:
        return Wsbal(*args, **kw)
    except Exception:
        for p in peers:
            p.stop()
        raise


def send_ignoring_reset(cl, data):
    """Sends everything, or as much as the peer took before resetting; returns the error."""
    try:
        cl.send(data)
        return None
    except (ConnectionResetError, BrokenPipeError) as e:
        return e


def wait_metric(admin_port, name, want, timeout=T):
    deadline = time.monotonic() + timeout
    while True:
        got = metric_value(admin_port, name)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


TO_CLIENT = 'wsbal_messages_total{direction="backend_to_client"}'
TO_BACKEND = 'wsbal_messages_total{direction="client_to_backend"}'


def slow_reader(lb):
    """A raw client with a small receive buffer: what it has not read yet stays with wsbal."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(T)
    sock.connect(("127.0.0.1", lb.port))
    cl = RawClient.__new__(RawClient)
    cl.sock, cl.buf = sock, b""
    return cl


def close_code_after_burst(lb, ap, bad, burst, backlog=200):
    """A client that has not read its last backlog echoes yet sends a bad frame and a burst
    behind it (from a thread, reading meanwhile, as a browser would). Returns the echoes it
    read, what ended them (the close code, or the error) and what came after."""
    cl = slow_reader(lb)
    cl.request("/")
    if cl.read_head()[0] != 101:
        raise RuntimeError("no upgrade")
    before = metric_value(ap, TO_CLIENT)
    cl.send(b"".join(frame(OP_TEXT, b"%04d" % i + b"." * 996) for i in range(backlog)))
    # Every echo has left wsbal towards the client (most wait in the socket buffers).
    wait_metric(ap, TO_CLIENT, before + backlog)
    errors = []
    sender = threading.Thread(target=lambda: errors.append(send_ignoring_reset(cl, bad + burst)))
    sender.start()
    echoes, ended = 0, None
    try:
        while ended is None:
            fin, op, payload = cl.read_frame()
            if op == OP_CLOSE:
                ended = ("close", struct.unpack("!H", payload[:2])[0])
            else:
                echoes += fin  # wsbal-echo may answer a message in fragments
    except (ConnectionResetError, EOFError, socket.timeout) as e:
        ended = ("error", repr(e))
    try:
        rest = cl.read_rest(timeout=5)
        after = "eof" if rest == b"" else f"{len(rest)} more bytes"
    except (ConnectionResetError, socket.timeout) as e:
        after = repr(e)
    sender.join(T)
    cl.close()
    return echoes, ended, after


BURST = os.urandom(600 * 1024)  # more than the socket buffers hold: wsbal must read it to see EOF


def test_lingering_close_of_bad_frames():
    """wsbal's own close (1002, 1009) reaches a client that is still sending a burst, after
    everything that was on its way to the client."""
    e1 = Echo("e1")
    ap = free_port()
    lb = wsbal_or_stop([e1], [("e1", e1.url)], workers=1, sections={
        "listen": {"max_message_bytes": "1k"}, "admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        # Unmasked client frame: 1002; then 600 KiB the client had already sent.
        got = close_code_after_burst(lb, ap, frame(OP_TEXT, b"x" * 10, mask=False), BURST)
        c.eq("a client sending a burst behind its bad frame reads every echo, 1002, end of file",
             (200, ("close", 1002), "eof"), got)
        # An oversized message: 1009, with its payload and a burst behind.
        got = close_code_after_burst(lb, ap, frame(OP_TEXT, b"y" * 4096), BURST)
        c.eq("a client sending a burst behind its oversized message reads every echo, 1009, "
             "end of file", (200, ("close", 1009), "eof"), got)
        # The worker goes on: another session echoes.
        cl = upgraded(lb)
        cl.send(frame(OP_TEXT, b"still here"))
        c.eq("the worker goes on serving", (True, OP_TEXT, b"still here"), cl.read_frame())
        cl.close()
    finally:
        lb.stop()
        e1.stop()


def test_lingering_close_of_http_errors():
    """An error answer (431) reaches a client that goes on sending after its head."""
    e1 = Echo("e1")
    lb = wsbal_or_stop([e1], [("e1", e1.url)], workers=1,
                       sections={"listen": {"max_header_bytes": "1k"}})
    try:
        cl = slow_reader(lb)
        err = send_ignoring_reset(cl, b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (600 * 1024))
        try:
            got = cl.read_head()[0]
        except (ConnectionResetError, EOFError) as e:
            got = f"{e!r} (while sending: {err!r})"
        c.eq("431 reaches a client still sending its oversized head", 431, got)
        try:
            cl.read_rest(timeout=5)
            after = "eof"
        except (ConnectionResetError, socket.timeout) as e:
            after = repr(e)
        c.eq("then end of file, not a reset (431)", "eof", after)
        cl.close()
    finally:
        lb.stop()
        e1.stop()


def flood_until_closed(cl, chunk, pause, limit):
    """Sends chunk every pause seconds until the connection breaks; returns (seconds from the
    close frame to the break or None, the close code seen)."""
    sock = cl.sock
    sock.setblocking(False)
    code, closed_at, buf = None, None, b""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            sock.send(chunk)
        except BlockingIOError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            return (time.monotonic() - closed_at if closed_at else None), code
        try:
            data = sock.recv(65536)
            if data and closed_at is None:
                buf += data
                if len(buf) >= 4 and buf[0] & 0x0F == OP_CLOSE:
                    code = struct.unpack("!H", buf[2:4])[0]
                    closed_at = time.monotonic()
        except BlockingIOError:
            pass
        except ConnectionResetError:
            return (time.monotonic() - closed_at if closed_at else None), code
        if pause:
            time.sleep(pause)
    return None, code


def test_linger_is_bounded():
    """A client that floods after its bad frame is drained for at most 2 s or 16 MiB."""
    e1 = Echo("e1")
    lb = wsbal_or_stop([e1], [("e1", e1.url)], workers=1)
    try:
        # Slowly (about 3 MiB/s, so below the byte cap within 2 s): the time bound ends it.
        cl = upgraded(lb)
        cl.send(frame(OP_TEXT, b"bad", mask=False))
        took, code = flood_until_closed(cl, b"z" * 65536, 0.02, 8)
        print(f"slow flood (64 KiB every 20 ms) ended {took} s after the close frame", flush=True)
        c.eq("slow flood: the close code came first", 1002, code)
        c.true("slow flood: the connection ends about 2 s after the close", took is not None
               and 1.5 < took < 4, f"{took}")
        cl.close()
        # As fast as it can: the byte cap ends it sooner.
        cl = upgraded(lb)
        cl.send(frame(OP_TEXT, b"bad", mask=False))
        took, code = flood_until_closed(cl, b"z" * 262144, 0, 8)
        print(f"fast flood ended {took} s after the close frame", flush=True)
        c.eq("fast flood: the close code came first", 1002, code)
        c.true("fast flood: the connection ends before the 2 s are over", took is not None
               and took < 1.9, f"{took}")
        cl.close()
        cl = upgraded(lb)
        cl.send(frame(OP_TEXT, b"after the floods"))
        c.eq("the worker serves others afterwards", (True, OP_TEXT, b"after the floods"),
             cl.read_frame())
        cl.close()
    finally:
        lb.stop()
        e1.stop()


def worker_rss_kib(lb):
    pids = [p for p in lb.pids() if p != lb.proc.pid]
    with open(f"/proc/{pids[0]}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_pongs_during_failover_obey_backpressure():
    """A client flooding pings without reading while its session moves is paused, not served."""
    p1 = Peer("p1")
    hang = Peer("hang", mode="silent")  # the replacement never answers: the move lasts
    # The replacement is a backup: the session starts on p1 and can only move to it.
    # AddressSanitizer's quarantine keeps the queue's outgrown copies resident (13-16.5 MiB of
    # growth for 5 MiB of pings under ASan on io_uring): off, so RSS means what it does unsanitized.
    no_quarantine = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"}
    lb = wsbal_or_stop([p1, hang], [("p1", p1.url)], workers=1, extra_env=no_quarantine, sections={
        "upstream": {"connect_timeout": "10s"},
        "backend:hang": {"url": hang.url, "backup": "on"}})
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.settimeout(T)
        sock.connect(("127.0.0.1", lb.port))
        cl = RawClient.__new__(RawClient)
        cl.sock, cl.buf = sock, b""
        cl.request("/")
        c.eq("upgraded", 101, cl.read_head()[0])
        cl.send(frame(OP_TEXT, b"hello"))
        c.eq("served by p1", (True, OP_TEXT, b"hello"), cl.read_frame())
        with lb.cond:
            mark = len(lb.lines)
        p1.stop(sig=signal.SIGKILL)
        c.true("the session starts moving", lb.wait_line(r"failing over", start=mark) is not None)
        rss_before = worker_rss_kib(lb)
        pings = b"".join(frame(OP_PING, b"p" * 125) for _ in range(500))
        sock.setblocking(False)
        sent, stalled_since, start = 0, None, time.monotonic()
        while sent < 48 << 20 and time.monotonic() - start < 6:
            try:
                off = sent % len(pings)  # a partial send goes on where it stopped
                sent += sock.send(pings[off:])
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1:
                    break  # wsbal stopped reading us
                select.select([], [sock], [], 0.1)
        grew = worker_rss_kib(lb) - rss_before
        print(f"pings sent during the failover: {sent >> 10} KiB; worker RSS grew {grew} KiB",
              flush=True)
        c.true("wsbal stops reading a ping flood whose pongs are not read", sent < 24 << 20,
               f"{sent >> 10} KiB of pings taken")
        c.true("the pongs queued stay bounded", grew < 16 << 10, f"RSS grew {grew} KiB")
        # Reading again, the client gets its pongs and wsbal takes pings again.
        sock.setblocking(True)
        sock.settimeout(T)
        cl.buf = b""
        c.eq("the client reads its pongs", OP_PONG, cl.read_frame()[1])
        cl.close()
    finally:
        lb.stop()
        hang.stop()
        p1.stop()


def session_ids(admin_port):
    import json
    body = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/v1/sessions",
                                  timeout=T).read()
    return {s["path"]: s["id"] for s in json.loads(body)["sessions"]}


def test_failover_buffer_total():
    """Sessions whose backend never answers: their windows together stay under the worker's
    cap, the oldest give theirs up first, and a failover then resends only the others'."""
    mute, e2 = Peer("mute", mode="mute"), Echo("e2")
    ap = free_port()
    window, total, n, msgs, size = 64 << 10, 256 << 10, 8, 12, 4000
    # The echo backend is a backup: every session starts on the mute one.
    lb = wsbal_or_stop([mute, e2], [("mute", mute.url)], workers=1, log_level="debug", sections={
        "upstream": {"failover_buffer": "64k", "failover_buffer_total": "256k"},
        "admin": {"address": f"127.0.0.1:{ap}"},
        "backend:e2": {"url": e2.url, "backup": "on"}})
    try:
        c.eq("no window held at first", 0, metric_value(ap, "wsbal_failover_buffer_bytes"))
        clients, held = [], []
        for i in range(n):
            clients.append(upgraded(lb, f"/s{i}"))
        ids = session_ids(ap)
        for i, cl in enumerate(clients):
            with lb.cond:
                mark = len(lb.lines)
            cl.send(b"".join(frame(OP_TEXT, bytes([65 + i]) * size) for _ in range(msgs)))
            if i < total // window:
                got = wait_metric(ap, "wsbal_failover_buffer_bytes", window * (i + 1))
            else:
                # Each later session's window makes the oldest remaining one give up.
                oldest = ids[f"/s{i - total // window}"]
                c.true(f"session {i}: the oldest window ({oldest}) is given up",
                       lb.wait_line(rf"session {oldest}: failover_buffer_total reached",
                                    start=mark) is not None)
                got = wait_metric(ap, "wsbal_failover_buffer_bytes", total)
            held.append(got)
        print(f"wsbal_failover_buffer_bytes after each session: {held}", flush=True)
        c.eq("the gauge grows with the windows, then stays at the cap",
             [window * min(i + 1, total // window) for i in range(n)], held)
        given_up = re.findall(r"session (\w+): failover_buffer_total reached", lb.output())
        c.eq("exactly the oldest windows were given up, in order",
             [ids[f"/s{i}"] for i in range(n - total // window)], given_up)
        # The mute backend dies: every session moves to the echo backend. Those that kept their
        # window get their 12 messages echoed; those that gave it up get nothing back.
        mute.stop(sig=signal.SIGKILL)
        for i, cl in enumerate(clients):
            cl.send(frame(OP_TEXT, b"after"))
            want = ([] if i < n - total // window else [bytes([65 + i]) * size] * msgs) + [b"after"]
            got = [read_message(cl) for _ in want]  # wsbal-echo may answer in fragments
            c.true(f"session {i}: resent after the move: {len(want) - 1} messages",
                   got == want, f"{[g[:8] for g in got]}")
        c.eq("windows answered by the new backend are let go",
             0, wait_metric(ap, "wsbal_failover_buffer_bytes", 0))
        for cl in clients:
            cl.close()
    finally:
        lb.stop()
        mute.stop()
        e2.stop()


def read_message(cl):
    """The next whole message, its fragments joined."""
    data, fin = b"", False
    while not fin:
        fin, op, payload = cl.read_frame()
        data += payload
    return data


def test_window_never_keeps_half_a_message():
    """A message whose first fragment fits failover_buffer and whose last does not leaves the
    window whole: a failover must not resend its first half in front of the next message."""
    mute, e2 = Peer("mute", mode="mute"), Echo("e2")
    ap = free_port()
    lb = wsbal_or_stop([mute, e2], [("mute", mute.url)], workers=1, sections={
        "upstream": {"failover_buffer": "64k"}, "admin": {"address": f"127.0.0.1:{ap}"},
        "backend:e2": {"url": e2.url, "backup": "on"}})
    try:
        cl = upgraded(lb)
        cl.send(frame(OP_TEXT, b"a" * 40000, fin=False) + frame(0, b"b" * 40000))
        cl.send(frame(OP_TEXT, b"m2"))
        # Both messages relayed to mute before it dies: a message wsbal has not read yet is not
        # in the window and would rightly reach e2 whole after the move.
        c.eq("both messages relayed to mute", 2, wait_metric(ap, TO_BACKEND, 2))
        with lb.cond:
            mark = len(lb.lines)
        # The two unanswered messages: only m2 could be kept whole.
        mute.stop(sig=signal.SIGKILL)
        c.true("the session moves", lb.wait_line(r"moved to e2", start=mark) is not None)
        cl.send(frame(OP_TEXT, b"after"))
        got = []
        try:
            got = [read_message(cl), read_message(cl)]
        except (EOFError, ConnectionResetError, socket.timeout) as e:
            got.append(repr(e))
        c.eq("the new backend gets m2 whole, then what follows; no half message",
             [b"m2", b"after"], [g[:40] for g in got])
        cl.close()
    finally:
        lb.stop()
        mute.stop()
        e2.stop()


def test_accept_without_memory():
    """A session that cannot be allocated drops its connection; the listener goes on."""
    e1 = Echo("e1")
    lb = wsbal_or_stop([e1], [("e1", e1.url)], workers=1, extra_env={"WSB_TEST_FAIL_ACCEPT": "3"})
    try:
        for i in range(3):
            cl = RawClient(lb.port)
            cl.request("/")
            c.true(f"connection {i} without memory is closed", cl.closed_by_peer(timeout=5))
            cl.close()
        deadline = time.monotonic() + T
        while lb.output().count("connection dropped") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the log line may come after the client saw its connection end
        c.eq("each drop is logged", 3, lb.output().count("connection dropped"))
        cl = RawClient(lb.port)
        cl.sock.settimeout(5)
        try:
            cl.request("/")
            status = cl.read_head(timeout=5)[0]
            cl.send(frame(OP_TEXT, b"served"))
            got = (status, cl.read_frame(timeout=5))
        except (socket.timeout, EOFError, ConnectionResetError) as e:
            got = repr(e)
        c.eq("the next connection is served", (101, (True, OP_TEXT, b"served")), got)
        cl.close()
    finally:
        lb.stop()
        e1.stop()


def main():
    only = sys.argv[1:]
    tests = [test_lingering_close_of_bad_frames, test_lingering_close_of_http_errors,
             test_linger_is_bounded, test_pongs_during_failover_obey_backpressure,
             test_failover_buffer_total, test_window_never_keeps_half_a_message,
             test_accept_without_memory]
    return run_tests(c, *[t for t in tests if not only or t.__name__ in only])


if __name__ == "__main__":
    sys.exit(main())

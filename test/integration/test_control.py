"""wsbal's control plane: graceful stop, a second stop signal, a dead master, respawn counts.

Real processes on 127.0.0.1, real clients; every wait has a deadline.
"""
import os
import re
import signal
import socket
import struct
import sys
import time

from wsbtest import (OP_CLOSE, OP_TEXT, T, Chatters, Checks, Echo, RawClient, Wsbal,
                     close_payload, frame, metric_value, run, run_tests, socket_fds, tcp_table)

c = Checks()


def open_session(lb):
    cl = RawClient(lb.port)
    cl.request("/")
    status = cl.read_head()[0]
    c.eq("session upgrades", 101, status)
    return cl


def echo_once(cl, text):
    cl.send(frame(OP_TEXT, text))
    fin, op, payload = cl.read_frame()
    return op, payload


def close_code(cl, timeout=T):
    fin, op, payload = cl.read_frame(timeout=timeout)
    if op != OP_CLOSE:
        return (op, payload)
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except OSError:
        return True


def test_graceful_stop(echo):
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "2s"}})
    cl = open_session(lb)
    t0 = time.monotonic()
    lb.proc.send_signal(signal.SIGTERM)
    c.true("master logs the stop", lb.wait_line(r"stopping; sessions have 2000 ms") is not None,
           lb.output()[-1000:])
    # Within the grace period the session still works and nothing new is accepted.
    c.eq("a live session still relays while draining", (OP_TEXT, b"still"), echo_once(cl, b"still"))
    deadline = time.monotonic() + 1.5
    while not refused(lb.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    c.true("new connections are refused while draining", refused(lb.port), "port still accepts")
    c.eq("the live session still relays after that", (OP_TEXT, b"more"), echo_once(cl, b"more"))
    c.eq("after shutdown_timeout the client gets close 1001", 1001, close_code(cl, timeout=6))
    took = time.monotonic() - t0
    c.true("no sooner than shutdown_timeout", took >= 1.8, f"{took:.2f}s")
    cl.send(frame(OP_CLOSE, close_payload(1001)))
    c.eq("wsbal exits 0 after a graceful stop", 0, lb.stop(sig=0))
    cl.close()

    # Sessions that end by themselves let wsbal exit before the timeout.
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "30s"}})
    cl = open_session(lb)
    t0 = time.monotonic()
    lb.proc.send_signal(signal.SIGTERM)
    lb.wait_line(r"stopping;")
    cl.send(frame(OP_CLOSE, close_payload(1000)))
    c.eq("the client's own close is answered while draining", 1000, close_code(cl))
    cl.close()
    c.eq("wsbal exits 0 once its last session ended", 0, lb.stop(sig=0, timeout=10))
    c.true("well before shutdown_timeout", time.monotonic() - t0 < 10, "")

    # A second stop signal closes every session at once.
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "60s"}})
    cl = open_session(lb)
    lb.proc.send_signal(signal.SIGTERM)
    lb.wait_line(r"stopping;")
    t0 = time.monotonic()
    lb.proc.send_signal(signal.SIGINT)
    c.eq("a second stop signal sends 1001 at once", 1001, close_code(cl, timeout=5))
    c.true("at once", time.monotonic() - t0 < 3, f"{time.monotonic() - t0:.2f}s")
    cl.close()
    c.eq("wsbal exits 0 after the second signal", 0, lb.stop(sig=0))


def test_stop_signal_flood(echo):
    """A worker that keeps getting SIGTERM while it closes its handles still exits by itself:
    closing a libuv signal handle restores the default action, which would kill it."""
    lb = Wsbal([("e1", echo.url)], workers=2)
    try:
        victim = min(p for p in lb.pids() if p != lb.proc.pid)
        deadline = time.monotonic() + 5
        sent = 0
        while time.monotonic() < deadline and sent < 200000:
            try:
                os.kill(victim, signal.SIGTERM)
            except ProcessLookupError:
                break
            sent += 1
        ended = lb.wait_line(rf"worker \d+ \(pid {victim}\) (exited with status \d+|killed by signal \d+)")
        c.true("a worker flooded with SIGTERM exits with status 0, not by the signal",
               ended is not None and ended.group(1) == "exited with status 0",
               ended.group(0) if ended else lb.output()[-800:])
        c.true("the worker closed by itself (signals sent)", sent > 1, str(sent))
    finally:
        lb.stop()


def test_master_gone(echo):
    """Workers notice a dead master (EOF on their control socket) and drain rather than linger."""
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "1s"}})
    workers = [p for p in lb.pids() if p != lb.proc.pid]
    cl = open_session(lb)
    lb.proc.send_signal(signal.SIGKILL)
    c.eq("its client hears 1001 once the drain ends", 1001, close_code(cl, timeout=6))
    cl.close()
    c.eq("workers exit when the master is gone", [], live_after(workers, T))
    c.true("they said why", lb.wait_line(r"master gone") is not None, lb.output()[-1000:])
    lb.stop()


def live_after(pids, timeout):
    """The processes of pids still running (not gone, not zombies) once all ended or timeout."""
    def live():
        out = []
        for p in pids:
            try:
                with open(f"/proc/{p}/stat") as f:
                    if f.read().split()[2] != "Z":
                        out.append(p)
            except OSError:
                pass
        return out
    deadline = time.monotonic() + timeout
    while live() and time.monotonic() < deadline:
        time.sleep(0.05)
    return live()


def test_master_killed_while_relaying(echo):
    """kill -9 of the master while sessions relay in both workers (through io_uring or epoll,
    whichever WSBAL_IO picks): every worker notices, drains and exits; none lingers or spins."""
    lb = Wsbal([("e1", echo.url)], workers=2, sections={"wsbal": {"shutdown_timeout": "1s"}})
    workers = [p for p in lb.pids() if p != lb.proc.pid]
    chat = Chatters(lb.url, 8)
    try:
        c.true("sessions relay before the kill", chat.more_echoes(40), str(chat.stats))
        lb.proc.send_signal(signal.SIGKILL)
        c.eq("every worker exits when the master is killed mid-relay", [], live_after(workers, T))
    finally:
        chat.stop()
        for p in live_after(workers, 0):
            os.kill(p, signal.SIGKILL)  # no orphan outlives a failed check
        lb.stop()


def backend_of_new_sessions(lb, n, held=None):
    """Opens n sessions; returns {backend id: count}; keeps them open in held when given."""
    counts = {}
    for _ in range(n):
        cl = RawClient(lb.port)
        cl.request("/")
        status, hdrs, _ = cl.read_head()
        key = hdrs.get("x-backend-id") if status == 101 else status
        counts[key] = counts.get(key, 0) + 1
        if held is not None:
            held.append(cl)
        else:
            cl.close()
    return counts


def test_reload(e1, e2):
    # slow_start off: these tests count where sessions go right after adding a backend.
    up = {"upstream": {"pass_headers": "X-Backend-Id", "slow_start": "0"}}
    lb = Wsbal([("e1", e1.url)], sections=up)
    held = []
    try:
        c.eq("before the reload every session is on e1", {"e1": 4},
             backend_of_new_sessions(lb, 4, held))

        verdict, _ = lb.reload([("e1", e1.url), ("e2", e2.url)], up)
        c.true("reload adding e2 succeeds", verdict and verdict.startswith("reloaded"), str(verdict))
        # least_conn still sees the 4 sessions held on e1: the next 4 all go to e2.
        c.eq("counts survive the reload: new sessions go to the new backend", {"e2": 4},
             backend_of_new_sessions(lb, 4, held))
        c.eq("sessions opened before the reload still relay", [(OP_TEXT, b"after")] * 8,
             [echo_once(cl, b"after") for cl in held])

        verdict, _ = lb.reload([("e2", e2.url)], up)
        c.true("reload removing e1 succeeds", verdict and verdict.startswith("reloaded"), str(verdict))
        c.eq("a removed backend takes no new session", {"e2": 3}, backend_of_new_sessions(lb, 3))
        c.eq("a removed backend's live sessions go on", (OP_TEXT, b"kept"), echo_once(held[0], b"kept"))

        raw = (f"[wsbal]\nworkers = 2\n[listen]\naddress = 127.0.0.1:{lb.port}\n"
               f"[admin]\naddress = off\n[upstream]\npass_headers = X-Backend-Id\nslow_start = 0\n"
               f"[backend:e1]\nurl = {e1.url}\n[backend:e2]\nurl = {e2.url}\nenabled = off\n")
        verdict, _ = lb.reload(None, raw=raw)
        c.true("reload disabling e2 succeeds", verdict and verdict.startswith("reloaded"), str(verdict))
        c.eq("a disabled backend takes no new session", {"e1": 3}, backend_of_new_sessions(lb, 3))

        raw_weights = raw.replace("enabled = off", "weight = 1").replace(
            f"url = {e1.url}\n", f"url = {e1.url}\nweight = 1000\n")
        verdict, _ = lb.reload(None, raw=raw_weights)
        c.true("reload re-weighting succeeds", verdict and verdict.startswith("reloaded"), str(verdict))
        # e1 holds 4 + 0, e2 holds 4: with weight 1000 against 1, e1 takes every new session.
        c.eq("new weights are used at once", {"e1": 4}, backend_of_new_sessions(lb, 4))

        bad = raw_weights + "[backend:e3]\nurl = http://nope\nweight = 0\n"
        verdict, lines = lb.reload(None, raw=bad)
        c.true("a broken file is refused", verdict and verdict.startswith("reload failed"), str(verdict))
        errors = [l for l in lines if "reload: " + lb.config + ":" in l]
        c.true("every error is logged with FILE:LINE", len(errors) >= 2, "\n".join(lines))
        c.eq("the running configuration stays", {"e1": 2}, backend_of_new_sessions(lb, 2))

        # A new listen address takes a new pool of workers; the old pool drains.
        from wsbtest import free_port
        new_port = free_port()
        raw_addr = raw_weights.replace(f"127.0.0.1:{lb.port}", f"127.0.0.1:{new_port}")
        verdict, lines = lb.reload(None, raw=raw_addr)
        c.true("reload moving the listen address succeeds",
               verdict and verdict.startswith("reloaded"), "\n".join(lines))
        old_port, lb.port = lb.port, new_port
        c.eq("the new address serves", {"e1": 1}, backend_of_new_sessions(lb, 1))
        deadline = time.monotonic() + T
        while not refused(old_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        c.true("the old address is closed", refused(old_port), "still accepting")
        c.eq("sessions of the old pool go on while it drains", (OP_TEXT, b"moved"),
             echo_once(held[1], b"moved"))
        # An old worker that happened to hold none of the sessions has exited already.
        workers = [p for p in lb.pids() if p != lb.proc.pid]
        c.true("the draining old pool runs next to the new one", len(workers) in (3, 4),
               f"{len(workers)} workers")
        for cl in held:
            cl.close()
        c.eq("wsbal stops cleanly after reloads", 0, lb.stop())
    finally:
        lb.stop()


def test_reload_worker_count(e1):
    """Changing [wsbal] workers starts a new pool; the idle old pool exits at once."""
    lb = Wsbal([("e1", e1.url)], workers=2)
    try:
        verdict, lines = lb.reload([("e1", e1.url)], {"wsbal": {"workers": "3"}})
        c.true("reload to 3 workers succeeds", verdict and verdict.startswith("reloaded"),
               "\n".join(lines))
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            workers = [p for p in lb.pids() if p != lb.proc.pid]
            if len(workers) == 3:
                break
            time.sleep(0.05)
        c.eq("three workers after the old two drained", 3, len(workers))
        c.eq("sessions work with the new pool", {None: 4}, backend_of_new_sessions(lb, 4))
        c.eq("stops cleanly", 0, lb.stop())
    finally:
        lb.stop()


def read_json_lines(path, n, timeout=T):
    """Waits until path holds n lines; returns them parsed."""
    import json
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                lines = [l for l in f.read().split("\n") if l]
            if len(lines) >= n:
                return [json.loads(l) for l in lines]
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    return None


def test_access_log(e1):
    import tempfile
    from wsbtest import Peer
    tmp = tempfile.mkdtemp(prefix="wsbal-access-")
    log = os.path.join(tmp, "access.log")
    p1, p2 = Peer("p1"), Peer("p2")
    lb = Wsbal([("p1", p1.url)], sections={"wsbal": {"access_log": log}})
    try:
        cl = RawClient(lb.port)
        cl.request("/room/9?user=ann")
        c.eq("logged session upgrades", 101, cl.read_head()[0])
        for text in (b"one", b"two!"):
            c.eq("echo", (OP_TEXT, text), echo_once(cl, text))
        cl.send(frame(OP_CLOSE, close_payload(4001, b"bye")))
        c.eq("close answered", 4001, close_code(cl))
        cl.close()
        lines = read_json_lines(log, 1)
        c.true("one access log line per finished session", lines is not None and len(lines) == 1,
               str(lines))
        entry = lines[0] if lines else {}
        expect = {"client": "127.0.0.1", "path": "/room/9?user=ann", "backends": ["p1"],
                  "messages_in": 2, "messages_out": 2, "failovers": 0, "close_code": 4001,
                  "closed_by": "client"}
        c.eq("access log fields", expect, {k: entry.get(k) for k in expect})
        # Client frames are masked (6 bytes of header each), the echoes are not (2 bytes each).
        c.eq("bytes each way", (3 + 6 + 4 + 6, 3 + 2 + 4 + 2), (entry.get("bytes_in"), entry.get("bytes_out")))
        c.true("ts, session and duration_ms present",
               re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", entry.get("ts", "")) and
               re.match(r"[0-9a-f]{16}$", entry.get("session", "")) and
               isinstance(entry.get("duration_ms"), int), str(entry))

        # A session that failed over lists both backends.
        lb.reload([("p1", p1.url), ("p2", p2.url)], {"wsbal": {"access_log": log}})
        cl = RawClient(lb.port)
        cl.request("/moving")
        c.eq("second session upgrades", 101, cl.read_head()[0])
        first = echo_once(cl, b"who")[1].decode()
        victim = p1 if first == "p1" else p2
        victim.stop(sig=signal.SIGKILL)
        other = "p2" if first == "p1" else "p1"
        c.eq("moved", (OP_TEXT, other.encode()), echo_once(cl, b"who"))
        cl.send(frame(OP_CLOSE, close_payload(1000)))
        close_code(cl)
        cl.close()
        lines = read_json_lines(log, 2)
        entry = lines[1] if lines and len(lines) > 1 else {}
        c.eq("a failed-over session lists both backends", ([first, other], 1),
             (entry.get("backends"), entry.get("failovers")))

        # logrotate: the file is moved away, SIGUSR1, and the next line goes to a new file.
        os.rename(log, log + ".1")
        with lb.cond:
            mark = len(lb.lines)
        lb.proc.send_signal(signal.SIGUSR1)
        for worker in (0, 1):
            c.true(f"worker {worker} reopened the access log",
                   lb.wait_line(rf"worker \d+ info: access log reopened", start=mark) is not None,
                   lb.output()[-800:])
            with lb.cond:
                mark = next((i for i in range(mark, len(lb.lines))
                             if "access log reopened" in lb.lines[i]), mark) + 1
        cl = RawClient(lb.port)
        cl.request("/after-rotate")
        c.eq("third session upgrades", 101, cl.read_head()[0])
        cl.send(frame(OP_CLOSE, close_payload(1000)))
        close_code(cl)
        cl.close()
        lines = read_json_lines(log, 1)
        c.true("after SIGUSR1 the log is written to a new file at the same path",
               lines is not None and lines[0].get("path") == "/after-rotate", str(lines))
        with open(log + ".1") as f:
            c.eq("the rotated file keeps its two lines", 2, len([l for l in f if l.strip()]))
    finally:
        lb.stop()
        for p in (p1, p2):
            p.stop()
        import shutil
        shutil.rmtree(tmp)


def one_logged_session(lb, path):
    cl = RawClient(lb.port)
    cl.request(path)
    c.eq(f"session {path} upgrades", 101, cl.read_head()[0])
    cl.send(frame(OP_CLOSE, close_payload(1000)))
    close_code(cl)
    cl.close()


def test_access_log_reopen_failure(e1):
    """SIGUSR1 when the path cannot be opened (it is a directory: even root cannot open that for
    writing): the lines go on to the file already open, the error is logged once and counted,
    and a later SIGUSR1 that succeeds moves to the new file."""
    import shutil
    import tempfile
    from wsbtest import free_port
    tmp = tempfile.mkdtemp(prefix="wsbal-access-")
    log = os.path.join(tmp, "access.log")
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], workers=1,
               sections={"wsbal": {"access_log": log}, "admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        one_logged_session(lb, "/first")
        c.true("first line written", read_json_lines(log, 1) is not None)
        os.rename(log, log + ".1")
        os.mkdir(log)
        with lb.cond:
            mark = len(lb.lines)
        lb.proc.send_signal(signal.SIGUSR1)
        c.true("the failed reopen is logged as an error",
               lb.wait_line(r"worker 0 error: access log .*access\.log: Is a directory", start=mark)
               is not None, lb.output()[-800:])
        one_logged_session(lb, "/during")
        lines = read_json_lines(log + ".1", 2, timeout=3)
        c.eq("a failed reopen keeps writing to the file open before",
             ["/first", "/during"], [l.get("path") for l in lines] if lines else None)
        c.eq("the failed reopen is counted", 1, metric_value(ap, "wsbal_access_log_errors_total"))
        with lb.cond:
            since = lb.lines[mark:]
        c.eq("logged once, not claimed as reopened",
             (1, 0), (sum("Is a directory" in l for l in since),
                      sum("access log reopened" in l for l in since)))
        os.rmdir(log)
        with lb.cond:
            mark = len(lb.lines)
        lb.proc.send_signal(signal.SIGUSR1)
        c.true("the next SIGUSR1 reopens",
               lb.wait_line(r"access log reopened", start=mark) is not None, lb.output()[-800:])
        one_logged_session(lb, "/after")
        lines = read_json_lines(log, 1)
        c.eq("then lines go to the new file", ["/after"], [l.get("path") for l in lines or []])
        with open(log + ".1") as f:
            c.eq("the old file keeps its two lines", 2, len([l for l in f if l.strip()]))
        # A reload naming a path in a directory that does not exist: same rule.
        verdict, _ = lb.reload([("e1", e1.url)], {
            "wsbal": {"access_log": os.path.join(tmp, "missing", "a.log")},
            "admin": {"address": f"127.0.0.1:{ap}"}})
        c.true("reload to an unopenable access log path", verdict and verdict.startswith("reloaded"),
               verdict)
        with lb.cond:
            mark = len(lb.lines)
        one_logged_session(lb, "/after-reload")
        c.true("its failure is logged", lb.wait_line(r"access log .*missing/a\.log: No such file",
                                                     start=mark) is not None, lb.output()[-800:])
        lines = read_json_lines(log, 2, timeout=3)
        c.eq("lines go on to the file open before the reload", ["/after", "/after-reload"],
             [l.get("path") for l in lines] if lines else None)
        c.eq("counted", 2, metric_value(ap, "wsbal_access_log_errors_total"))
    finally:
        lb.stop()
        shutil.rmtree(tmp)


def tcp_sockets(port):
    """{inode: (state, remote port)} of the IPv4 TCP sockets whose local port is port."""
    return {i: (st, rp) for i, (st, lp, rp) in tcp_table(v6=False).items() if lp == port}


def test_worker_fds(e1):
    """A worker keeps none of the master's descriptors: a worker respawned while an admin client
    is connected holds neither the admin listener nor that connection, and the connection really
    closes when the client closes it."""
    from wsbtest import free_port
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], workers=1, log_level="debug",
               sections={"admin": {"address": f"127.0.0.1:{ap}"},
                         "upstream": {"health_check": "tcp", "health_interval": "100ms"}})
    admin = None
    try:
        admin = socket.create_connection(("127.0.0.1", ap), timeout=T)
        admin.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = admin.recv(4096)
        c.true("admin answered, keep-alive", head.startswith(b"HTTP/1.1 200"), head)
        cport = admin.getsockname()[1]
        socks = tcp_sockets(ap)
        listener = {i for i, (st, _) in socks.items() if st == "0A"}
        conn = {i for i, (st, rp) in socks.items() if rp == cport and st == "01"}
        master = set(socket_fds(lb.proc.pid))
        c.true("the master holds the admin listener and the connection",
               len(listener) == 1 and len(conn) == 1 and listener | conn <= master,
               (socks, master))
        old = [p for p in lb.pids() if p != lb.proc.pid]
        with lb.cond:
            mark = len(lb.lines)
        os.kill(old[0], signal.SIGKILL)
        c.true("worker respawned",
               lb.wait_line(r"worker 0 debug: started", start=mark) is not None, lb.output())
        new = [p for p in lb.pids() if p not in old and p != lb.proc.pid]
        held = set(socket_fds(new[0])) if new else set()
        c.true("the respawned worker holds neither the admin listener nor the admin connection",
               new and not (held & (listener | conn)), (new, held, listener, conn))
        own = set(tcp_sockets(lb.port))
        tcp_all = set(tcp_table())
        c.eq("its only TCP socket is its own listener (no health probe, no admin socket)",
             own, held & tcp_all)
        admin.close()
        admin = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(rp == cport for _, rp in tcp_sockets(ap).values()):
            time.sleep(0.05)
        c.eq("closed by the client, the admin connection is gone on the server side too", [],
             [st for st, rp in tcp_sockets(ap).values() if rp == cport])
    finally:
        if admin is not None:
            admin.close()
        lb.stop()
        with lb.cond:
            lb.lines = [l for l in lb.lines if "killed by signal 9" not in l]


def socket_count(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def test_worker_killed_with_sessions(e1, e2):
    """kill -9 of a worker: its sessions end, the other worker's go on, counts are exact after."""
    # slow_start off: these tests count where sessions go right after adding a backend.
    up = {"upstream": {"pass_headers": "X-Backend-Id", "slow_start": "0"}}
    lb = Wsbal([("e1", e1.url)], sections=up)
    try:
        held = []
        c.eq("ten sessions on e1", {"e1": 10}, backend_of_new_sessions(lb, 10, held))
        workers = [p for p in lb.pids() if p != lb.proc.pid]
        victim = max(workers, key=socket_count)
        os.kill(victim, signal.SIGKILL)
        lb.wait_line(r"respawning worker")
        lost, kept = [], []
        for cl in held:
            try:
                cl.send(frame(OP_TEXT, b"ping?"))
                fin, op, payload = cl.read_frame(timeout=3)
                (kept if (op, payload) == (OP_TEXT, b"ping?") else lost).append(cl)
            except (OSError, EOFError):
                lost.append(cl)
        c.true("the killed worker's sessions ended, the other's still relay",
               0 < len(lost) <= 10 and len(lost) + len(kept) == 10,
               f"{len(lost)} lost, {len(kept)} kept")
        # e1 now really holds len(kept) sessions. Add e2: least_conn must fill e2 up to that
        # many first; a leaked count of the dead worker would send everything to e2.
        verdict, _ = lb.reload([("e1", e1.url), ("e2", e2.url)], up)
        c.true("reload adding e2", verdict and verdict.startswith("reloaded"), str(verdict))
        n = len(kept)
        c.eq("counts are exact after the respawn", {"e2": n + 1, "e1": 1},
             backend_of_new_sessions(lb, n + 2, held))
        for cl in held:
            cl.close()
    finally:
        lb.stop()
        with lb.cond:
            lb.lines = [l for l in lb.lines if "killed by signal 9" not in l]


def test_reload_under_load(e1, e2):
    """100 sessions keep echoing through reloads that add, re-weight, disable and remove."""
    lb = Wsbal([("e1", e1.url)])
    chat = Chatters(lb.url, 100)
    try:
        chat.more_echoes(500)
        plans = [
            [("e1", e1.url), ("e2", e2.url)],
            None,  # raw: re-weight and disable
            [("e2", e2.url)],
            [("e1", e1.url), ("e2", e2.url)],
        ]
        raw = (f"[wsbal]\nworkers = 2\n[listen]\naddress = 127.0.0.1:{lb.port}\n"
               f"[admin]\naddress = off\n[backend:e1]\nurl = {e1.url}\nweight = 5\n"
               f"[backend:e2]\nurl = {e2.url}\nenabled = off\n")
        for plan in plans:
            verdict, _ = lb.reload(plan, raw=None if plan else raw)
            c.true("reload under load succeeds", verdict and verdict.startswith("reloaded"), str(verdict))
            c.true("sessions keep echoing after the reload", chat.more_echoes(300), str(chat.stats))
        chat.stop_and_check(c, "through the reloads")
    finally:
        chat.stop()
        lb.stop()


def main():
    e1, e2 = Echo("e1"), Echo("e2")
    try:
        return run_tests(c, lambda: test_graceful_stop(e1), lambda: test_stop_signal_flood(e1),
                         lambda: test_master_gone(e1),
                         lambda: test_master_killed_while_relaying(e1),
                         lambda: test_reload(e1, e2), lambda: test_reload_worker_count(e1),
                         lambda: test_access_log(e1),
                         lambda: test_access_log_reopen_failure(e1),
                         lambda: test_worker_fds(e1),
                         lambda: test_worker_killed_with_sessions(e1, e2),
                         lambda: test_reload_under_load(e1, e2))
    finally:
        e1.stop()
        e2.stop()


if __name__ == "__main__":
    sys.exit(main())

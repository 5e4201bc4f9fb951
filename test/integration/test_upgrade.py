"""Binary upgrade (SIGUSR2, POST /api/v1/upgrade): the hand-over to a new master and every way
the new program can refuse, after which the old master goes on exactly as before.

wsbal runs from a copy of the program in a scratch directory, so a test can put another program
file (a crash, a hang, nothing) at the master's own path. Every wait has a deadline.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import wsbtest
from wsbtest import (OP_PING, OP_TEXT, T, Chatters, Checks, Echo, RawClient, Wsbal, admin_call,
                     admin_status, frame, free_port, run_tests, wait_for)

c = Checks()
SCRATCH = tempfile.mkdtemp(prefix="wsbal-upgrade-")
PROGRAM = os.path.join(SCRATCH, "wsbal")
REAL = wsbtest.WSBAL
CTL = os.path.join(os.path.dirname(REAL), "wsbalctl")
STARTED = []  # pids of new masters, stopped at the end whatever happens
LBS = []


def install(kind):
    """Puts a program file at PROGRAM: the real wsbal, or a script that crashes or hangs."""
    if os.path.exists(PROGRAM):
        os.unlink(PROGRAM)
    if kind == "real":
        shutil.copy2(REAL, PROGRAM)
        return
    if kind == "none":
        return
    body = {"crash": "kill -SEGV $$\n", "hang": "exec sleep 60\n"}[kind]
    with open(PROGRAM, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(PROGRAM, 0o755)


def start_lb(echo, admin_keys=None, **kw):
    install("real")
    wsbtest.WSBAL = PROGRAM
    try:
        admin = free_port()
        lb = Wsbal([("e1", echo.url)],
                   sections={"admin": {"address": f"127.0.0.1:{admin}", **(admin_keys or {})},
                             "wsbal": {"shutdown_timeout": "60s"}}, **kw)
    finally:
        wsbtest.WSBAL = REAL
    lb.admin = admin
    LBS.append(lb)
    return lb


def status(lb):
    return admin_status(lb.admin)


def wait_output(lb, pattern, start=0, timeout=T):
    """Like wait_line, but goes on after the old master exited: the new one writes to the same
    pipe."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    with lb.cond:
        while True:
            for line in lb.lines[start:]:
                m = rx.search(line)
                if m:
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            lb.cond.wait(min(left, 0.2))


def echoes(cl, text):
    cl.send(frame(OP_TEXT, text))
    fin, op, payload = cl.read_frame()
    return payload == text


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def still_serving(lb, cl, what):
    """The old master is untouched: its session echoes, a new one opens, its pid answers."""
    c.true(f"{what}: the live session still echoes", echoes(cl, b"after " + what.encode()))
    cl2 = RawClient.upgraded(lb.port)[0]
    c.true(f"{what}: a new session opens and echoes", echoes(cl2, b"new"))
    cl2.close()
    st = status(lb)
    c.eq(f"{what}: the status is the old master's", lb.proc.pid, st and st["pid"])
    c.true(f"{what}: the old master runs", lb.proc.poll() is None)


def refusal(echo, kind, expect_code, expect_text, env=None, bad_config=False):
    lb = start_lb(echo, extra_env=env)
    cl = RawClient.upgraded(lb.port)[0]
    install(kind)
    if bad_config:
        with open(lb.config, "a") as f:
            f.write("[listen]\nbogus = 1\n")
    mark = len(lb.lines)
    code, body = admin_call(lb.admin, "POST", "/api/v1/upgrade", timeout=3 * T)
    c.eq(f"{kind}: the API answers with the error", expect_code, code)
    c.true(f"{kind}: the answer says why", expect_text in body.decode(), body.decode())
    c.true(f"{kind}: the master logs why and goes on",
           wait_output(lb, r"upgrade refused: .*this master goes on", mark) is not None,
           lb.output()[-1500:])
    if bad_config:
        lb.write_config([("e1", echo.url)], {"admin": {"address": f"127.0.0.1:{lb.admin}"}})
    still_serving(lb, cl, kind)
    cl.close()
    return lb


def test_bad_configuration(echo):
    lb = refusal(echo, "real", 422, "exited with status 1 (configuration error)", bad_config=True)
    c.true("the new program's own error names FILE:LINE",
           wait_output(lb, r"unknown key \"bogus\"") is not None)
    lb.stop()


def test_crash_before_ready(echo):
    lb = refusal(echo, "crash", 500, "killed by signal 11")
    ctl = subprocess.run([CTL, "-a", f"127.0.0.1:{lb.admin}", "upgrade"], capture_output=True,
                         timeout=3 * T)
    c.eq("wsbalctl upgrade exits 1 on a refusal", 1, ctl.returncode)
    c.true("and says why", b"killed by signal 11" in ctl.stdout + ctl.stderr, repr(ctl))
    lb.stop()


def test_no_program_file(echo):
    refusal(echo, "none", 500, "status 127").stop()


def test_hang_and_second_signal(echo):
    lb = start_lb(echo, extra_env={"WSB_TEST_UPGRADE_TIMEOUT_MS": "2000"})
    cl = RawClient.upgraded(lb.port)[0]
    install("hang")
    mark = len(lb.lines)
    lb.proc.send_signal(signal.SIGUSR2)
    m = wait_output(lb, r"SIGUSR2: starting .* \(pid (\d+)\)", mark)
    c.true("SIGUSR2 starts the program file", m is not None, lb.output()[-800:])
    child = int(m.group(1)) if m else 0
    lb.proc.send_signal(signal.SIGUSR2)
    c.true("a second SIGUSR2 during the upgrade is refused with a log line",
           wait_output(lb, r"SIGUSR2 refused: an upgrade is already under way", mark) is not None)
    code, body = admin_call(lb.admin, "POST", "/api/v1/upgrade")
    c.eq("and so is POST /api/v1/upgrade (409)", 409, code)
    c.true("the hang is given up after the timeout",
           wait_output(lb, r"upgrade refused: the new master .* was not ready within 2000 ms",
                       mark) is not None, lb.output()[-800:])
    c.true("the hanging program is killed", wait_for(lambda: not alive(child)))
    still_serving(lb, cl, "hang")
    # Once that one is collected, an upgrade may run again (and is refused again here).
    c.true("the killed program is collected", wait_for(
        lambda: admin_call(lb.admin, "POST", "/api/v1/upgrade", timeout=3 * T)[0] == 500,
        timeout=2 * T, step=0.2))
    cl.close()
    lb.stop()


def test_state_format_refused():
    """A new master given a session state format it cannot read refuses through the pipe."""
    r, w = os.pipe()
    fd, cfg = tempfile.mkstemp(suffix=".ini")
    with os.fdopen(fd, "w") as f:
        f.write(f"[listen]\naddress = 127.0.0.1:{free_port()}\n[admin]\naddress = off\n"
                "[upstream]\nhealth_check = off\n[backend:b]\nurl = ws://127.0.0.1:9\n")
    for spec, what in ((f"state=99 ready={w}", "session state format 99"),
                       (f"state=1 ready={w} listen=x", "malformed")):
        env = {k: v for k, v in os.environ.items() if not k.startswith("WSBAL_")}
        env["WSBAL_UPGRADE"] = spec
        p = subprocess.Popen([REAL, "-c", cfg, "-w", "1"], env=env, pass_fds=(w,),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        rc = p.wait(T)
        line = os.read(r, 512).decode()
        c.true(f"{what}: REFUSE with the reason", line.startswith("REFUSE ") and what in line, line)
        c.eq(f"{what}: exits as a failed start", 3, rc)
    os.close(r)
    os.close(w)
    os.unlink(cfg)


def test_handover_socket(echo):
    """What reaches a worker's hand-over socket is checked: garbage, another format, sockets
    that are not TCP connections, a backend it does not know are refused, and the worker goes
    on; a well-formed session on real connections is taken up and relays."""
    import array
    import socket
    sys.path.insert(0, os.path.join(os.environ.get("WSBAL_SOURCE_ROOT", "../.."), "test", "fuzz"))
    import make_seeds
    lb = start_lb(echo)
    name = b"\0wsbal-handover-%d-0" % lb.proc.pid
    ok = wait_for(lambda: name[1:].decode() in open("/proc/net/unix").read())
    c.true("worker 0 listens on its hand-over socket", ok)

    def offer(conn, msg, fds):
        conn.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                     if fds else [])
        conn.settimeout(T)
        return conn.recv(1)

    a, b = socket.socketpair()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(name)
    c.eq("garbage is refused", b"R", offer(conn, b"GET / HTTP/1.1\r\n\r\n" + bytes(64),
                                            [a.fileno(), b.fileno()]))
    c.eq("and the connection closed", b"", conn.recv(1))
    conn.close()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(name)
    c.eq("another format version is refused", b"R", offer(
        conn, make_seeds.state_message(make_seeds.state_body(backend=b"e1"), version=2),
        [a.fileno(), b.fileno()]))
    conn.close()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(name)
    c.eq("a session with no sockets is refused", b"R", offer(
        conn, make_seeds.state_message(make_seeds.state_body(backend=b"e1")), []))
    c.eq("sockets that are not TCP connections are refused", b"R", offer(
        conn, make_seeds.state_message(make_seeds.state_body(backend=b"e1")),
        [a.fileno(), b.fileno()]))
    # Real connections: the test's own pair for the client leg, an upgraded one to the backend.
    ls = socket.create_server(("127.0.0.1", 0))
    client = RawClient(ls.getsockname()[1])
    wsbal_side, _ = ls.accept()
    backend = RawClient(echo.port)
    backend.request("/")
    c.eq("the backend leg is upgraded", 101, backend.read_head()[0])
    c.eq("a backend it does not know is refused", b"R", offer(
        conn, make_seeds.state_message(make_seeds.state_body(backend=b"nope")),
        [wsbal_side.fileno(), backend.sock.fileno()]))
    now_ms = int(time.time() * 1000)
    c.eq("a well-formed session is taken", b"T", offer(
        conn, make_seeds.state_message(make_seeds.state_body(backend=b"e1", last_rx=now_ms)),
        [wsbal_side.fileno(), backend.sock.fileno()]))
    wsbal_side.close()
    backend.sock.close()
    client.send(frame(OP_TEXT, b"handed in"))
    got = client.read_frame()
    while got[1] == OP_PING:  # its keepalive, due at once: the test's own last_rx is old
        got = client.read_frame()
    c.eq("and it relays", (OP_TEXT, b"handed in"), got[1:])
    c.eq("the status counts it", 1, (status(lb) or {}).get("upgraded_sessions"))
    still_serving(lb, RawClient.upgraded(lb.port)[0], "after the hand-over socket's tests")
    client.close()
    for s in (a, b, conn, ls):
        s.close()
    lb.stop()


def read_answer(sock, until_eof=False):
    """One HTTP answer from a raw socket: (head, body); to the end of the stream if asked."""
    data = b""
    while b"\r\n\r\n" not in data or until_eof:
        more = sock.recv(65536)
        if not more:
            break
        data += more
        if not until_eof and b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            m = re.search(rb"Content-Length: (\d+)", head)
            if m and len(rest) < int(m.group(1)):
                continue
            break
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(errors="replace"), body


def test_hand_over(echo):
    lb = start_lb(echo)
    old = status(lb)
    chat = Chatters(lb.url, 20)
    c.true("sessions echo before the upgrade", chat.more_echoes(40))
    # An admin request the old master has accepted and is reading as it hands over: it answers
    # it (Connection: close), while new connections go to the new master.
    inflight = in_flight(lb)
    mark = len(lb.lines)
    code, body = admin_call(lb.admin, "POST", "/api/v1/upgrade", timeout=3 * T)
    c.eq("POST /api/v1/upgrade answers 200 once the new master is ready", 200, code)
    new_pid = json.loads(body).get("pid") if code == 200 else 0
    STARTED.append(new_pid)
    c.true("the answer names the new master", new_pid and new_pid != lb.proc.pid, body)
    c.true("the new master took the listeners",
           wait_output(lb, r"took the old master's listeners; 0 bound anew", mark) is not None)
    c.true("the old master hands over",
           wait_output(lb, rf"handed over to pid {new_pid}", mark) is not None)
    inflight.sendall(b"\r\n")
    head, body = read_answer(inflight, until_eof=True)
    c.true("the request in flight at the hand-over is answered by the old master, and closed",
           head.startswith("HTTP/1.1 200") and "Connection: close" in head and
           json.loads(body or b"{}").get("pid") == lb.proc.pid, head)
    inflight.close()
    st = wait_for(lambda: (lambda s: s if s and s["pid"] == new_pid else None)(status(lb)))
    c.true("GET /api/v1/status is the new master's", st is not None)
    if st:
        c.eq("it shows the version", old["version"], st["version"])
    c.true("the 20 sessions moved to the new master's workers", wait_for(
        lambda: (status(lb) or {}).get("upgraded_sessions") == 20), json.dumps(status(lb))[:300])
    c.eq("the old master exits 0 while they live on", 0, lb.proc.wait(T))
    c.true("the moved sessions go on echoing", chat.more_echoes(40))
    cl = RawClient.upgraded(lb.port)[0]
    c.true("a new session goes to the new master", echoes(cl, b"fresh"))
    # Session ids hold slot, incarnation and a sequence: the new workers' incarnations start past
    # the old master's, so new sessions never take the id of one that moved in.
    fresh = [RawClient.upgraded(lb.port)[0] for _ in range(10)]
    c.true("the new sessions echo", all(echoes(f, b"id") for f in fresh))
    ids = session_ids(lb) or []
    c.eq("31 sessions listed, every id once", (31, 31), (len(ids), len(set(ids))))
    for f in fresh:
        f.close()
    c.true("the new master counts it", wait_for(lambda: (status(lb) or {}).get(
        "totals", {}).get("sessions", 0) >= 1))
    chat.stop_and_check(c, "across the hand-over")
    c.true("the new one serves on", echoes(cl, b"later"))
    cl.close()
    os.kill(new_pid, signal.SIGTERM)
    c.true("the new master stops on SIGTERM", wait_for(lambda: not alive(new_pid)))
    lb.stop()


def in_flight(lb):
    """An admin connection the old master has accepted (its first request answered, keep-alive)
    with a second request whose head's last line is still to come; and that last line."""
    get = f"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1:{lb.admin}\r\n".encode()
    sock = socket.create_connection(("127.0.0.1", lb.admin), timeout=T)
    sock.sendall(get + b"\r\n")
    head, body = read_answer(sock)
    c.true("a keep-alive admin connection to the old master", head.startswith("HTTP/1.1 200") and
           json.loads(body).get("pid") == lb.proc.pid, head)
    sock.sendall(get)
    return sock


def test_wait_after_take_back(echo):
    """The old master's wait for the admin requests it had accepted starts afresh after a
    take-back: the new master is killed 4 s into the old one's wait (of [admin]
    request_timeout, 8 s) for one request, which the old one, serving again, then answers; at a
    second hand-over it waits for another request past the 4 s the first wait had left, answers
    it, and exits as that connection closes."""
    lb = start_lb(echo, workers=1, admin_keys={"request_timeout": "8s"})
    waiting = r"handed over: waiting up to 8000 ms for 1 admin request under way"
    first = in_flight(lb)
    mark = len(lb.lines)
    new_pid = upgrade_by_api(lb)
    c.true("the old master waits for the request under way",
           wait_output(lb, waiting, mark) is not None, lb.output()[-800:])
    time.sleep(4)  # half of its wait
    mark = len(lb.lines)
    os.kill(new_pid, signal.SIGKILL)
    c.true("the new master killed mid-wait: the old one serves again", wait_output(
        lb, r"upgrade: the new master died during the hand-over", mark) is not None)
    first.sendall(b"\r\n")
    head, body = read_answer(first)
    c.true("it answers the request it was waiting for", head.startswith("HTTP/1.1 200") and
           json.loads(body or b"{}").get("pid") == lb.proc.pid, head)
    first.close()
    cl = RawClient.upgraded(lb.port)[0]
    c.true("a new session goes to the old master's new worker", echoes(cl, b"taken back"))
    cl.close()
    c.true("the old master does not exit as that connection closes", wait_output(
        lb, r"handed over: the admin requests under way have been answered", mark, 0.5) is None
        and lb.proc.poll() is None)

    second = in_flight(lb)
    mark = len(lb.lines)
    new_pid = upgrade_by_api(lb)
    c.true("the second hand-over waits for its request",
           wait_output(lb, waiting, mark) is not None, lb.output()[-800:])
    time.sleep(5)  # past the 4 s the first wait had left
    second.sendall(b"\r\n")
    head, body = read_answer(second, until_eof=True)
    c.true("past what the first wait had left, the request is answered by the old master, and "
           "closed", head.startswith("HTTP/1.1 200") and "Connection: close" in head and
           json.loads(body or b"{}").get("pid") == lb.proc.pid, head)
    second.close()
    c.true("the old master exits as that connection closes, not at the timeout", wait_output(
        lb, r"handed over: the admin requests under way have been answered", mark) is not None)
    c.eq("with status 0", 0, lb.proc.wait(T))
    os.kill(new_pid, signal.SIGTERM)
    c.true("the new master stops on SIGTERM", wait_for(lambda: not alive(new_pid)))
    lb.stop()


def session_ids(lb):
    code, body = admin_call(lb.admin, "GET", "/api/v1/sessions?limit=1000")
    return [e["id"] for e in json.loads(body)["sessions"]] if code == 200 else None


def upgrade_by_api(lb):
    """POST /api/v1/upgrade; returns the new master's pid (0 on a failure, checked)."""
    code, body = admin_call(lb.admin, "POST", "/api/v1/upgrade", timeout=3 * T)
    c.eq("POST /api/v1/upgrade answers 200 once the new master is ready", 200, code)
    new_pid = json.loads(body).get("pid", 0) if code == 200 else 0
    STARTED.append(new_pid)
    return new_pid


def test_crash_during_handover(echo):
    """The new worker dies as the third session comes in (WSB_TEST_HANDOVER_DIE_AFTER=2, a debug
    build's hook): the two it took end with it, the one in flight is lost, and every other session
    stays with the old worker and echoes on to a clean close; the new master serves on. Then the
    new master is killed while the old one drains: the old one serves again (admin, new
    sessions) with a new worker on the listeners it kept."""
    lb = start_lb(echo, workers=1, extra_env={"WSB_TEST_HANDOVER_DIE_AFTER": "2"})
    chat = Chatters(lb.url, 20)
    c.true("sessions echo before the upgrade", chat.more_echoes(40))
    mark = len(lb.lines)
    new_pid = upgrade_by_api(lb)
    c.true("the old worker lets go of the one session in flight, and says why", wait_output(
        lb, r"handover: session [0-9a-f]+ sent, no answer: let go of", mark) is not None)
    c.true("it keeps the rest", wait_output(
        lb, r"handover: .*: the remaining sessions drain here", mark) is not None)
    moved = wait_output(lb, r"handover: moved (\d+) sessions", mark)
    c.eq("two sessions had moved before it", "2", moved and moved.group(1))
    c.true("the new master restarts its worker", wait_output(
        lb, r"worker 0 \(pid \d+\) killed by signal 9", mark) is not None)
    with lb.cond:  # the crash this test made is not one the summary's check looks for
        lb.lines[:] = [x.replace("killed by signal 9", "killed as meant (9)") for x in lb.lines]
    before = chat.stats["echoed"]
    c.true("the 17 sessions kept go on echoing", chat.more_echoes(17 * 3))
    c.true("the old master still runs them", lb.proc.poll() is None)
    st = wait_for(lambda: (lambda s: s if s and s["pid"] == new_pid else None)(status(lb)))
    c.true("the new master answers GET /api/v1/status", st is not None)
    cl = RawClient.upgraded(lb.port)[0]
    c.true("a new session goes to the new master", echoes(cl, b"after the crash"))
    cl.close()

    # Now the new master itself dies while the old one still drains: the old one serves again.
    mark = len(lb.lines)
    os.kill(new_pid, signal.SIGKILL)
    c.true("the old master says why it serves again", wait_output(
        lb, r"upgrade: the new master died during the hand-over \(it was killed by signal 9",
        mark) is not None)
    st = wait_for(lambda: (lambda s: s if s and s["pid"] == lb.proc.pid else None)(status(lb)))
    c.true("the old master answers GET /api/v1/status again", st is not None)
    cl = RawClient.upgraded(lb.port)[0]
    c.true("a new session goes to the old master's new worker", echoes(cl, b"taken back"))
    cl.close()
    c.true("the 17 sessions kept echo on", chat.more_echoes(17 * 3))
    chat.stop()
    st = chat.stats
    c.eq("exactly the 3 sessions taken or in flight ended; 17 closed clean, none got a wrong echo",
         (17, 0, 3), (st["closed_clean"], st["wrong"], len(st["errors"])))
    c.true("echoes went on", st["echoed"] > before)
    c.eq("the old master stops as usual", 0, lb.stop())


def test_ready_waits_for_workers(echo):
    """READY comes only once the new workers accept on their hand-over sockets: here they open
    them 6 s late (WSB_TEST_SLOW_HANDOVER), past the 5 s an old worker tries to reach its new
    one. A READY sent at fork time would leave every session to drain; this way all move."""
    slow = os.path.join(SCRATCH, "slow-handover")
    lb = start_lb(echo, extra_env={"WSB_TEST_SLOW_HANDOVER": slow})
    chat = Chatters(lb.url, 20)
    c.true("sessions echo before the upgrade", chat.more_echoes(40))
    mark = len(lb.lines)
    with open(slow, "w") as f:  # read by the new workers as they start: kept until they moved
        f.write("6000")
    new_pid = upgrade_by_api(lb)
    c.true("the 20 sessions moved to the new master's workers", wait_for(
        lambda: (status(lb) or {}).get("upgraded_sessions") == 20), json.dumps(status(lb))[:300])
    os.unlink(slow)
    c.true("no old worker gave up on reaching its new one",
           wait_output(lb, r"cannot reach the new worker", mark, timeout=0.1) is None)
    c.eq("the old master exits 0 while they live on", 0, lb.proc.wait(T))
    chat.stop_and_check(c, "across a hand-over to slow workers")
    os.kill(new_pid, signal.SIGTERM)
    c.true("the new master stops on SIGTERM", wait_for(lambda: not alive(new_pid)))
    lb.stop()


def sessions_by_worker(lb):
    code, body = admin_call(lb.admin, "GET", "/api/v1/sessions?limit=1000")
    return {e["id"]: e["worker"] for e in json.loads(body)["sessions"]} if code == 200 else {}


def still_echoes(cl):
    try:
        return echoes(cl, b"after")
    except OSError:  # the session closed by the test
        return False


def test_fewer_workers(echo):
    """An upgrade whose configuration has fewer workers hands worker 1's sessions to worker 0:
    their ids still name slot 1, and GET / DELETE /api/v1/sessions/{id} must still find them."""
    lb = start_lb(echo, workers=2)
    clients, moved = [], {}
    for _ in range(40):  # SO_REUSEPORT spreads them: worker 1 gets some of the first few
        cl = RawClient.upgraded(lb.port)[0]
        c.true("a session echoes before the upgrade", echoes(cl, b"before"))
        clients.append(cl)
        if len(clients) >= 6 and 1 in sessions_by_worker(lb).values():
            break
    on_one = [i for i, w in sessions_by_worker(lb).items() if w == 1]
    c.true("worker 1 holds sessions", len(on_one) >= 1, str(on_one))
    lb.workers = 1
    lb.write_config([("e1", echo.url)], sections={"admin": {"address": f"127.0.0.1:{lb.admin}"},
                                                  "wsbal": {"shutdown_timeout": "60s"}})
    new_pid = upgrade_by_api(lb)
    c.true("every session moved to the one new worker", wait_for(
        lambda: (status(lb) or {}).get("upgraded_sessions") == len(clients)),
        json.dumps(status(lb))[:300])
    c.eq("the old master exits 0", 0, lb.proc.wait(T))
    moved = sessions_by_worker(lb)
    c.true("worker 1's sessions are listed under worker 0, with their ids",
           on_one and all(moved.get(i) == 0 for i in on_one), json.dumps(moved))
    if on_one:
        code, body = admin_call(lb.admin, "GET", f"/api/v1/sessions/{on_one[0]}")
        c.eq("GET of a moved session by its id", (200, 0),
             (code, json.loads(body).get("worker") if code == 200 else None))
        code, _ = admin_call(lb.admin, "DELETE", f"/api/v1/sessions/{on_one[0]}?code=4001")
        c.eq("DELETE of a moved session by its id: 202", 202, code)
        c.true("it ends", wait_for(lambda: admin_call(
            lb.admin, "GET", f"/api/v1/sessions/{on_one[0]}")[0] == 404))
        code, _ = admin_call(lb.admin, "GET", "/api/v1/sessions/1ff0000000000000")
        c.eq("an id no worker holds: 404", 404, code)
    c.eq("the other sessions echo on", len(clients) - 1, sum(still_echoes(cl) for cl in clients))
    for cl in clients:
        cl.close()
    os.kill(new_pid, signal.SIGTERM)
    c.true("the new master stops on SIGTERM", wait_for(lambda: not alive(new_pid)))
    lb.stop()


def main():
    echo = Echo("e1")
    try:
        return run_tests(c, test_state_format_refused, lambda: test_bad_configuration(echo),
                         lambda: test_crash_before_ready(echo), lambda: test_no_program_file(echo),
                         lambda: test_hang_and_second_signal(echo),
                         lambda: test_handover_socket(echo), lambda: test_hand_over(echo),
                         lambda: test_crash_during_handover(echo),
                         lambda: test_wait_after_take_back(echo),
                         lambda: test_ready_waits_for_workers(echo),
                         lambda: test_fewer_workers(echo))
    finally:
        for lb in LBS:
            lb.stop()
        for pid in STARTED:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        echo.stop()
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

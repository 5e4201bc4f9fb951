"""[wsbal] max_sessions under a storm: 300 clients upgrade at once against max_sessions = 100.

Exactly 100 get 101 and the other 200 get 503 with Retry-After (however many of them are still
sending their request at the same moment), the handshake counters and the session count agree,
rejected clients get in once sessions end, and wsbal-load's storm mode counts the same.
"""
import json
import os
import select
import subprocess
import sys
import urllib.request

from wsbtest import Checks, Echo, RawClient, Wsbal, close_payload, frame, free_port, run_tests, \
    wait_for, OP_CLOSE, T

LOAD = os.environ.get("WSBAL_LOAD", "build/wsbal-load")
CAP = 100
STORM = 300

c = Checks()


def api(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=T) as r:
        return r.read().decode()


def handshakes(admin):
    """wsbal_handshakes_total by result, from /metrics."""
    out = {}
    for line in api(admin, "/metrics").splitlines():
        if line.startswith("wsbal_handshakes_total{result=\""):
            out[line.split('"')[1]] = int(float(line.rsplit(" ", 1)[1]))
    return out


def live(admin):
    return json.loads(api(admin, "/api/v1/status"))["totals"]["sessions"]


def settle(read, want):
    """read() once it equals want, or its last value at the deadline."""
    wait_for(lambda: read() == want)
    return read()


def admin_up(admin):
    try:
        return live(admin) == 0
    except OSError:
        return False


def storm(port, n):
    """n clients connect, then each sends its upgrade request before any answer is read; returns
    the clients with their (status, headers), read as the answers come."""
    clients = [RawClient(port) for _ in range(n)]
    for cl in clients:
        cl.request("/")
    answers = {}
    by_fd = {cl.sock.fileno(): cl for cl in clients}
    while by_fd:
        ready, _, _ = select.select(list(by_fd), [], [], T)
        if not ready:
            break
        for fd in ready:
            cl = by_fd[fd]
            try:
                cl._fill(T)
            except (EOFError, ConnectionResetError):
                del by_fd[fd]
                continue
            if b"\r\n\r\n" in cl.buf:
                answers[cl] = cl.read_head()[:2]
                del by_fd[fd]
    return [(cl, answers.get(cl, (None, {}))) for cl in clients]


def test_storm(e1):
    admin = free_port()
    lb = Wsbal([("e1", e1.url)], sections={"wsbal": {"max_sessions": str(CAP)},
                                          "admin": {"address": f"127.0.0.1:{admin}"}})
    try:
        c.true("admin server answers", wait_for(lambda: admin_up(admin)))
        results = storm(lb.port, STORM)
        statuses = [st for _, (st, _) in results]
        c.eq(f"{STORM} clients at once against max_sessions = {CAP}: {CAP} get 101, the rest 503",
             {101: CAP, 503: STORM - CAP},
             {s: statuses.count(s) for s in set(statuses)})
        rejected = [(cl, h) for cl, (st, h) in results if st == 503]
        held = [cl for cl, (st, _) in results if st == 101]
        c.true("every 503 carries Retry-After: 5 and Connection: close",
               all(h.get("retry-after") == "5" and h.get("connection") == "close"
                   for _, h in rejected),
               str([h for _, h in rejected if h.get("retry-after") != "5"][:3]))
        c.true("wsbal closes every rejected connection",
               all(cl.closed_by_peer(timeout=5) for cl, _ in rejected))
        for cl, _ in rejected:
            cl.close()
        c.eq("the session count is the cap once the rejected connections are gone", CAP,
             settle(lambda: live(admin), CAP))
        hs = handshakes(admin)
        c.eq("handshake counters: ok = 101s, limit = 503s", (CAP, STORM - CAP),
             (hs.get("ok"), hs.get("limit")))

        # Half the held sessions end; as many of the rejected clients now get in, and no more.
        for cl in held[:CAP // 2]:
            cl.send(frame(OP_CLOSE, close_payload(1000)))
            cl.close()
        c.eq("sessions end", CAP - CAP // 2,
             settle(lambda: live(admin), CAP - CAP // 2))
        again = storm(lb.port, CAP // 2 + 10)
        got = [st for _, (st, _) in again]
        c.eq("rejected clients retrying after sessions ended: as many get in as left, the rest 503",
             {101: CAP // 2, 503: 10}, {s: got.count(s) for s in set(got)})
        for cl, _ in again:
            cl.close()
        for cl in held[CAP // 2:]:
            cl.close()
        c.eq("every session gone", 0, settle(lambda: live(admin), 0))

        # The same storm from wsbal-load, over two processes: its counts must agree with wsbal's.
        before = handshakes(admin)
        r = subprocess.run([LOAD, "--json-only", "--url", f"ws://127.0.0.1:{lb.port}/",
                            "--mode", "storm", "-c", str(STORM), "--processes", "2", "-t", "0.5"],
                           capture_output=True, timeout=60)
        d = json.loads(r.stdout)
        c.eq("wsbal-load storm: established, rejected, other errors, exit status",
             (CAP, STORM - CAP, 0, 1),
             (d["connections_established"], d["errors"]["rejected"],
              d["error_total"] - d["errors"]["rejected"], r.returncode))
        c.eq("wsbal-load storm: a handshake latency per upgrade", CAP,
             d["handshake_latency_us"]["count"])
        after = handshakes(admin)
        c.eq("wsbal's counters saw the same storm", (CAP, STORM - CAP),
             (after.get("ok", 0) - before.get("ok", 0),
              after.get("limit", 0) - before.get("limit", 0)))
    finally:
        lb.stop()


def main():
    e1 = Echo("e1")
    try:
        return run_tests(c, lambda: test_storm(e1))
    finally:
        e1.stop()


if __name__ == "__main__":
    sys.exit(main())

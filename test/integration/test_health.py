"""Active health checks and backend-reported load: backends marked down and up, skipped while
down, http checks with a JSON status, health_check = off, reloads, the admin API, metrics, and two
wsbal instances balancing one pool together through load reports.

Real processes on 127.0.0.1: wsbal, wsbal-echo, python3-websockets peers, and a small HTTP server
in this process whose answers the test changes. Every wait has a deadline.
"""
import http.client
import http.server
import json
import re
import signal
import threading
import time

from wsbtest import (T, Checks, Echo, Peer, RawClient, Wsbal, admin_call, free_port, run_tests,
                     wait_for)

c = Checks()
FAST = {"health_interval": "200ms", "health_timeout": "150ms", "health_rise": "2",
        "health_fall": "3"}


def api(port, method, path, body=None):
    return admin_call(port, method, path, body)


def backends(ap):
    return {b["name"]: b for b in json.loads(api(ap, "GET", "/api/v1/backends")[1])["backends"]}


def metrics(ap):
    """{(family, frozenset of labels): value} of /metrics."""
    out = {}
    for line in api(ap, "GET", "/metrics")[1].decode().split("\n"):
        m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ap, family, **labels):
    return metrics(ap).get((family, frozenset(labels.items())))


def open_sessions(port, n):
    """n sessions that upgraded through wsbal, kept open; returns the clients."""
    out = []
    for _ in range(n):
        cl = RawClient(port)
        cl.request("/")
        status = cl.read_head()[0]
        c.eq("session upgrades", 101, status)
        out.append(cl)
    return out


def close_all(clients):
    for cl in clients:
        cl.close()


def test_tcp_down_and_up():
    e1 = Echo("e1")
    e2 = Echo("e2")
    ap = free_port()
    lb = Wsbal([("e1", e1.url), ("e2", e2.url)],
               sections={"admin": {"address": f"127.0.0.1:{ap}"},
                         "upstream": dict(FAST, health_check="tcp", slow_start="0s")})
    try:
        c.true("both up at start", wait_for(lambda: metric(ap, "wsbal_backend_health_checks_total",
                                                           backend="e2", result="ok")),
               lb.output())
        c.eq("both up", (True, True), tuple(backends(ap)[n]["up"] for n in ("e1", "e2")))
        lines = len(lb.lines)
        killed = time.monotonic()
        e2.stop(sig=signal.SIGKILL)
        m = lb.wait_line(r"backend e2 is down: (.*)", start=lines)
        took = time.monotonic() - killed
        print(f"measured: e2 marked down {took * 1000:.0f} ms after its kill "
              f"(interval 200 ms, fall 3)", flush=True)
        c.true("killed backend marked down, once, with its reason", m is not None and
               "refused" in m.group(1), lb.output()[-2000:])
        c.eq("down in the admin API", False, backends(ap)["e2"]["up"])
        c.eq("wsbal_backend_up 0", 0.0, metric(ap, "wsbal_backend_up", backend="e2"))
        refused = metric(ap, "wsbal_backend_health_checks_total", backend="e2", result="refused")
        c.true("refused checks counted", refused is not None and refused >= 3, str(refused))
        clients = open_sessions(lb.port, 6)
        bs = backends(ap)
        c.eq("new sessions skip the down backend", (6, 0), (bs["e1"]["sessions"],
                                                            bs["e2"]["sessions"]))
        handshakes = metrics(ap).get(("wsbal_handshakes_total",
                                      frozenset({("result", "backend_error")})))
        c.eq("no handshake tried the down backend", 0.0, handshakes)
        close_all(clients)

        lines = len(lb.lines)
        back = time.monotonic()
        e2 = Echo("e2", "--port", str(e2.port))
        m = lb.wait_line(r"backend e2 is up: (.*)", start=lines)
        print(f"measured: e2 marked up {(time.monotonic() - back) * 1000:.0f} ms after it "
              f"listened again (rise 2)", flush=True)
        c.true("back: marked up after rise", m is not None and "2 tcp checks passed" in m.group(1),
               lb.output()[-2000:])
        c.eq("wsbal_backend_up 1", 1.0, metric(ap, "wsbal_backend_up", backend="e2"))
        c.eq("one down and one up line", (1, 1),
             (len(re.findall(r"backend e2 is down", lb.output())),
              len(re.findall(r"backend e2 is up", lb.output()))))
        clients = open_sessions(lb.port, 4)  # slow_start = 0: no ramp to wait for
        c.true("sessions reach it again", backends(ap)["e2"]["sessions"] >= 1, str(backends(ap)))
        close_all(clients)
    finally:
        c.eq("wsbal stops cleanly", 0, lb.stop())
        c.true("its loop closed with nothing open",
               "handles still open" not in lb.output(), lb.output()[-1000:])
        e1.stop()
        e2.stop()


class Health(http.server.BaseHTTPRequestHandler):
    """GET /healthCheck answers the server's current (status, body); other paths 404."""

    def do_GET(self):
        status, body = self.server.answer if self.path == "/healthCheck" else (404, b"")
        self.server.hosts.append(self.headers.get("Host"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def http_server(answer):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    srv.answer = answer
    srv.hosts = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_http_json_status():
    e1 = Echo("e1")
    bad = http_server((200, b'{"status":"500"}'))
    ap = free_port()
    url = f"ws://127.0.0.1:{bad.server_address[1]}"
    lb = Wsbal([("e1", e1.url), ("h", url)],
               sections={"admin": {"address": f"127.0.0.1:{ap}"},
                         "upstream": dict(FAST, health_check="http")})
    try:
        m = lb.wait_line(r"backend h is down: (.*)")
        c.true("200 with JSON status 500: down at its first check",
               m is not None and m.group(1) == 'JSON status "500" (its first check)',
               lb.output()[-1500:])
        c.eq("wsbal-echo's {\"status\":\"200\"} keeps it up", True, backends(ap)["e1"]["up"])
        c.eq("the check names the backend's host", f"127.0.0.1:{bad.server_address[1]}",
             bad.hosts[0] if bad.hosts else None)
        c.true("bad_status counted", wait_for(lambda: (metric(
            ap, "wsbal_backend_health_checks_total", backend="h", result="bad_status") or 0) >= 2))
        lines = len(lb.lines)
        bad.answer = (200, b'{"status":200,"checks":[]}')
        c.true("good again: up after rise", lb.wait_line(r"backend h is up", start=lines))
        lines = len(lb.lines)
        bad.answer = (503, b"busy")
        m = lb.wait_line(r"backend h is down: (.*)", start=lines)
        c.true("HTTP 503: down after fall", m is not None and m.group(1) == "HTTP 503 (3 checks in a row)",
               lb.output()[-1500:])
        # A silent backend: each check times out.
        lines = len(lb.lines)
        bad.answer = (200, b"{}")
        c.true("up again", lb.wait_line(r"backend h is up", start=lines))
    finally:
        c.eq("wsbal stops cleanly", 0, lb.stop())
        bad.shutdown()
        e1.stop()


def test_timeout_reload_and_api():
    e1 = Echo("e1")
    silent = Peer("s", mode="silent")  # accepts TCP, never answers the GET
    ap = free_port()
    sections = {"admin": {"address": f"127.0.0.1:{ap}"},
                "upstream": dict(FAST, health_check="http")}
    lb = Wsbal([("e1", e1.url)], sections=sections)
    try:
        verdict, _ = lb.reload([("e1", e1.url), ("s", silent.url)], sections)
        c.true("reload adds a backend", verdict.startswith("reloaded"), verdict)
        m = lb.wait_line(r"backend s is down: (.*)")
        c.true("added by reload: checked, down on timeout",
               m is not None and m.group(1).startswith("no answer within 150 ms"), lb.output()[-1500:])
        c.true("timeouts counted", (metric(ap, "wsbal_backend_health_checks_total", backend="s",
                                           result="timeout") or 0) >= 1)
        lines = len(lb.lines)
        verdict, _ = lb.reload([("e1", e1.url), ("s", silent.url)], sections)
        c.true("reload keeping it", verdict.startswith("reloaded"), verdict)
        c.eq("a reload keeps a down backend down", False, backends(ap)["s"]["up"])
        c.true("and logs no transition", lb.wait_line(r"backend s is", start=lines, timeout=0.5)
               is None, lb.output()[-1000:])
        # Removed by reload: no longer checked, gone from the metrics.
        verdict, _ = lb.reload([("e1", e1.url)], sections)
        c.true("reload removes it", verdict.startswith("reloaded"), verdict)
        c.eq("its samples are gone", None,
             metric(ap, "wsbal_backend_health_checks_total", backend="s", result="timeout"))
        # Added through the admin API: checked too; deleted: no longer.
        st, body = api(ap, "POST", "/api/v1/backends", {"name": "a", "url": silent.url})
        c.eq("admin add", 201, st)
        c.true("added through the API: checked, down", lb.wait_line(r"backend a is down"))
        c.eq("admin delete", 200, api(ap, "DELETE", "/api/v1/backends/a")[0])
        c.eq("left e1 alone", True, backends(ap)["e1"]["up"])
        # health_check = off by reload: every backend up again.
        off = {"admin": sections["admin"], "upstream": {"health_check": "off"}}
        lines = len(lb.lines)
        verdict, _ = lb.reload([("e1", e1.url), ("s", silent.url)], off)
        c.true("reload to off", verdict.startswith("reloaded"), verdict)
        c.eq("off: the silent backend counts as up", True, backends(ap)["s"]["up"])
        before = metric(ap, "wsbal_backend_health_checks_total", backend="e1", result="ok")
        time.sleep(0.6)  # three intervals of the old setting: no check may run (not a timing test)
        c.eq("off: no more checks", before,
             metric(ap, "wsbal_backend_health_checks_total", backend="e1", result="ok"))
        c.true("no down line after off", lb.wait_line(r"is down", start=lines, timeout=0.1) is None)
    finally:
        c.eq("wsbal stops cleanly", 0, lb.stop())
        silent.stop()
        e1.stop()


def test_off_keeps_dead_backend_up():
    e1 = Echo("e1")
    dead = f"ws://127.0.0.1:{free_port()}"
    ap = free_port()
    lb = Wsbal([("e1", e1.url), ("dead", dead)],
               sections={"admin": {"address": f"127.0.0.1:{ap}"},
                         "upstream": {"health_check": "off"}})
    try:
        clients = open_sessions(lb.port, 4)
        bs = backends(ap)
        c.eq("off: the dead backend stays up", True, bs["dead"]["up"])
        c.eq("off: sessions that tried it failed over to e1", 4, bs["e1"]["sessions"])
        c.true("off: no health check counted",
               metric(ap, "wsbal_backend_health_checks_total", backend="dead", result="refused")
               == 0.0)
        close_all(clients)
    finally:
        c.eq("wsbal stops cleanly", 0, lb.stop())
        e1.stop()


def echo_sessions(echo):
    """The live sessions wsbal-echo reports itself on GET /metric."""
    conn = http.client.HTTPConnection("127.0.0.1", echo.port, timeout=T)
    conn.request("GET", "/metric")
    n = json.loads(conn.getresponse().read())["agentsConnections"]
    conn.close()
    return n


def fresh_reports(ap, names, n=2):
    """Waits until each backend's ok report count has grown by n (so a report after now is in)."""
    start = {b: metric(ap, "wsbal_backend_load_reports_total", backend=b, result="ok") or 0
             for b in names}
    return wait_for(lambda: all((metric(ap, "wsbal_backend_load_reports_total", backend=b,
                                        result="ok") or 0) >= start[b] + n for b in names))


def test_shared_load():
    e1 = Echo("e1")
    e2 = Echo("e2")
    apa, apb, apc = free_port(), free_port(), free_port()
    shared = dict(FAST, health_check="tcp", load_report_path="/metric", load_report_ttl="5s")
    # A sends its 20 sessions to e1 only (e2 is disabled there).
    a = Wsbal([("e1", e1.url), ("e2", e2.url)],
              sections={"admin": {"address": f"127.0.0.1:{apa}"}, "upstream": shared})
    b = Wsbal([("e1", e1.url), ("e2", e2.url)],
              sections={"admin": {"address": f"127.0.0.1:{apb}"}, "upstream": shared})
    # C polls an endpoint without a count: it balances by its own sessions only.
    cc = Wsbal([("e1", e1.url), ("e2", e2.url)],
               sections={"admin": {"address": f"127.0.0.1:{apc}"},
                         "upstream": dict(shared, load_report_path="/healthCheck")})
    clients = []
    try:
        c.eq("A: disable e2", 200, api(apa, "POST", "/api/v1/backends/e2/disable")[0])
        clients += open_sessions(a.port, 20)
        c.eq("A's 20 sessions on e1", (20, 0), (echo_sessions(e1), echo_sessions(e2)))
        c.true("B has reports taken after A's sessions", fresh_reports(apb, ["e1", "e2"]))
        clients += open_sessions(b.port, 20)
        n1, n2 = echo_sessions(e1), echo_sessions(e2)
        print(f"measured: after B's 20 sessions e1 holds {n1}, e2 holds {n2}", flush=True)
        c.true("B sent its sessions to the backend with fewer in total: even spread",
               (n1, n2) in ((20, 20), (21, 19)), f"e1 {n1}, e2 {n2}")
        bs = backends(apb)
        c.true("B's own sessions went (almost) all to e2",
               bs["e2"]["sessions"] >= 19, str({k: v["sessions"] for k, v in bs.items()}))
        c.true("B's reports counted ok", (metric(apb, "wsbal_backend_load_reports_total",
                                                 backend="e1", result="ok") or 0) >= 2)
        # Without a usable report C counts its own sessions: an even split of its 10.
        c.true("C's polls are bad_body", wait_for(lambda: (metric(
            apc, "wsbal_backend_load_reports_total", backend="e1", result="bad_body") or 0) >= 1))
        # The metric can be read before the log line is written: wait for the line, then count.
        missing = r"backend e1: no load report from /healthCheck: bad_body"
        c.true("C logs the missing report", cc.wait_line(missing) is not None, cc.output()[-1500:])
        c.true("C logs the missing report once", len(re.findall(missing, cc.output())) == 1,
               cc.output()[-1500:])
        clients += open_sessions(cc.port, 10)
        bs = backends(apc)
        c.eq("C: local counts, 5 and 5", (5, 5), (bs["e1"]["sessions"], bs["e2"]["sessions"]))
    finally:
        close_all(clients)
        for lb in (a, b, cc):
            c.eq("wsbal stops cleanly", 0, lb.stop())
        e1.stop()
        e2.stop()


if __name__ == "__main__":
    raise SystemExit(run_tests(c, test_tcp_down_and_up, test_http_json_status,
                               test_timeout_reload_and_api, test_off_keeps_dead_backend_up,
                               test_shared_load))

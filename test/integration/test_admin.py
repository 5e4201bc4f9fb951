"""The admin server: health, readiness, status, backends, enable/disable, reload, token, errors,
and /metrics checked by promtool (Debian's prometheus package)."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

from wsbtest import OP_TEXT, Checks, Echo, RawClient, Wsbal, frame, free_port, run_tests, wait_for

c = Checks()


def request(port, method, path, body=None, headers=None, conn=None):
    """One request; returns (status, headers dict, body bytes). Reuses conn when given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = dict(headers or {})
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if own:
        conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def jbody(resp):
    return json.loads(resp[2])


def test_api(e1, e2):
    ap = free_port()
    lb = Wsbal([("e1", e1.url), ("e2", e2.url)], sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        c.eq("healthz", (200, {"status": "alive"}), (request(ap, "GET", "/healthz")[0],
                                                    jbody(request(ap, "GET", "/healthz"))))
        c.eq("readyz with backends", 200, request(ap, "GET", "/readyz")[0])
        st = jbody(request(ap, "GET", "/api/v1/status"))
        c.eq("status: version, workers", ("0.1.0", 2), (st["version"], len(st["workers"])))
        c.true("status: totals", "handshakes" in st["totals"] and "sessions" in st["totals"], str(st))

        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("session upgrades", 101, cl.read_head()[0])
        cl.send(frame(OP_TEXT, b"hi"))
        cl.read_frame()
        bs = jbody(request(ap, "GET", "/api/v1/backends"))["backends"]
        c.eq("backends listed with their fields", ["e1", "e2"], [b["name"] for b in bs])
        c.eq("live sessions counted", 1, sum(b["sessions"] for b in bs))
        c.eq("one backend", "e1", jbody(request(ap, "GET", "/api/v1/backends/e1"))["name"])
        c.eq("percent-encoded names in paths", "e1",
             jbody(request(ap, "GET", "/api/v1/backends/e%31"))["name"])
        c.eq("a broken escape is 400", 400, request(ap, "GET", "/api/v1/backends/e%3")[0])
        c.eq("a non-hex escape and an encoded NUL are 400", [400, 400],
             [request(ap, "GET", "/api/v1/backends/e%zz")[0],
              request(ap, "GET", "/api/v1/backends/e%001")[0]])
        c.eq("unknown backend is 404 JSON", (404, "no such backend"),
             (request(ap, "GET", "/api/v1/backends/nope")[0],
              jbody(request(ap, "GET", "/api/v1/backends/nope"))["error"]))
        c.eq("a name longer than any backend's is 404 too", (404, "no such backend"),
             (request(ap, "POST", "/api/v1/backends/" + "n" * 200 + "/drain")[0],
              jbody(request(ap, "POST", "/api/v1/backends/" + "n" * 200 + "/drain"))["error"]))
        st = jbody(request(ap, "GET", "/api/v1/status"))
        c.eq("status counts the session", (1, 1), (st["totals"]["sessions"],
                                                   st["totals"]["handshakes"]["ok"]))
        cl.close()

        # disable both: no backend left, readyz says so, upgrades get 503; enable brings it back.
        for name in ("e1", "e2"):
            s, h, body = request(ap, "POST", f"/api/v1/backends/{name}/disable")
            c.eq(f"disable {name}", (200, False), (s, json.loads(body)["enabled"]))
        c.eq("readyz without an enabled backend", 503, request(ap, "GET", "/readyz")[0])
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("no enabled backend: 503", 503, cl.read_head()[0])
        cl.close()
        c.eq("enable e2", 200, request(ap, "POST", "/api/v1/backends/e2/enable")[0])
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("enabled again: upgrades", 101, cl.read_head()[0])
        cl.close()

        s, h, _ = request(ap, "DELETE", "/api/v1/backends/e1/enable")
        c.eq("wrong method: 405 with Allow", (405, "POST"), (s, h.get("allow")))
        # Allow lists every method of the routes the path fits (one table, matched in order).
        allows = [(m, p, request(ap, m, p)[1].get("allow")) for m, p in
                  [("PUT", "/api/v1/backends"), ("HEAD", "/api/v1/backends"),
                   ("POST", "/api/v1/backends/e1"), ("POST", "/metrics"),
                   ("PATCH", "/api/v1/sessions/0000000000000001"), ("GET", "/api/v1/reload")]]
        c.eq("405s name the methods of the path", [
            ("PUT", "/api/v1/backends", "GET, POST"), ("HEAD", "/api/v1/backends", "GET, POST"),
            ("POST", "/api/v1/backends/e1", "GET, PATCH, DELETE"),
            ("POST", "/metrics", "GET, HEAD"),
            ("PATCH", "/api/v1/sessions/0000000000000001", "GET, DELETE"),
            ("GET", "/api/v1/reload", "POST")], allows)
        c.eq("a path no route fits: 404 no such path", (404, "no such path"),
             (request(ap, "POST", "/api/v1/backends/e1/bogus")[0],
              json.loads(request(ap, "POST", "/api/v1/backends/e1/bogus")[2])["error"]))
        c.eq("unknown path: 404", 404, request(ap, "GET", "/api/v2/whatever")[0])
        s, h, body = request(ap, "POST", "/api/v1/reload")
        c.eq("reload over the API", (200, "ok"), (s, json.loads(body)["result"]))
        c.eq("reload restores the file's enabled flags", True,
             jbody(request(ap, "GET", "/api/v1/backends/e1"))["enabled"])
        with open(lb.config, "a") as f:
            f.write("[backend:bad]\nurl = http://nope\n")
        s, h, body = request(ap, "POST", "/api/v1/reload")
        errors = json.loads(body).get("errors", [])
        c.true("a broken file: 422 with FILE:LINE errors",
               s == 422 and errors and all(e.startswith(lb.config + ":") for e in errors), body)

        # Adding and changing backends at run time.
        body = json.dumps({"name": "e3", "url": e2.url, "weight": 3, "backup": False}).encode()
        s, h, out = request(ap, "POST", "/api/v1/backends", body=body)
        c.eq("POST a backend: 201 with it", (201, "e3", 3), (s, json.loads(out).get("name"),
                                                              json.loads(out).get("weight")))
        c.eq("it is listed", ["e1", "e2", "e3"],
             sorted(b["name"] for b in jbody(request(ap, "GET", "/api/v1/backends"))["backends"]))
        for bad, status, words in (
                (b'{"name": "e4", "url": ', 400, "malformed JSON at byte"),
                (b'{"name": "e4", "url": "ws://127.0.0.1:1", "colour": 1}', 400, 'unknown field "colour"'),
                (b'{"name": "e4", "url": "http://127.0.0.1:1"}', 400, "ws:// or wss://"),
                (b'{"name": "e 4", "url": "ws://127.0.0.1:1"}', 400, "letters, digits"),
                (b'{"name": "e4", "url": "ws://127.0.0.1:1", "weight": 0}', 400, "1 to 1000"),
                (b'{"url": "ws://127.0.0.1:1"}', 400, '"name" is required'),
                (b'{"name": "e3", "url": "ws://127.0.0.1:1"}', 409, "exists")):
            s, h, out = request(ap, "POST", "/api/v1/backends", body=bad)
            msg = json.loads(out).get("error", "")
            c.true(f"bad add answered {status}: {words}", s == status and words in msg, f"{s} {msg}")
        s, h, out = request(ap, "PATCH", "/api/v1/backends/e3",
                            body=json.dumps({"weight": 7, "enabled": False}).encode())
        c.eq("PATCH weight and enabled", (200, 7, False),
             (s, json.loads(out).get("weight"), json.loads(out).get("enabled")))
        c.eq("PATCH refuses unknown fields", 400,
             request(ap, "PATCH", "/api/v1/backends/e3", body=b'{"url": "ws://x:1"}')[0])
        c.eq("DELETE it", 200, request(ap, "DELETE", "/api/v1/backends/e3")[0])

        # Keep-alive: several requests on one connection.
        conn = http.client.HTTPConnection("127.0.0.1", ap, timeout=10)
        statuses = [request(ap, "GET", "/healthz", conn=conn)[0] for _ in range(3)]
        conn.close()
        c.eq("keep-alive serves several requests on one connection", [200] * 3, statuses)
        conn = http.client.HTTPConnection("127.0.0.1", ap, timeout=10)
        head = request(ap, "HEAD", "/healthz", conn=conn)
        after = request(ap, "GET", "/api/v1/backends/e2", conn=conn)
        conn.close()
        c.eq("HEAD: the head only, then the next request on the connection is intact",
             (200, b"", 200, "e2"), (head[0], head[2], after[0], json.loads(after[2])["name"]))
        big = request(ap, "POST", "/api/v1/reload", body=b"x" * (70 * 1024))
        c.eq("a body over 64 KiB: 413", 413, big[0])

        # /metrics through promtool.
        s, h, text = request(ap, "GET", "/metrics")
        c.eq("metrics content type", "text/plain; version=0.0.4; charset=utf-8", h.get("content-type"))
        for name in ("wsbal_sessions", "wsbal_sessions_total", "wsbal_handshakes_total",
                     "wsbal_failovers_total", "wsbal_failover_failures_total", "wsbal_messages_total",
                     "wsbal_bytes_total", "wsbal_backend_up", "wsbal_backend_enabled",
                     "wsbal_backend_health_checks_total", "wsbal_backend_connect_seconds",
                     "wsbal_failover_seconds", "wsbal_workers", "wsbal_worker_restarts_total",
                     "wsbal_config_reloads_total", "wsbal_config_generation", "wsbal_build_info"):
            c.true(f"metric family {name}", f"# TYPE {name} " in text.decode(), "missing")
        c.true("handshakes counted", b'wsbal_handshakes_total{result="ok"} 2' in text,
               text.decode()[:600])
        c.true("a failed reload counted", b'wsbal_config_reloads_total{result="error"} 1' in text, "")
        import re
        c.true("backend connect times recorded",
               re.search(rb'wsbal_backend_connect_seconds_count\{backend="e[12]"\} [1-9]', text) and
               re.search(rb'wsbal_backend_connect_seconds_bucket\{backend="e[12]",le="\+Inf"\} [1-9]',
                         text), text.decode()[-1500:])
        promtool = shutil.which("promtool")
        if c.true("promtool is installed", promtool is not None, "apt-get install prometheus"):
            r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                               timeout=60)
            c.eq("promtool check metrics passes", (0, b""), (r.returncode, r.stdout + r.stderr))
    finally:
        lb.stop()


def test_token(e1):
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], sections={"admin": {"address": f"127.0.0.1:{ap}",
                                                      "token": "s3cret"}})
    try:
        c.eq("no token: 401 on the API", 401, request(ap, "GET", "/api/v1/status")[0])
        c.eq("no token: 401 on /metrics", 401, request(ap, "GET", "/metrics")[0])
        c.eq("wrong token: 401", 401, request(ap, "GET", "/api/v1/status",
                                              headers={"Authorization": "Bearer s3creT"})[0])
        c.eq("right token: 200", 200, request(ap, "GET", "/api/v1/status",
                                               headers={"Authorization": "Bearer s3cret"})[0])
        c.eq("healthz needs no token", 200, request(ap, "GET", "/healthz")[0])
    finally:
        lb.stop()


def test_session_and_drain_commands():
    """Commands that reach the workers: close a session, move it, drain and delete backends."""
    from wsbtest import OP_CLOSE, Peer, T
    import struct
    import time
    p1, p2 = Peer("p1"), Peer("p2")
    ap = free_port()
    # One worker: its session ids are 0000000000000000, ...01, ... in accept order.
    lb = Wsbal([("p1", p1.url), ("p2", p2.url)], workers=1,
               sections={"admin": {"address": f"127.0.0.1:{ap}"}})

    def who(cl):
        cl.send(frame(OP_TEXT, b"who"))
        return cl.read_frame()[2].decode()

    try:
        a = RawClient(lb.port)
        a.request("/")
        c.eq("session 0 upgrades", 101, a.read_head()[0])
        s, h, body = request(ap, "DELETE", "/api/v1/sessions/0000000000000000?code=4002&reason=bye+now")
        c.eq("DELETE session: 202", 202, s)
        fin, op, payload = a.read_frame()
        c.eq("the client gets the code and reason asked for", (OP_CLOSE, 4002, b"bye now"),
             (op, struct.unpack("!H", payload[:2])[0], payload[2:]))
        a.close()
        c.eq("a bad close code is refused", 400,
             request(ap, "DELETE", "/api/v1/sessions/0000000000000001?code=1006")[0])
        c.eq("a malformed id is 404", 404, request(ap, "DELETE", "/api/v1/sessions/xyz")[0])
        # An id that is not live: 404 from the lookup the command waits for, never 202.
        gone = "/api/v1/sessions/0000000000000000"
        c.true("session 0 ends", wait_for(lambda: request(ap, "GET", gone)[0] == 404), "still live")
        none = (404, {"error": "no such session"})
        for method, path, body in [("DELETE", gone, None), ("POST", gone + "/failover", None),
                                   ("DELETE", "/api/v1/sessions/00000000000000ff", None),
                                   ("POST", "/api/v1/sessions/00000000000000ff/failover",
                                    b'{"backend": "p2"}')]:
            got = request(ap, method, path, body=body)
            c.eq(f"{method} {path} of an id not live: 404", none, (got[0], json.loads(got[2])))
        got = request(ap, "DELETE", "/api/v1/sessions/fff0000000000000")
        c.eq("an id of a worker slot not running: 404", 404, got[0])
        got = request(ap, "POST", "/api/v1/sessions/00000000000000ff/failover",
                      body=b'{"backend": "nope"}')
        c.eq("a failover to an unknown backend: 404 for the backend first",
             (404, {"error": "no such backend"}), (got[0], json.loads(got[2])))

        b = RawClient(lb.port)
        b.request("/")
        c.eq("session 1 upgrades", 101, b.read_head()[0])
        first = who(b)
        other = "p2" if first == "p1" else "p1"
        s, h, body = request(ap, "POST", "/api/v1/sessions/0000000000000001/failover",
                             body=json.dumps({"backend": other}).encode())
        c.eq("POST failover: 202", 202, s)
        deadline = time.monotonic() + T
        now = who(b)
        while now != other and time.monotonic() < deadline:
            now = who(b)
        c.eq("the session moved to the backend asked for, unnoticed by the client", other, now)

        held = [b]
        for _ in range(6):
            cl = RawClient(lb.port)
            cl.request("/")
            cl.read_head()
            held.append(cl)
        on_p1 = jbody(request(ap, "GET", "/api/v1/backends/p1"))["sessions"]
        s, h, body = request(ap, "POST", "/api/v1/backends/p1/drain")
        drained = json.loads(body)
        c.eq("drain: 202, naming what drains (a section names each address: test_discovery)",
             (202, "draining", ["p1"]), (s, drained.get("status"), drained.get("backends")))
        deadline = time.monotonic() + T
        while jbody(request(ap, "GET", "/api/v1/backends/p1"))["sessions"] > 0 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        c.eq("drained: p1 holds no session", 0, jbody(request(ap, "GET", "/api/v1/backends/p1"))["sessions"])
        c.eq("drained: p1 disabled", False, jbody(request(ap, "GET", "/api/v1/backends/p1"))["enabled"])
        c.eq("every session now answers from p2", ["p2"] * len(held), [who(cl) for cl in held])

        s, h, body = request(ap, "DELETE", "/api/v1/backends/p2?sessions=close")
        c.eq("DELETE backend with sessions=close", 200, s)
        codes = []
        for cl in held:
            fin, op, payload = cl.read_frame()
            codes.append((op, struct.unpack("!H", payload[:2])[0] if op == OP_CLOSE else None))
            cl.close()
        c.eq("its sessions are closed with 1001", [(OP_CLOSE, 1001)] * len(held), codes)
        c.eq("the deleted backend is gone", 404, request(ap, "GET", "/api/v1/backends/p2")[0])
        st = jbody(request(ap, "GET", "/api/v1/status"))
        c.eq("admin failovers counted: the one asked for and every drained one", 1 + on_p1,
             st["totals"]["failovers"])
        metrics = request(ap, "GET", "/metrics")[2]
        c.true("reason admin in the metrics", b'reason="admin"} ' in metrics, "")
    finally:
        lb.stop()
        p1.stop()
        p2.stop()


def test_session_list(e1, e2):
    ap = free_port()
    lb = Wsbal([("e1", e1.url), ("e2", e2.url)], sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        held = []
        for i in range(6):
            cl = RawClient(lb.port)
            cl.request(f"/room/{i}?user=u{i}")
            c.eq("session upgrades", 101, cl.read_head()[0])
            cl.send(frame(OP_TEXT, b"hello"))
            cl.read_frame()
            held.append(cl)
        s, h, body = request(ap, "GET", "/api/v1/sessions")
        doc = json.loads(body) if s == 200 else {}
        c.eq("session list: every live session, from both workers, complete", (200, 6, False),
             (s, doc.get("total"), doc.get("partial")))
        sess = doc.get("sessions", [])
        c.eq("paths", sorted(f"/room/{i}?user=u{i}" for i in range(6)), sorted(x["path"] for x in sess))
        first = sess[0] if sess else {}
        c.eq("fields of a session", {"client": "127.0.0.1", "messages_in": 1, "messages_out": 1,
                                     "failovers": 0},
             {k: first.get(k) for k in ("client", "messages_in", "messages_out", "failovers")})
        c.true("backend, worker, started, id", first.get("backend") in ("e1", "e2") and
               isinstance(first.get("worker"), int) and first.get("started", "").endswith("Z") and
               len(first.get("id", "")) == 16, str(first))
        by_backend = json.loads(request(ap, "GET", "/api/v1/sessions?backend=e1")[2])
        c.true("filtered by backend", all(x["backend"] == "e1" for x in by_backend["sessions"]) and
               by_backend["total"] == sum(1 for x in sess if x["backend"] == "e1"), str(by_backend))
        page = json.loads(request(ap, "GET", "/api/v1/sessions?limit=2&offset=1")[2])
        c.eq("paginated", ([x["id"] for x in sess][1:3], 6),
             ([x["id"] for x in page["sessions"]], page["total"]))
        one = json.loads(request(ap, "GET", f"/api/v1/sessions/{first.get('id')}")[2])
        c.eq("one session by id", first, one)
        c.eq("an unknown id is 404", 404, request(ap, "GET", "/api/v1/sessions/00000000deadbeef")[0])
        c.eq("an id of a worker slot not running is 404 at once", 404,
             request(ap, "GET", "/api/v1/sessions/fff0000000000000")[0])
        c.eq("a bad limit is 400", 400, request(ap, "GET", "/api/v1/sessions?limit=x")[0])
        for cl in held:
            cl.close()
    finally:
        lb.stop()


def open_sessions(port, paths, batch=200):
    """Opens one session per path, batch connections in flight at a time (the accept queue and the
    handshakes stay bounded); returns the sockets, each past its 101."""
    import base64
    import socket
    held = []
    for start in range(0, len(paths), batch):
        socks = []
        for path in paths[start:start + batch]:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            socks.append(s)
        for s in socks:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise EOFError("closed before its 101")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(head[:80])
        held += socks
    return held


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def list_all(ap, query=""):
    """Pages through GET /api/v1/sessions by next_offset; returns (pages, sessions)."""
    pages, sessions, offset = [], [], 0
    while offset is not None and len(pages) < 100:
        s, h, body = request(ap, "GET", f"/api/v1/sessions?limit=1000&offset={offset}{query}")
        doc = json.loads(body) if s == 200 else {"status": s, "body": body[:200]}
        pages.append(doc)
        sessions += doc.get("sessions", [])
        offset = doc.get("next_offset")
    return pages, sessions


def test_session_cursor(e1):
    """Paging past a session (?after=, each page's next_after) rather than by offset: a session
    that ends between two pages moves none of the later ones onto the page already read."""
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], workers=2, sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    held = open_sessions(lb.port, [f"/c{i}" for i in range(10)])
    try:
        wait_for(lambda: jbody(request(ap, "GET", "/api/v1/sessions"))["total"] == 10)
        everything = jbody(request(ap, "GET", "/api/v1/sessions"))["sessions"]
        order = [(x["worker"], x["id"]) for x in everything]
        c.eq("the list is in worker, then id order", sorted(order), order)
        pages, after = [], None
        while len(pages) < 10:
            doc = jbody(request(ap, "GET", "/api/v1/sessions?limit=3" +
                                (f"&after={after}" if after else "")))
            pages.append(doc)
            after = doc.get("next_after")
            if after is None:
                break
        # The first page, asked without a cursor, also has next_offset; pages past a cursor
        # have none (an offset means nothing there).
        c.eq("pages of 3 by cursor: 3, 3, 3, 1, each cursor its page's last session",
             ([3, 3, 3, 1], [f"{p['sessions'][-1]['worker']}.{p['sessions'][-1]['id']}"
                             for p in pages[:3]], [3, None, None, None], [10] * 4),
             ([len(p["sessions"]) for p in pages], [p.get("next_after") for p in pages[:3]],
              [p.get("next_offset") for p in pages], [p.get("total") for p in pages]))
        c.eq("every session once, in the list's order", [x["id"] for x in everything],
             [x["id"] for p in pages for x in p["sessions"]])
        # The first page read, then its first session ends: by offset the next page would start
        # one session late; past the cursor it starts where it should.
        first = jbody(request(ap, "GET", "/api/v1/sessions?limit=3"))
        gone = first["sessions"][0]
        c.eq("a session ends", 202, request(ap, "DELETE", f"/api/v1/sessions/{gone['id']}")[0])
        wait_for(lambda: jbody(request(ap, "GET", "/api/v1/sessions"))["total"] == 9)
        by_offset = jbody(request(ap, "GET", "/api/v1/sessions?limit=3&offset=3"))["sessions"]
        by_cursor = jbody(request(ap, "GET", "/api/v1/sessions?limit=3&after=" +
                                  first["next_after"]))["sessions"]
        c.eq("by offset the fourth session is skipped; past the cursor it comes next",
             (everything[4]["id"], everything[3]["id"]),
             (by_offset[0]["id"], by_cursor[0]["id"]))
        for bad in ("x", "1.", "-1.5", "1.5x", "1.00000000000000001", "1.-5"):
            c.eq(f"after={bad}: 400", 400,
                 request(ap, "GET", f"/api/v1/sessions?after={bad}")[0])
        c.eq("after= with offset=: 400", 400,
             request(ap, "GET", "/api/v1/sessions?offset=1&after=" + first["next_after"])[0])
    finally:
        for h in held:
            h.close()
        lb.stop()


def test_session_list_at_scale(e1):
    """3,000 sessions with 200-byte paths on one worker: every one listed once, through pages,
    nothing partial; many listings at once are answered or refused (503), never dropped."""
    import resource
    import threading
    import time
    n = 3000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The test holds n sockets, the worker 2n (client and backend legs), wsbal-echo n; wsbal and
    # wsbal-echo inherit this limit.
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 2 * n + 200:
        c.true(f"RLIMIT_NOFILE {hard} is too low for {n} sessions", False)
        return
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], workers=1, sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    held = []
    try:
        paths = [f"/s/{i:05d}/" + "p" * 191 for i in range(n)]
        c.eq("200-byte paths", 200, len(paths[0]))
        held = open_sessions(lb.port, paths)
        master = lb.proc.pid
        before = rss_kib(master, "VmRSS")
        t0 = time.monotonic()
        pages, sessions = list_all(ap)
        took = time.monotonic() - t0
        c.eq("every page answered 200, none partial, total exact",
             [(n, False)] * len(pages), [(p.get("total"), p.get("partial")) for p in pages])
        c.eq("every session listed exactly once, in id order", (n, n, True),
             (len(sessions), len({x["id"] for x in sessions}),
              [x["id"] for x in sessions] == sorted(x["id"] for x in sessions)))
        c.eq("with its whole path", sorted(paths), sorted(x["path"] for x in sessions))
        c.eq("pages of 1000, then the end", ([1000, 1000, 1000], [1000, 2000, None]),
             ([len(p.get("sessions", [])) for p in pages], [p.get("next_offset") for p in pages]))
        print(f"# listed {n} sessions in {len(pages)} pages: {took * 1000:.0f} ms; master RSS "
              f"{before} KiB before, {rss_kib(master, 'VmRSS')} KiB after, peak "
              f"{rss_kib(master, 'VmHWM')} KiB")
        one = jbody(request(ap, "GET", "/api/v1/sessions?limit=5&offset=2998&backend=e1"))
        c.eq("the last page is short", ([x["id"] for x in sessions[2998:]], n, None),
             ([x["id"] for x in one["sessions"]], one["total"], one.get("next_offset")))
        big = jbody(request(ap, "GET", "/api/v1/sessions?limit=100000"))
        c.eq("a limit above 1000 gets a page of 1000", (1000, 1000, 1000),
             (len(big.get("sessions", [])), big.get("limit"), big.get("next_offset")))

        # Twenty clients at once, each wanting a 1000-session page (about 0.5 MB): the master
        # builds a few at a time and refuses the rest, so its memory stays bounded.
        results = []

        def fetch():
            try:
                s, h, body = request(ap, "GET", "/api/v1/sessions?limit=1000")
                doc = json.loads(body)
                results.append((s, len(doc.get("sessions", [])) if s == 200 else h.get("retry-after")))
            except Exception as e:  # noqa: BLE001 - any failure is a wrong answer here
                results.append((repr(e), None))
        threads = [threading.Thread(target=fetch) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        ok = [r for r in results if r[0] == 200]
        c.true("20 listings at once: each complete or 503, at least one complete",
               len(results) == 20 and len(ok) >= 1 and all(r == (200, 1000) or r[0] == 503
                                                           for r in results), str(results))
        peak = rss_kib(master, "VmHWM")
        print(f"# 20 concurrent listings: {len(ok)} answered, {20 - len(ok)} refused; master peak "
              f"RSS {peak} KiB")
        c.true("the master's peak memory stays bounded (< 64 MiB)", peak < 64 * 1024, f"{peak} KiB")
    finally:
        for s in held:
            s.close()
        lb.stop()


def test_kill_codes(e1):
    """DELETE /api/v1/sessions/{id} takes every code SPEC.md lists (1000-1003, 1007-1009,
    1011-1014, 3000-4999) and a percent-encoded UTF-8 reason of at most 123 bytes."""
    import struct
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], workers=1, sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        def session():
            cl = RawClient(lb.port)
            cl.request("/")
            c.eq("session upgrades", 101, cl.read_head()[0])
            ids = [x["id"] for x in jbody(request(ap, "GET", "/api/v1/sessions"))["sessions"]]
            return cl, max(ids)

        def close_of(cl):
            fin, op, payload = cl.read_frame()
            return op, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None, payload[2:]

        cl, sid = session()
        s = request(ap, "DELETE", f"/api/v1/sessions/{sid}?code=1008&reason=policy+violated")[0]
        c.eq("DELETE code=1008: 202", 202, s)
        c.eq("the client gets 1008 and the reason", (0x8, 1008, b"policy violated"), close_of(cl))
        cl.close()
        reason = "caf\u00e9 " + "\u20ac" * 38  # 5 + 1 + 38 * 3 = 120 bytes of UTF-8
        cl, sid = session()
        enc = urllib.parse.quote(reason.encode())
        s = request(ap, "DELETE", f"/api/v1/sessions/{sid}?reason={enc}&code=1014")[0]
        c.eq("DELETE code=1014 with a percent-encoded UTF-8 reason: 202", 202, s)
        c.eq("the client gets 1014 and the reason, decoded", (0x8, 1014, reason.encode()),
             close_of(cl))
        cl.close()

        cl, sid = session()
        bad = [("code=1010", "1010 is a client's code"), ("code=1005", "never on the wire"),
               ("code=1006", "never on the wire"), ("code=1004", "reserved"),
               ("code=1015", "never on the wire"), ("code=2999", "reserved"),
               ("code=5000", "out of range"), ("code=999", "out of range"),
               ("code=65536", "out of range"), ("code=+1000", "not plain digits"),
               ("code=1000x", "not plain digits"), ("code=", "empty"), ("code=%201000", "space"),
               ("reason=" + "r" * 124, "124 bytes"),
               ("reason=" + "%E2%82%AC" * 41 + "r", "124 bytes once decoded"),
               ("reason=%FF", "not UTF-8"), ("reason=%C3", "a cut character"),
               ("reason=%zz", "a bad escape"), ("reason=a%2", "a cut escape"),
               ("reason=a%00b", "a NUL")]
        got = [(q, request(ap, "DELETE", f"/api/v1/sessions/{sid}?{q}")[0]) for q, _ in bad]
        c.eq("bad codes and reasons are refused with 400", [(q, 400) for q, _ in bad], got)
        ok = request(ap, "DELETE", f"/api/v1/sessions/{sid}?code=4999&reason=" + "r" * 123)[0]
        c.eq("4999 with a 123-byte reason: 202", 202, ok)
        c.eq("the client gets all 123 bytes", (0x8, 4999, b"r" * 123), close_of(cl))
        cl.close()
    finally:
        lb.stop()


def test_partial_answer(e1):
    """A worker that cannot answer makes the session list partial after a second, never hang."""
    import signal
    import time
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    stopped = None
    try:
        held = []
        for _ in range(4):
            cl = RawClient(lb.port)
            cl.request("/")
            cl.read_head()
            held.append(cl)
        workers = [p for p in lb.pids() if p != lb.proc.pid]
        stopped = workers[0]
        os.kill(stopped, signal.SIGSTOP)
        t0 = time.monotonic()
        s, h, body = request(ap, "GET", "/api/v1/sessions")
        took = time.monotonic() - t0
        doc = json.loads(body)
        c.eq("a stopped worker: 200 with partial true", (200, True), (s, doc.get("partial")))
        c.true("answered after about the 1 s timeout", 0.8 < took < 5, f"{took:.2f}s")
        os.kill(stopped, signal.SIGCONT)
        stopped = None
        doc = json.loads(request(ap, "GET", "/api/v1/sessions")[2])
        c.eq("once it runs again the list is complete", (False, 4), (doc["partial"], doc["total"]))
        for cl in held:
            cl.close()
    finally:
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        lb.stop()


def test_prometheus_scrape(e1):
    """A real Prometheus server on loopback scrapes /metrics."""
    import time
    import urllib.parse
    prom = shutil.which("prometheus")
    if not c.true("prometheus is installed", prom is not None, "apt-get install prometheus"):
        return
    ap, pp = free_port(), free_port()
    lb = Wsbal([("e1", e1.url)], sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    tmp = tempfile.mkdtemp(prefix="wsbal-prom-")
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: wsbal\n"
                f"    static_configs:\n      - targets: ['127.0.0.1:{ap}']\n")
    proc = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{pp}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        q = urllib.parse.quote('wsbal_build_info{version="0.1.0"}')
        value, deadline = None, time.monotonic() + 30
        while value is None and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                s, h, body = request(pp, "GET", f"/api/v1/query?query={q}")
                result = json.loads(body)["data"]["result"]
                value = result[0]["value"][1] if result else None
            except (OSError, KeyError, ValueError):
                pass
        c.eq("Prometheus scraped wsbal_build_info", "1", value)
        s, h, body = request(pp, "GET", "/api/v1/targets")
        health = [t["health"] for t in json.loads(body)["data"]["activeTargets"]]
        c.eq("the scrape target is healthy", ["up"], health)
    finally:
        proc.terminate()
        proc.wait(10)
        lb.stop()
        shutil.rmtree(tmp)


def test_admin_under_traffic(e1, e2):
    """Admin changes while 50 sessions echo: none of them notices anything."""
    from wsbtest import Chatters
    ap = free_port()
    lb = Wsbal([("e1", e1.url), ("e2", e2.url)], sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    chat = Chatters(lb.url, 50)
    try:
        chat.more_echoes(200)
        steps = [
            ("POST", "/api/v1/backends", json.dumps({"name": "e3", "url": e1.url}).encode()),
            ("PATCH", "/api/v1/backends/e2", b'{"weight": 5}'),
            ("POST", "/api/v1/backends/e1/disable", None),
            ("POST", "/api/v1/backends/e1/enable", None),
            ("POST", "/api/v1/backends/e2/drain", None),
            ("DELETE", "/api/v1/backends/e3?sessions=failover", None),
            ("POST", "/api/v1/reload", None),
        ]
        for method, path, body in steps:
            s = request(ap, method, path, body=body)[0]
            c.true(f"{method} {path} under traffic", 200 <= s < 300, str(s))
            c.true(f"sessions keep echoing after {method} {path}", chat.more_echoes(200),
                   str(chat.stats))
        chat.stop_and_check(c, "through the admin changes")
    finally:
        chat.stop()
        lb.stop()


def test_change_log(e1, e2):
    """Every change through the API logs one info line naming the client's address and port
    (an audit trail, as HAProxy's and Traefik's operators keep); reads and refusals log none."""
    ap = free_port()
    lb = Wsbal([("e1", e1.url), ("e2", e2.url)], sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        def change(method, path, body, status, line):
            conn = http.client.HTTPConnection("127.0.0.1", ap, timeout=10)
            conn.connect()
            port = conn.sock.getsockname()[1]
            with lb.cond:
                mark = len(lb.lines)
            got = request(ap, method, path, body=body, conn=conn)[0]
            conn.close()
            m = lb.wait_line(rf"admin 127\.0\.0\.1:{port}: {line}", timeout=5, start=mark)
            c.true(f"{method} {path}: {status}, logged with 127.0.0.1:{port}",
                   got == status and m is not None, (got, lb.output()[-1500:]))
            return port

        change("POST", "/api/v1/backends", json.dumps({"name": "e3", "url": e2.url}), 201,
               r"backend e3 added \(ws://")
        change("PATCH", "/api/v1/backends/e3", '{"weight": 3}', 200, r"backend e3 changed: weight 3$")
        change("PATCH", "/api/v1/backends/e3", '{"weight": 4, "enabled": false}', 200,
               r"backend e3 changed: weight 4, disabled$")
        change("POST", "/api/v1/backends/e3/enable", None, 200, r"backend e3 enabled$")
        change("POST", "/api/v1/backends/e3/disable", None, 200, r"backend e3 disabled$")
        change("POST", "/api/v1/backends/e3/drain", None, 202, r"backend e3 draining$")
        change("DELETE", "/api/v1/backends/e3?sessions=close", None, 200,
               r"backend e3 deleted, its sessions: close$")

        cl = RawClient(lb.port)
        cl.request("/log")
        c.eq("change log: a session upgrades", 101, cl.read_head()[0])
        sid = jbody(request(ap, "GET", "/api/v1/sessions"))["sessions"][0]["id"]
        change("POST", f"/api/v1/sessions/{sid}/failover", '{"backend": "e2"}', 202,
               rf"session {sid} moving to e2$")
        change("DELETE", f"/api/v1/sessions/{sid}?code=4000", None, 202,
               rf"session {sid} closing \(code 4000\)$")
        cl.close()
        change("POST", "/api/v1/reload", None, 200, r"reload done, configuration generation \d+$")

        # Reads and refused changes log no "admin ADDR:PORT" line.
        with lb.cond:
            mark = len(lb.lines)
        for method, path in [("GET", "/api/v1/backends"), ("GET", "/api/v1/backends/e1"),
                             ("POST", "/api/v1/backends/nope/disable"),
                             ("PATCH", "/api/v1/backends/e1")]:
            request(ap, method, path, body="{\"weight\": 0}" if method == "PATCH" else None)
        change("POST", "/api/v1/backends/e1/enable", None, 200, r"backend e1 enabled$")
        with lb.cond:
            since = lb.lines[mark:]
        c.eq("change log: one line for the one change, none for reads and refusals", 1,
             sum(1 for line in since if "admin 127.0.0.1:" in line))
    finally:
        lb.stop()


def main():
    e1, e2 = Echo("e1"), Echo("e2")
    try:
        return run_tests(c, lambda: test_api(e1, e2), lambda: test_token(e1),
                         lambda: test_session_list(e1, e2), lambda: test_session_cursor(e1),
                         lambda: test_session_list_at_scale(e1),
                         lambda: test_kill_codes(e1),
                         lambda: test_partial_answer(e1),
                         lambda: test_prometheus_scrape(e1), lambda: test_admin_under_traffic(e1, e2),
                         test_session_and_drain_commands, lambda: test_change_log(e1, e2))
    finally:
        e1.stop()
        e2.stop()


if __name__ == "__main__":
    sys.exit(main())

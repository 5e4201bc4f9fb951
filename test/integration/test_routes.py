"""Routes end to end: which [route:NAME] an upgrade takes (path prefixes segment-wise, host
wildcards with a header, websocket = never), strip_path as the backend sees it, on the first
connect and after a failover, wsbal_route_matches_total and GET /api/v1/routes, match counts
kept by name across a reload that adds and removes routes, a broken route refused by a reload
and by wsbal -t at FILE:LINE."""
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile

CTL = os.environ.get("WSBALCTL", "build/wsbalctl")

from wsbtest import (OP_TEXT, WSBAL, Checks, Peer, RawClient, Wsbal, free_port, frame, run_tests,
                     wait_for)

c = Checks()


def api(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def call(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else None


def routes(port):
    status, body = api(port, "/api/v1/routes")
    c.eq("GET /api/v1/routes answers 200", 200, status)
    doc = json.loads(body)
    return doc, {r["name"]: r["matches"] for r in doc["routes"]} | {
        "(default)": doc["default"]["matches"]}


def metric_matches(port):
    status, body = api(port, "/metrics")
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'^wsbal_route_matches_total\{route="([^"]*)"\} (\d+)$', body.decode(),
                        re.M)}


def backend_path(peer, lb, path, headers=None):
    """The path peer was asked for when a client upgraded to path through lb."""
    mark = len(peer.lines)
    cl, _ = RawClient.upgraded(lb.port, path, headers)
    m = peer.wait_line(r"connect reconnect=- path=(\S+)", start=mark)
    cl.close()
    return m.group(1) if m else None


SECTIONS = {
    "route:chat": {"path": "/chat", "strip_path": "on", "pool": "default"},
    "route:tenant": {"host": "*.example.test", "header": "X-Tenant: blue", "pool": "default"},
    "route:plain": {"websocket": "never", "pool": "default"},
}


def test_matching_and_strip(a, admin):
    lb = Wsbal([("a", a.url)], sections={"admin": {"address": f"127.0.0.1:{admin}"}, **SECTIONS})
    try:
        c.eq("strip_path: /chat/room?x=1 reaches the backend as /room?x=1", "/room?x=1",
             backend_path(a, lb, "/chat/room?x=1"))
        c.eq("strip_path: /chat reaches it as /", "/", backend_path(a, lb, "/chat"))
        c.eq("strip_path: /chat?q=1 reaches it as /?q=1", "/?q=1", backend_path(a, lb, "/chat?q=1"))
        c.eq("an encoded unreserved character matches its route: /ch%61t/x is /x", "/x",
             backend_path(a, lb, "/ch%61t/x"))
        c.eq("segment-wise: /chatty is not /chat's and goes unchanged to default", "/chatty",
             backend_path(a, lb, "/chatty"))
        c.eq("host wildcard and header: the path is left alone", "/t",
             backend_path(a, lb, "/t", {"Host": "a.b.Example.TEST:8080", "X-Tenant": "blue"}))
        c.eq("the wildcard does not take the domain itself", "/t",
             backend_path(a, lb, "/t", {"Host": "example.test", "X-Tenant": "blue"}))
        c.eq("the header value is case-sensitive", "/t",
             backend_path(a, lb, "/t", {"Host": "x.example.test", "X-Tenant": "Blue"}))
        want = {"chat": 4, "tenant": 1, "plain": 0, "(default)": 3}
        doc, got = routes(admin)
        c.eq("GET /api/v1/routes counts each route's matches (websocket = never takes no upgrade)",
             want, got)
        c.eq("routes are listed in file order with their keys",
             [("chat", ["/chat"], True, "any"), ("tenant", [], False, "any"),
              ("plain", [], False, "never")],
             [(r["name"], r["path"], r["strip_path"], r["websocket"]) for r in doc["routes"]])
        c.eq("the tenant route shows its host and header",
             (["*.example.test"], "X-Tenant: blue", "default"),
             (doc["routes"][1]["host"], doc["routes"][1]["header"], doc["routes"][1]["pool"]))
        out = subprocess.run([CTL, "-a", f"127.0.0.1:{admin}", "routes"], capture_output=True,
                             text=True, timeout=20)
        rows = [line.split() for line in out.stdout.strip().split("\n")]
        c.eq("wsbalctl routes: a table in matching order, then (default)",
             (0, ["NAME", "POOL", "HOST", "PATH", "HEADER", "WEBSOCKET", "STRIP", "MATCHES"],
              ["chat", "default", "-", "/chat", "-", "any", "yes", "4"],
              ["tenant", "default", "*.example.test", "-", "X-Tenant:", "blue", "any", "no", "1"],
              ["(default)", "default", "-", "-", "-", "-", "-", "3"]),
             (out.returncode, rows[0], rows[1], rows[2], rows[-1]))
        m = metric_matches(admin)
        c.eq("wsbal_route_matches_total has the same counts, route=\"default\" for the fallback",
             {"chat": 4, "tenant": 1, "plain": 0, "default": 3}, m)

        # A reload keeps the counts of the routes that stay, by name; a new one starts at 0.
        new = {"route:chat": SECTIONS["route:chat"],
               "route:fresh": {"host": "fresh.test", "pool": "default"},
               "route:tenant": SECTIONS["route:tenant"]}
        verdict, _ = lb.reload([("a", a.url)],
                               sections={"admin": {"address": f"127.0.0.1:{admin}"}, **new})
        c.true("the reload that changes routes succeeds", verdict and verdict.startswith("reloaded"),
               verdict)
        c.eq("the new route takes its requests at once", "/f",
             backend_path(a, lb, "/f", {"Host": "fresh.test"}))
        doc, got = routes(admin)
        c.eq("after the reload: kept routes keep their counts, the new one counts from 0",
             {"chat": 4, "fresh": 1, "tenant": 1, "(default)": 3}, got)

        broken = dict(new)
        broken["route:bad"] = {"host": "a.*.test", "pool": "nowhere"}
        verdict, lines = lb.reload([("a", a.url)],
                                   sections={"admin": {"address": f"127.0.0.1:{admin}"}, **broken})
        text = "\n".join(lines)
        c.true("a reload with a broken route fails", verdict and "failed" in verdict, verdict)
        c.true("and names the bad wildcard and the unknown pool at their lines",
               re.search(r":\d+: bad host list \"a\.\*\.test\" for \[route:bad\] host", text) and
               re.search(r":\d+: \[route:bad\] pool \"nowhere\" is not defined", text), text)
        c.eq("the running routes stay", "/x", backend_path(a, lb, "/chat/x"))

        # With no backend left in pool default, a request no route takes is a 404; one a route
        # takes still looks for a backend of its pool, and finds none: 503.
        conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
        conn.request("DELETE", "/api/v1/backends/a")
        c.eq("the only backend is deleted", 200, conn.getresponse().status)
        conn.close()
        statuses = []
        for path in ("/elsewhere", "/chat/x"):
            cl = RawClient(lb.port)
            cl.request(path)
            statuses.append(cl.read_head()[0])
            cl.close()
        c.eq("no route and an empty pool default: 404; a route's request: 503", [404, 503],
             statuses)
    finally:
        lb.stop()


def test_api_changes(a):
    """POST, PATCH and DELETE /api/v1/routes change the running routes at once, each refusal
    says why, and a reload goes back to the file."""
    admin = free_port()
    lb = Wsbal([("a", a.url)], sections={"admin": {"address": f"127.0.0.1:{admin}"},
                                         "route:chat": SECTIONS["route:chat"]})
    try:
        st, body = call(admin, "POST", "/api/v1/routes",
                        {"name": "api", "pool": "default", "path": ["/api", "/v1"],
                         "strip_path": True, "before": "chat"})
        c.eq("POST /api/v1/routes adds a route: 201 with it", (201, "api", ["/api", "/v1"], True, 0),
             (st, body.get("name"), body.get("path"), body.get("strip_path"), body.get("matches")))
        c.eq("it is matched at once", "/x", backend_path(a, lb, "/api/x"))
        c.eq("before= put it first", ["api", "chat"],
             [r["name"] for r in routes(admin)[0]["routes"]])
        refusals = [
            ({"name": "api", "pool": "default"}, 409, "a route of that name exists"),
            ({"name": "h", "pool": "default", "host": "a.*.test"}, 400,
             "body: bad host list \"a.*.test\" for [route:h] host (expected a comma list of host "
             "names or *.DOMAIN wildcards, e.g. chat.example.com, *.example.com)"),
            ({"name": "p", "pool": "nowhere"}, 400, "body: \"pool\" names no pool"),
            ({"name": "p"}, 400, "body: \"pool\" is required"),
            ({"name": "default", "pool": "default"}, 400,
             "body: \"name\" must be 1 to 63 letters, digits, '-', '_' or '.', and not "
             "\"default\""),
            ({"name": "p", "pool": "default", "before": "nope"}, 400,
             "body: \"before\" names no route"),
            ({"name": "p", "pool": "default", "path": ["/a,b"]}, 400,
             "body: \"path\" must be a list of strings, a comma list or null"),
            ({"name": "p", "pool": "default", "colour": "red"}, 400,
             "body: unknown field \"colour\""),
        ]
        for req, status, msg in refusals:
            st, body = call(admin, "POST", "/api/v1/routes", req)
            c.eq(f"POST {req}: {status}", (status, msg), (st, (body or {}).get("error")))
        st, body = call(admin, "PATCH", "/api/v1/routes/api", {"path": "/v2", "header": None})
        c.eq("PATCH changes the keys given", (200, ["/v2"], True), (st, body.get("path"),
                                                                   body.get("strip_path")))
        c.eq("the changed route takes /v2 now", "/y", backend_path(a, lb, "/v2/y"))
        c.eq("and no longer /api", "/api/x", backend_path(a, lb, "/api/x"))
        c.eq("the count of a changed route goes on", 2, routes(admin)[1]["api"])
        st, body = call(admin, "PATCH", "/api/v1/routes/api", {"websocket": "sometimes"})
        c.eq("PATCH with a bad value: 400 naming it", (400, "body: bad value \"sometimes\" for "
             "[route:api] websocket (expected any, only or never)"), (st, body.get("error")))
        c.eq("GET /api/v1/routes/NAME, and 404 for no such route", (200, 404),
             (call(admin, "GET", "/api/v1/routes/api")[0],
              call(admin, "GET", "/api/v1/routes/nope")[0]))
        c.eq("DELETE removes it", (200, {"deleted": "api"}, 404),
             call(admin, "DELETE", "/api/v1/routes/api") +
             (call(admin, "GET", "/api/v1/routes/api")[0],))
        c.eq("its requests take the next route that matches", "/v2/y",
             backend_path(a, lb, "/v2/y"))
        call(admin, "POST", "/api/v1/routes", {"name": "gone", "pool": "default"})
        call(admin, "POST", "/api/v1/routes", {"name": "twice", "pool": "default"})
        call(admin, "PATCH", "/api/v1/routes/twice", {"path": "/t"})
        call(admin, "DELETE", "/api/v1/routes/chat")
        st, body = call(admin, "POST", "/api/v1/reload")
        c.eq("a reload says which API changes to routes it drops",
             (200, ["route gone: removed (added through the API)",
                    "route twice: removed (added through the API)",
                    "route chat: back (deleted through the API)"]),
             (st, body.get("discarded")))
        c.eq("and goes back to the file's routes", ["chat"],
             [r["name"] for r in routes(admin)[0]["routes"]])
    finally:
        lb.stop()


def test_pools(a, b):
    """A route sends its requests to its own pool's backends, and only to them."""
    admin = free_port()
    secs = {"admin": {"address": f"127.0.0.1:{admin}"},
            "route:chat": {"path": "/chat", "strip_path": "on", "pool": "chat"},
            "backend:a": {"url": a.url},
            "backend:b": {"url": b.url, "pool": "chat"}}
    lb = Wsbal([], sections=secs)
    try:
        c.eq("/chat/x goes to the chat pool's backend, stripped", "/x",
             backend_path(b, lb, "/chat/x"))
        c.eq("anything else goes to pool default", "/other", backend_path(a, lb, "/other"))
        held = []
        for _ in range(4):
            cl, _ = RawClient.upgraded(lb.port, "/chat")
            cl.send(frame(OP_TEXT, b"who"))
            held.append(cl.read_frame()[2])
            cl.close()
        c.eq("every session of the route is on its pool's backend", [b"b"] * 4, held)
        # Its pool without a backend: 503, never a backend of another pool.
        st, _ = call(admin, "DELETE", "/api/v1/backends/b")
        cl = RawClient(lb.port)
        cl.request("/chat/x")
        status = cl.read_head()[0]
        cl.close()
        c.eq("a route whose pool has no backend left: 503, default's backend is not used",
             (200, 503), (st, status))
    finally:
        lb.stop()


def sessions(port, query=""):
    status, body = api(port, "/api/v1/sessions" + query)
    return status, json.loads(body) if body else None


def ctl(admin, *args):
    return subprocess.run([CTL, "-a", f"127.0.0.1:{admin}", *args], capture_output=True,
                          text=True, timeout=20)


def test_session_listing(a, b):
    """Each listed session names its pool and route ("default" for none), ?pool= filters (with
    ?backend= too), bad filters get a JSON error, and wsbalctl sessions shows both and follows
    the pages (3 sessions a page here, a debug build's WSB_TEST_SESSION_PAGE_MAX)."""
    admin = free_port()
    secs = {"admin": {"address": f"127.0.0.1:{admin}"},
            "route:chat": {"path": "/chat", "pool": "chat"},
            "route:feed": {"path": "/feed", "pool": "default"},
            "backend:a": {"url": a.url},
            "backend:b": {"url": b.url, "pool": "chat"}}
    lb = Wsbal([], sections=secs, extra_env={"WSB_TEST_SESSION_PAGE_MAX": "3"})
    want = {"/chat/1": ["chat", "chat"], "/chat/2": ["chat", "chat"],
            "/feed/1": ["default", "feed"], "/feed/2": ["default", "feed"],
            "/other": ["default", "default"]}
    held = []
    try:
        for path in want:
            held.append(RawClient.upgraded(lb.port, path)[0])
        c.true("the five sessions are listed", wait_for(
            lambda: (sessions(admin)[1] or {}).get("total") == 5))
        st, first = sessions(admin)
        st2, second = sessions(admin, f"?offset={first.get('next_offset')}")
        c.eq("two pages of at most 3", (200, 3, 3, 200, 2, None),
             (st, len(first["sessions"]), first["next_offset"], st2, len(second["sessions"]),
              second["next_offset"]))
        listed = {e["path"]: [e["pool"], e["route"]] for e in first["sessions"] +
                  second["sessions"]}
        c.eq("each session's pool and route", want, listed)
        for query, paths in (("?pool=chat", ["/chat/1", "/chat/2"]),
                             ("?pool=default&limit=3", ["/feed/1", "/feed/2", "/other"]),
                             ("?pool=default&backend=a", ["/feed/1", "/feed/2", "/other"]),
                             ("?backend=a&pool=chat", [])):
            st, doc = sessions(admin, query)
            c.eq(f"GET /api/v1/sessions{query}", (200, len(paths), paths),
                 (st, doc and doc["total"], sorted(e["path"] for e in (doc or {"sessions": []})[
                     "sessions"])))
        one = next(e["id"] for e in first["sessions"] + second["sessions"]
                   if e["path"] == "/chat/2")
        st, doc = sessions(admin, f"/{one}")
        c.eq("one session by id: its pool and route", (200, "chat", "chat"),
             (st, doc and doc.get("pool"), doc and doc.get("route")))
        for query, code, error in (("?pool=nope", 404, "no such pool"),
                                   ("?pool=", 404, "no such pool"),
                                   ("?pool=" + "p" * 300, 404, "no such pool"),
                                   ("?pool=ch%zzat", 400, "pool= has a bad %-escape or a NUL byte"),
                                   ("?pool=ch%00at", 400, "pool= has a bad %-escape or a NUL byte"),
                                   ("?pool=chat&backend=nope", 404, "no such backend")):
            st, doc = sessions(admin, query)
            c.eq(f"GET /api/v1/sessions{query[:40]}: a JSON error", (code, {"error": error}),
                 (st, doc))

        # wsbalctl: the POOL and ROUTE columns, every page, one JSON object.
        out = ctl(admin, "sessions")
        lines = out.stdout.strip().split("\n")
        head = lines[0].split()
        rows = {r[head.index("PATH")]: [r[head.index("POOL")], r[head.index("ROUTE")]]
                for r in (line.split() for line in lines[1:])} if "POOL" in head else {}
        c.eq("wsbalctl sessions: both pages, each with its pool and route", (0, want, ""),
             (out.returncode, rows, out.stderr))
        out = ctl(admin, "--json", "sessions")
        doc = json.loads(out.stdout) if out.returncode == 0 else {}
        ids = [e["id"] for e in doc.get("sessions", [])]
        c.eq("wsbalctl --json sessions: one object of both pages, each session once",
             (0, 5, 2, None, 5), (out.returncode, doc.get("total"), doc.get("pages"),
                                  doc.get("next_offset"), len(set(ids))))
        c.eq("with pool and route", want, {e["path"]: [e["pool"], e["route"]]
                                           for e in doc.get("sessions", [])})
        out = ctl(admin, "--json", "sessions", "--pool", "chat")
        doc = json.loads(out.stdout) if out.returncode == 0 else {}
        c.eq("wsbalctl --json sessions --pool chat: the one page as the server sent it",
             (0, 2, False), (out.returncode, doc.get("total"), "pages" in doc))
        out = ctl(admin, "sessions", "--pool", "default", "--backend", "a")
        c.eq("wsbalctl sessions --pool default --backend a", (0, 4),
             (out.returncode, len(out.stdout.strip().split("\n"))))
        out = ctl(admin, "sessions", "--pool", "nope")
        c.eq("wsbalctl sessions --pool nope: the server's error", (1, "wsbalctl: 404: no such pool"),
             (out.returncode, out.stderr.strip()))
    finally:
        for h in held:
            h.close()
        lb.stop()


def test_strip_after_failover(a, b):
    """A session's stripped path is what a failover sends the next backend too."""
    lb = Wsbal([("a", a.url), ("b", b.url)], sections=SECTIONS)
    held = []
    try:
        marks = {p: len(p.lines) for p in (a, b)}
        cl, _ = RawClient.upgraded(lb.port, "/chat/room/7?u=1")
        cl.send(frame(OP_TEXT, b"who"))
        _, _, who = cl.read_frame()
        first, other = (a, b) if who == b"a" else (b, a)
        m = first.wait_line(r"connect reconnect=- path=(\S+)", start=marks[first])
        c.eq("the first backend got the stripped path", "/room/7?u=1", m and m.group(1))
        first.stop(9)
        m = other.wait_line(r"connect reconnect=([0-9a-f]{16}) path=(\S+)", start=marks[other])
        c.eq("after the failover the next backend gets the same stripped path", "/room/7?u=1",
             m and m.group(2))
        cl.send(frame(OP_TEXT, b"who"))
        _, _, who2 = cl.read_frame()
        c.eq("the session goes on with the other backend", other.ident.encode(), who2)
        held.append(cl)
    finally:
        for h in held:
            h.close()
        lb.stop()


def test_check_config():
    fd, path = tempfile.mkstemp(prefix="wsbal-test-", suffix=".ini")
    with os.fdopen(fd, "w") as f:
        f.write("[backend:a]\nurl = ws://127.0.0.1:9\n[route:x]\npath = /x\n"
                "[route:x]\npool = default\n[route:y]\nhost = *\npool = p2\n")
    try:
        out = subprocess.run([WSBAL, "-t", "-c", path], capture_output=True, text=True, timeout=20)
        c.eq("wsbal -t refuses broken routes", 1, out.returncode)
        c.eq("every mistake at its FILE:LINE",
             [f"{path}:5: duplicate section [route:x] (first at line 3)",
              f"{path}:8: bad host list \"*\" for [route:y] host (expected a comma list of host "
              "names or *.DOMAIN wildcards, e.g. chat.example.com, *.example.com)",
              f"{path}:3: [route:x] has no pool",
              f"{path}:9: [route:y] pool \"p2\" is not defined"],
             [line for line in out.stderr.strip().split("\n") if line.startswith(path)])
    finally:
        os.unlink(path)


def main():
    a, b = Peer("a"), Peer("b")
    admin = free_port()
    try:
        return run_tests(c, lambda: test_matching_and_strip(a, admin),
                         test_check_config, lambda: test_api_changes(a),
                         lambda: test_pools(a, b), lambda: test_session_listing(a, b),
                         lambda: test_strip_after_failover(a, b))
    finally:
        a.stop()
        b.stop()


if __name__ == "__main__":
    sys.exit(main())

"""Routes and pools as an operator meets them (issue 17's remaining gaps):
- the access log's "route" on WebSocket and plain HTTP lines: the route that matched, "default"
  when none did, absent from a request refused before any route was looked at;
- POST and PATCH /api/v1/routes with hundreds of hosts and paths (past the 64 tokens other bodies
  get), and a body past the bound (4,096 JSON tokens) refused with a 400 that says so;
- PATCH /api/v1/backends/NAME {"pool"}: live sessions stay on the backend and in the pool they
  started in, new ones follow the new pool, least_conn counts stay exact while they close, bad
  values are refused, and a reload says it discards the change;
- [wsbal] max_sessions counts client connections that carry plain HTTP, as HAProxy's maxconn
  counts connections: past the cap a plain request gets 503 with Retry-After, an upgrade on a
  connection already counted takes no second place, and a closed connection frees its place.
"""
import json
import os
import socket
import sys

from httpraw import read_answer
from wsbtest import (T, Checks, Echo, RawClient, Wsbal, admin_call, free_port, run_tests,
                     wait_for)

c = Checks()
E1, E2, E3 = Echo("e1"), Echo("e2"), Echo("e3")


def api(port, method, path, body=None):
    status, data = admin_call(port, method, path, body)
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data


def backends(port):
    return {b["name"]: b for b in api(port, "GET", "/api/v1/backends")[1]["backends"]}


def pools(port):
    return {p["name"]: p for p in api(port, "GET", "/api/v1/pools")[1]["pools"]}


def upgrade(port, path="/", host="127.0.0.1"):
    """(the backend's id or the HTTP status, the open client or None)."""
    cl = RawClient(port)
    cl.request(path, {"Host": host})
    status, hdrs, _ = cl.read_head()
    if status != 101:
        cl.close()
        return status, None
    return hdrs.get("x-backend-id"), cl


def plain(sock, path, host="x"):
    """One GET on sock: (status or None when the connection closed first, head)."""
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode()))
    try:
        head, _, _ = read_answer(sock)
    except EOFError as e:
        return None, e.args[0]
    return int(head.split()[1]), head


def test_access_log_route():
    log = f"/tmp/wsbal-route-access-{os.getpid()}.log"
    w = Wsbal([("e1", E1.url)], workers=1, sections={
        "wsbal": {"access_log": log},
        "listen": {"http": "proxy"},
        "upstream": {"pass_headers": "X-Backend-Id"},
        "route:chat": {"path": "/chat", "websocket": "only", "pool": "chat"},
        "route:api": {"path": "/api", "websocket": "never", "strip_path": "on",
                      "pool": "chat"},
        "backend:e2": {"url": E2.url, "pool": "chat"},
    })
    try:
        who1, cl1 = upgrade(w.port, "/chat/room")
        who2, cl2 = upgrade(w.port, "/elsewhere")
        cl1.close()
        cl2.close()
        s = socket.create_connection(("127.0.0.1", w.port), timeout=T)
        got = [plain(s, "/api/healthCheck")[0], plain(s, "/healthCheck")[0]]
        s.close()
        s = socket.create_connection(("127.0.0.1", w.port), timeout=T)
        s.sendall(b"GET /api/x HTTP/1.1\r\n\r\n")  # no Host: 400 before any route is looked at
        got.append(int(s.recv(100).split()[1]))
        s.close()
        c.eq("sessions and requests went where their routes say", ("e2", "e1", [200, 200, 400]),
             (who1, who2, got))

        def lines():
            try:
                with open(log) as f:
                    return [json.loads(line) for line in f]
            except (OSError, ValueError):
                return []
        wait_for(lambda: len(lines()) >= 5)
        seen = sorted((l.get("type"), l.get("path"), l.get("route", "<absent>"),
                       l.get("pool", "<absent>")) for l in lines())
        c.eq("access log: the route of each line ('default' for no route, absent when refused "
             "before routing) and its pool", sorted([
                 ("ws", "/chat/room", "chat", "chat"), ("ws", "/elsewhere", "default", "default"),
                 ("http", "/api/healthCheck", "api", "chat"),
                 ("http", "/healthCheck", "default", "default"),
                 ("http", "/api/x", "<absent>", "<absent>")]), seen)
    finally:
        w.stop()
        if os.path.exists(log):
            os.unlink(log)


def test_routes_with_many_items():
    admin = free_port()
    w = Wsbal([("e1", E1.url)], workers=1, sections={
        "listen": {"http": "proxy"},
        "upstream": {"pass_headers": "X-Backend-Id"},
        "admin": {"address": f"127.0.0.1:{admin}"},
        "backend:e2": {"url": E2.url, "pool": "many"},
    })
    try:
        hosts = [f"h{i}.example.com" for i in range(400)]
        st, body = api(admin, "POST", "/api/v1/routes", {"name": "many", "pool": "many",
                                                         "host": hosts})
        c.eq("POST /api/v1/routes with 400 hosts: 201, all of them kept",
             (201, 400), (st, len(body.get("host", [])) if isinstance(body, dict) else body))
        who, cl = upgrade(w.port, "/", host="h399.example.com")
        if cl:
            cl.close()
        c.eq("the last of them matches", "e2", who)
        paths = [f"/p{i}" for i in range(1000)]
        st, body = api(admin, "PATCH", "/api/v1/routes/many", {"host": None, "path": paths})
        c.eq("PATCH with 1,000 paths: 200", (200, 1000, []),
             (st, len(body.get("path", [])), body.get("host")) if isinstance(body, dict)
             else (st, body))
        who, cl = upgrade(w.port, "/p999/x")
        if cl:
            cl.close()
        c.eq("the last path matches", "e2", who)
        st, body = api(admin, "POST", "/api/v1/routes", {
            "name": "toomany", "pool": "many", "path": [f"/{i}" for i in range(5000)]})
        c.true("5,000 items (past 4,096 tokens): 400 naming the cause",
               st == 400 and "too many" in str(body).lower(), (st, body))
        st, body = api(admin, "GET", "/api/v1/routes")
        c.eq("the refused route was not added", ["many"], [r["name"] for r in body["routes"]])
    finally:
        w.stop()


def test_backend_moves_pool():
    admin = free_port()
    w = Wsbal([("e1", E1.url), ("e2", E2.url)], workers=2, sections={
        "upstream": {"pass_headers": "X-Backend-Id", "algorithm": "least_conn"},
        "admin": {"address": f"127.0.0.1:{admin}"},
        "route:other": {"path": "/other", "pool": "other"},
        "backend:e3": {"url": E3.url, "pool": "other"},
    })
    held = []
    try:
        st, body = api(admin, "PATCH", "/api/v1/backends/e1", {"pool": "no such name!"})
        c.eq("a pool name a section could not have: 400", 400, st)
        st, body = api(admin, "PATCH", "/api/v1/backends/e1", {"pool": 3})
        c.eq("a pool that is not a string: 400", 400, st)
        st, body = api(admin, "PATCH", "/api/v1/backends/zz", {"pool": "other"})
        c.eq("an unknown backend: 404", 404, st)
        # e2 disabled: the first four sessions all land on e1.
        api(admin, "PATCH", "/api/v1/backends/e2", {"enabled": False})
        for _ in range(4):
            who, cl = upgrade(w.port, "/")
            held.append((who, cl))
        api(admin, "PATCH", "/api/v1/backends/e2", {"enabled": True})
        st, body = api(admin, "PATCH", "/api/v1/backends/e1", {"pool": "other"})
        c.eq("PATCH {\"pool\"}: 200 with the backend in its new pool", (200, "other"),
             (st, body.get("pool") if isinstance(body, dict) else body))
        bs, ps = backends(admin), pools(admin)
        c.eq("e1 keeps its 4 live sessions, counted in the pool they started in",
             (["e1"] * 4, 4, 4, 0), ([h[0] for h in held], bs["e1"]["sessions"],
                                     ps["default"]["sessions"], ps["other"]["sessions"]))
        new_default = [upgrade(w.port, "/") for _ in range(3)]
        c.eq("new sessions of pool default go to e2 only", ["e2"] * 3,
             [who for who, _ in new_default])
        new_other = [upgrade(w.port, "/other") for _ in range(5)]
        # least_conn in pool other: e1 has 4 live sessions, e3 none; e3 takes sessions until it
        # has as many (ties broken at random), so of 5 new ones e3 gets at least 4.
        whos = [who for who, _ in new_other]
        c.true("new sessions of pool other follow least_conn over e1's exact count",
               whos.count("e3") >= 4 and set(whos) <= {"e1", "e3"},
               whos)
        want_e1 = 4 + whos.count("e1")
        bs = backends(admin)
        c.eq("live counts exact per backend", (want_e1, 3, whos.count("e3")),
             (bs["e1"]["sessions"], bs["e2"]["sessions"], bs["e3"]["sessions"]))
        for _, cl in held:
            cl.close()
        ok = wait_for(lambda: backends(admin)["e1"]["sessions"] == whos.count("e1"))
        ps = pools(admin)
        c.true("the old sessions close: e1's count falls by exactly 4, pool default's too",
               ok and ps["default"]["sessions"] == 3, (backends(admin)["e1"], ps["default"]))
        for _, cl in new_default + new_other:
            if cl:
                cl.close()
        ok = wait_for(lambda: all(b["sessions"] == 0 for b in backends(admin).values()))
        c.true("every count back to 0", ok, backends(admin))
        st, body = api(admin, "POST", "/api/v1/reload")
        c.true("a reload says it discards the pool set through the API",
               st == 200 and "backend e1: pool default (other through the API)" in json.dumps(body),
               body)
        c.eq("and e1 is in pool default again", "default", backends(admin)["e1"]["pool"])
    finally:
        for _, cl in held:
            cl.close()
        w.stop()


def test_max_sessions_counts_connections():
    w = Wsbal([("e1", E1.url)], workers=1, sections={
        "wsbal": {"max_sessions": "2"},
        "listen": {"http": "proxy"},
    })
    try:
        a = socket.create_connection(("127.0.0.1", w.port), timeout=T)
        b = socket.create_connection(("127.0.0.1", w.port), timeout=T)
        first = [plain(a, "/healthCheck")[0], plain(b, "/healthCheck")[0]]
        d = socket.create_connection(("127.0.0.1", w.port), timeout=T)
        st, head = plain(d, "/healthCheck")
        closed = d.recv(100) == b""
        d.close()
        c.eq("two kept-alive plain connections fill max_sessions = 2: a third gets 503 with "
             "Retry-After, then the close", ([200, 200], 503, True, True),
             (first, st, b"Retry-After" in (head or b""), closed))
        who, cl = upgrade(w.port, "/")
        c.eq("an upgrade on a new connection: 503 too", 503, who)
        a.sendall(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        c.true("an upgrade on a counted connection takes its place: 101",
               a.recv(100).startswith(b"HTTP/1.1 101"))
        b.close()
        d = socket.create_connection(("127.0.0.1", w.port), timeout=T)

        def served():
            s = socket.create_connection(("127.0.0.1", w.port), timeout=T)
            try:
                return plain(s, "/healthCheck")[0] == 200
            finally:
                s.close()
        c.true("a closed connection frees its place", wait_for(served))
        d.close()
        a.close()
    finally:
        w.stop()


code = run_tests(c, test_access_log_route, test_routes_with_many_items, test_backend_moves_pool,
                 test_max_sessions_counts_connections)
for e in (E1, E2, E3):
    e.stop()
sys.exit(code)

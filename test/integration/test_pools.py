"""Pools: sessions and their failovers stay in their pool (no route picks another yet, so clients
land in "default"), [pool:NAME] settings reach their pool, live counts stay exact when a reload
moves a backend to another pool, the admin API and wsbalctl show and add pools, and wsbal -t
names the line of a bad pool key."""
import json
import os
import struct
import subprocess
import sys
import tempfile

from wsbtest import (WSBAL, Checks, Echo, RawClient, Wsbal, admin_call, free_port, run_tests,
                     wait_for)

c = Checks()
WSBALCTL = os.environ.get("WSBALCTL", os.path.join(os.path.dirname(WSBAL), "wsbalctl"))


def api(port, method, path, body=None):
    status, data = admin_call(port, method, path, body)
    return status, json.loads(data) if data else None


def backends(port):
    return {b["name"]: b for b in api(port, "GET", "/api/v1/backends")[1]["backends"]}


def pools(port):
    return {p["name"]: p for p in api(port, "GET", "/api/v1/pools")[1]["pools"]}


def open_session(lb):
    """One upgrade: (the backend's id or the HTTP status, the open client or None)."""
    cl = RawClient(lb.port)
    cl.request("/")
    status, hdrs, _ = cl.read_head()
    if status != 101:
        cl.close()
        return status, None
    return hdrs.get("x-backend-id"), cl


def close_code(cl):
    """The code of the close frame the client gets next."""
    while True:
        _, opcode, payload = cl.read_frame()
        if opcode == 8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def config(admin, pools_keys, backends_list):
    """Sections: [pool:NAME] keys, and backends as (name, url, pool or None)."""
    s = {"upstream": {"pass_headers": "X-Backend-Id"}, "admin": {"address": f"127.0.0.1:{admin}"}}
    for name, keys in pools_keys.items():
        s[f"pool:{name}"] = keys
    for name, url, pool in backends_list:
        s[f"backend:{name}"] = {"url": url, **({"pool": pool} if pool else {})}
    return s


def test_selection_and_api(echoes):
    """Only default's backends take sessions, in its own algorithm; the API shows each pool."""
    d1, d2, c1 = echoes
    admin = free_port()
    lb = Wsbal([], sections=config(admin, {"default": {"algorithm": "round_robin"},
                                           "chat": {"algorithm": "hash", "max_failovers": "2",
                                                    "health_check": "http",
                                                    "health_path": "/nope",
                                                    "health_interval": "100ms"}},
                                   [("d1", d1.url, None), ("d2", d2.url, "default"),
                                    ("c1", c1.url, "chat")]))
    held = []
    try:
        got = {}
        for _ in range(10):
            who, cl = open_session(lb)
            got[who] = got.get(who, 0) + 1
            held.append(cl)
        c.eq("round_robin of [pool:default] over d1 and d2 only", {"d1": 5, "d2": 5}, got)
        bs = backends(admin)
        c.eq("each backend shows its pool", {"d1": "default", "d2": "default", "c1": "chat"},
             {n: b["pool"] for n, b in bs.items()})
        wait_for(lambda: pools(admin)["default"]["sessions"] == 10)
        ps = pools(admin)
        c.eq("pools listed default first", ["default", "chat"], list(ps))
        c.eq("default: its backends, sessions and algorithm",
             (["d1", "d2"], 10, "round_robin", True),
             (ps["default"]["backends"], ps["default"]["sessions"],
              ps["default"]["settings"]["algorithm"], ps["default"]["configured"]))
        c.eq("chat: its own keys over [upstream]'s",
             (["c1"], 0, "hash", 2, "X-Backend-Id"),
             (ps["chat"]["backends"], ps["chat"]["sessions"], ps["chat"]["settings"]["algorithm"],
              ps["chat"]["settings"]["max_failovers"], ps["chat"]["settings"]["pass_headers"]))
        # [upstream] health_check = off (the tests' default); chat checks over http.
        c1_state = wait_for(lambda: (lambda b: not b["up"] and b)(backends(admin)["c1"]))
        c.eq("chat's own health check takes c1 down", ("bad_status", False),
             (c1_state and c1_state["last_check"]["result"], c1_state and c1_state["up"]))
        c.eq("default's backends are not checked", [None, None],
             [backends(admin)[n]["last_check"] for n in ("d1", "d2")])
        text = admin_call(admin, "GET", "/metrics")[1].decode()
        c.true("wsbal_pool_sessions per pool",
               'wsbal_pool_sessions{pool="default"} 10\n' in text and
               'wsbal_pool_sessions{pool="chat"} 0\n' in text,
               [line for line in text.split("\n") if "pool" in line])
        c.eq("one pool by name", (200, "chat"), (lambda r: (r[0], r[1]["name"]))(
            api(admin, "GET", "/api/v1/pools/chat")))
        c.eq("an unknown pool is 404", 404, api(admin, "GET", "/api/v1/pools/nope")[0])
        out = subprocess.run([WSBALCTL, "-a", f"127.0.0.1:{admin}", "pools"], capture_output=True,
                             text=True, timeout=10)
        lines = out.stdout.split("\n")
        c.true("wsbalctl pools: a table with both pools", out.returncode == 0 and
               lines[0].split()[:2] == ["NAME", "ALGORITHM"] and
               any(line.split()[:3] == ["chat", "hash", "c1"] for line in lines) and
               any(line.split()[:3] == ["default", "round_robin", "d1,d2"] for line in lines),
               out.stdout + out.stderr)
        # The API adds backends to any pool, a new one too; a bad name is refused.
        st, body = api(admin, "POST", "/api/v1/backends", {"name": "x1", "url": c1.url,
                                                            "pool": "extra"})
        c.eq("POST a backend into a new pool", (201, "extra"), (st, body and body.get("pool")))
        ps = pools(admin)
        c.eq("the new pool has [upstream]'s settings", (["x1"], False, "least_conn"),
             (ps["extra"]["backends"], ps["extra"]["configured"],
              ps["extra"]["settings"]["algorithm"]))
        st, body = api(admin, "POST", "/api/v1/backends", {"name": "x2", "url": c1.url,
                                                            "pool": "no good"})
        c.eq("a bad pool name is 400", 400, st)
        out = subprocess.run([WSBALCTL, "-a", f"127.0.0.1:{admin}", "add", "x3", c1.url, "--pool",
                              "chat"], capture_output=True, text=True, timeout=10)
        c.true("wsbalctl add --pool", out.returncode == 0 and backends(admin)["x3"]["pool"] ==
               "chat", out.stdout + out.stderr)
        who, cl = open_session(lb)
        held.append(cl)
        c.true("new sessions still only in default", who in ("d1", "d2"), who)

        # PATCH changes a pool's keys at once, all or none; a reload discards the change.
        st, body = api(admin, "PATCH", "/api/v1/pools/default",
                       {"algorithm": "least_conn", "max_failovers": 3, "failover": False})
        c.eq("PATCH a pool: 200 with its new settings", (200, "least_conn", 3, False, True),
             (st, body["settings"]["algorithm"], body["settings"]["max_failovers"],
              body["settings"]["failover"], body["changed"]) if st == 200 else (st, body))
        for what, change, error in (
                ("an unknown key", {"colour": "red"}, 'unknown key "colour" in [pool:default]'),
                ("a bad value", {"algorithm": "least_conn", "health_rise": 0},
                 'number "0" for [pool:default] health_rise is out of range (expected 1..100)'),
                ("a TLS key", {"tls_verify": False}, "[pool:default] tls_verify changes with a "
                 "reload, which loads and checks its files"),
                ("a process-wide key", {"resolve_interval": "1m"}, "[pool:default] "
                 "resolve_interval applies to every pool at once: set it in [upstream]"),
                ("an object value", {"algorithm": {}}, 'body: "algorithm" must be a string, a '
                 "number or a boolean"),
                ("no key at all", {}, "body: an object of [upstream] keys and their values")):
            c.eq(f"PATCH with {what}: 400 naming it", (400, error),
                 (lambda r: (r[0], r[1] and r[1].get("error")))(
                     api(admin, "PATCH", "/api/v1/pools/default", change)))
        c.eq("a refused PATCH changes nothing", ("least_conn", 3),
             (lambda s: (s["algorithm"], s["max_failovers"]))(pools(admin)["default"]["settings"]))
        out = subprocess.run([WSBALCTL, "-a", f"127.0.0.1:{admin}", "pool", "chat",
                              "max_failovers=4"], capture_output=True, text=True, timeout=10)
        c.true("wsbalctl pool NAME KEY=VALUE", out.returncode == 0 and
               out.stdout.split("\n")[1].split()[:2] == ["chat", "hash"] and
               pools(admin)["chat"]["settings"]["max_failovers"] == 4, out.stdout + out.stderr)
        out = subprocess.run([WSBALCTL, "-a", f"127.0.0.1:{admin}", "pool", "chat", "colour=red"],
                             capture_output=True, text=True, timeout=10)
        c.true("wsbalctl pool: the server's refusal, exit 1", out.returncode == 1 and
               'unknown key "colour"' in out.stderr, out.stdout + out.stderr)
        st, body = api(admin, "PATCH", "/api/v1/pools/fresh", {"health_check": "tcp"})
        c.eq("PATCH makes a pool no file names", (200, "fresh", [], "tcp"),
             (st, body.get("name"), body.get("backends"), body["settings"]["health_check"])
             if st == 200 else (st, body))
        st, body = api(admin, "POST", "/api/v1/reload")
        c.true("a reload says what it discards", st == 200 and
               "pool default: the file's settings (changed through the API)" in body["discarded"]
               and "pool fresh: the file's settings (changed through the API)"
               in body["discarded"], body)
        ps = pools(admin)
        c.eq("after the reload: the file's settings, the API's pool gone",
             ("round_robin", False, False), (ps["default"]["settings"]["algorithm"],
                                             ps["default"]["changed"], "fresh" in ps))
    finally:
        for cl in held:
            if cl:
                cl.close()
        lb.stop()


def test_failover_stays_in_pool():
    """Its pool's last backend gone, a session gets 1013 and an upgrade 502, though another
    pool's backend is up."""
    d1, c1 = Echo("d1"), Echo("c1")
    admin = free_port()
    lb = Wsbal([], sections=config(admin, {}, [("d1", d1.url, None), ("c1", c1.url, "chat")]))
    try:
        who, cl = open_session(lb)
        c.eq("the session is in default", "d1", who)
        d1.stop()
        c.eq("no backend left in its pool: close 1013", 1013, close_code(cl))
        cl.close()
        status, _ = open_session(lb)
        # health_check = off: d1 still counts as up, is tried and refuses.
        c.eq("a new upgrade gets 502 with only another pool's backend up", 502, status)
        c.eq("the other pool's backend never got a session", 0,
             backends(admin)["c1"]["sessions_total"])
    finally:
        lb.stop()
        d1.stop()
        c1.stop()


def test_reload_moves_backend(echoes):
    """A reload moves d1 to pool chat and c1 to default: d1's live sessions stay on it, counted
    exactly in the backend and in the pool they were placed in; new ones go to c1."""
    d1, _, c1 = echoes
    admin = free_port()
    lb = Wsbal([], sections=config(admin, {}, [("d1", d1.url, None), ("c1", c1.url, "chat")]))
    held = []
    try:
        for _ in range(4):
            who, cl = open_session(lb)
            held.append(cl)
            c.eq("before the reload: d1", "d1", who)
        verdict, _ = lb.reload([], config(admin, {}, [("d1", d1.url, "chat"),
                                                      ("c1", c1.url, None)]))
        c.true("reloaded", verdict is not None and verdict.startswith("reloaded"), verdict)
        bs = backends(admin)
        c.eq("d1 moved to chat with its 4 sessions", ("chat", 4), (bs["d1"]["pool"],
                                                                   bs["d1"]["sessions"]))
        who, cl = open_session(lb)
        held.append(cl)
        c.eq("a new session goes to default's new backend", "c1", who)
        ps = pools(admin)
        c.eq("sessions count in the pool they were placed in", (5, 0),
             (ps["default"]["sessions"], ps["chat"]["sessions"]))
        listed = api(admin, "GET", "/api/v1/sessions")[1]["sessions"]
        c.eq("the sessions API shows each session's pool and backend",
             sorted([("default", "d1")] * 4 + [("default", "c1")]),
             sorted((s["pool"], s["backend"]) for s in listed))
        cl = held.pop(0)
        cl.send(bytes([0x88, 0x82, 1, 2, 3, 4]) + bytes(a ^ b for a, b in zip(b"\x03\xe8",
                                                                             b"\x01\x02")))
        close_code(cl)
        cl.close()
        c.true("a moved backend's count goes down exactly",
               wait_for(lambda: backends(admin)["d1"]["sessions"] == 3))
    finally:
        for cl in held:
            cl.close()
        lb.stop()


def test_check_names_lines():
    """wsbal -t: a pool key's mistake at its FILE:LINE."""
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
        f.write("[backend:a]\nurl = ws://127.0.0.1:9\npool = chat\n"
                "[pool:chat]\nalgorithm = fastest\nresolve_interval = 1m\n[pool:chat]\n")
    try:
        out = subprocess.run([WSBAL, "-t", "-c", f.name], capture_output=True, text=True,
                             timeout=10)
        lines = out.stderr.strip().split("\n")
        c.eq("wsbal -t exits 1", 1, out.returncode)
        c.true("the bad value at its line", any(line.startswith(f"{f.name}:5: bad value \"fastest"
                                                                "\" for [pool:chat] algorithm")
                                                for line in lines), out.stderr)
        c.true("a process-wide key refused at its line",
               any(line.startswith(f"{f.name}:6: [pool:chat] resolve_interval") for line in lines),
               out.stderr)
        c.true("a duplicate pool at its line", any(line == f"{f.name}:7: duplicate section "
                                                   "[pool:chat] (first at line 4)"
                                                   for line in lines), out.stderr)
    finally:
        os.unlink(f.name)


def main():
    echoes = [Echo("d1"), Echo("d2"), Echo("c1")]
    try:
        return run_tests(c, lambda: test_selection_and_api(echoes), test_failover_stays_in_pool,
                         lambda: test_reload_moves_backend(echoes), test_check_names_lines)
    finally:
        for e in echoes:
            e.stop()


if __name__ == "__main__":
    sys.exit(main())

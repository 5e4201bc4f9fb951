"""Balancing with 2 workers and 3 wsbal-echo backends: every algorithm's spread follows the
weights, round_robin is one rotation across workers, hash keys stick and move only when their
backend goes, backups, max_sessions, and slow start after a backend is added."""
import http.client
import json
import math
import sys
import time

from wsbtest import Checks, Echo, RawClient, Wsbal, free_port, run_tests

c = Checks()


def sections(upstream, backends, admin_port=None):
    """A configuration: [upstream] keys, and backends as (name, url, {key: value})."""
    s = {"upstream": {"pass_headers": "X-Backend-Id", **upstream}}
    if admin_port:
        s["admin"] = {"address": f"127.0.0.1:{admin_port}"}
    for name, url, keys in backends:
        s[f"backend:{name}"] = {"url": url, **keys}
    return s


def open_session(lb, path="/", headers=None):
    """One upgrade; returns (backend id or HTTP status, the open client or None)."""
    cl = RawClient(lb.port)
    cl.request(path, headers)
    status, hdrs, _ = cl.read_head()
    if status != 101:
        cl.close()
        return status, None
    return hdrs.get("x-backend-id"), cl


def sessions(lb, n, held=None, path="/", headers=None):
    """Opens n sessions one after the other; returns their backends in order. Keeps them open
    in held when given, else closes each at once."""
    order = []
    for _ in range(n):
        who, cl = open_session(lb, path, headers)
        order.append(who)
        if cl is not None:
            if held is not None:
                held.append(cl)
            else:
                cl.close()
    return order


def counts(order):
    out = {}
    for who in order:
        out[who] = out.get(who, 0) + 1
    return out


def close_all(held):
    for cl in held:
        cl.close()
    held.clear()


def api(port, method, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, json.loads(body) if body else None


def wait_live(port, want, timeout=10):
    """Waits until the admin API counts want live sessions in all (closes are asynchronous)."""
    deadline = time.monotonic() + timeout
    total = None
    while time.monotonic() < deadline:
        total = sum(b["sessions"] for b in api(port, "GET", "/api/v1/backends")[1]["backends"])
        if total == want:
            return True
        time.sleep(0.05)
    print(f"live sessions: {total}, waited for {want}", flush=True)
    return False


def swrr(weights):
    """One period of nginx's smooth weighted round robin, as names (the reference)."""
    current = {n: 0 for n in weights}
    total = sum(weights.values())
    out = []
    for _ in range(total):
        for n in weights:
            current[n] += weights[n]
        best = max(weights, key=lambda n: (current[n], -list(weights).index(n)))
        current[best] -= total
        out.append(best)
    return out


WEIGHTS = {"e1": 1, "e2": 2, "e3": 3}


def weighted(echoes):
    return [(e.ident, e.url, {"weight": str(WEIGHTS[e.ident])}) for e in echoes]


def test_least_conn(echoes):
    lb = Wsbal([], sections=sections({"slow_start": "0"}, weighted(echoes)))
    held = []
    try:
        # Held sessions: each pick takes the least (live + 1) / weight, which fills 1:2:3 exactly
        # at 60 (the D'Hondt sequence); a tie at the last seats can move one session.
        got = counts(sessions(lb, 60, held))
        print(f"least_conn 1:2:3 over 60 held sessions: {got}", flush=True)
        c.true("least_conn follows the weights (10/20/30, +-1)",
               all(abs(got.get(n, 0) - 10 * w) <= 1 for n, w in WEIGHTS.items()), str(got))
    finally:
        close_all(held)
        lb.stop()


def test_round_robin(echoes):
    ap = free_port()
    lb = Wsbal([], sections=sections({"algorithm": "round_robin", "slow_start": "0"},
                                     weighted(echoes), ap))
    held = []
    try:
        order = sessions(lb, 60, held)
        period = swrr(WEIGHTS)
        print(f"round_robin: {''.join(o[-1] for o in order[:18])}... "
              f"reference period {''.join(p[-1] for p in period)}", flush=True)
        # One ticket counter in the segment: sessions opened one after another through either
        # worker follow the single smooth sequence exactly, whatever worker accepted them.
        c.eq("round_robin across 2 workers is exactly the smooth weighted rotation",
             (period * 10)[:60], order)
        st = api(ap, "GET", "/api/v1/status")[1]
        busy = [wk for wk in st["workers"] if wk["sessions"] > 0]
        c.true("both workers took part in the rotation", len(busy) == 2, str(st["workers"]))
        close_all(held)
        c.true("all sessions closed", wait_live(ap, 0))
        # A disabled backend leaves the rotation; the others keep their 1:3 proportion.
        api(ap, "POST", "/api/v1/backends/e2/disable")
        got = counts(sessions(lb, 40))
        c.eq("without e2 the rotation is e1:e3 = 1:3", {"e1": 10, "e3": 30}, got)
    finally:
        close_all(held)
        lb.stop()


def test_random(echoes):
    lb = Wsbal([], sections=sections({"algorithm": "random", "slow_start": "0"}, weighted(echoes)))
    held = []
    try:
        # Two weighted draws, the less loaded one wins: with held sessions the spread stays
        # close to the weights. 120 sessions: 20/40/60 due; the bound, 6 sessions each, is
        # about 3 standard deviations of a single weighted draw (sqrt(120 * 1/6 * 5/6) = 4.1
        # for e1), which two choices beat by far.
        got = counts(sessions(lb, 120, held))
        print(f"random 1:2:3 over 120 held sessions: {got}", flush=True)
        c.true("random follows the weights (20/40/60, +-6)",
               all(abs(got.get(n, 0) - 20 * w) <= 6 for n, w in WEIGHTS.items()), str(got))
    finally:
        close_all(held)
        lb.stop()


def test_hash(echoes):
    ap = free_port()
    plain = [(e.ident, e.url, {}) for e in echoes]
    lb = Wsbal([], sections=sections({"algorithm": "hash", "hash_key": "header:X-User"}, plain,
                                     ap))
    try:
        users = [f"user-{i}" for i in range(40)]

        def owners():
            """Each user's backend, asked three times on new connections (so both workers)."""
            seen = {}
            for u in users:
                seen[u] = set(sessions(lb, 3, headers={"X-User": u}))
            return seen

        first = owners()
        c.true("the same key always reaches the same backend",
               all(len(v) == 1 for v in first.values()), str(first))
        home = {u: next(iter(v)) for u, v in first.items()}
        spread = counts(home.values())
        print(f"hash: 40 keys over 3 backends: {spread}", flush=True)
        c.true("keys spread over every backend", len(spread) == 3 and min(spread.values()) >= 5,
               str(spread))

        c.eq("disable e2", 200, api(ap, "POST", "/api/v1/backends/e2/disable")[0])
        during = owners()
        moved = [u for u in users if during[u] != {home[u]}]
        c.true("only e2's keys move", all(home[u] == "e2" for u in moved), str(moved))
        c.eq("every e2 key moved, and sticks where it went", sorted(u for u in users if home[u] == "e2"),
             sorted(u for u in moved if len(during[u]) == 1 and "e2" not in during[u]))
        c.eq("enable e2", 200, api(ap, "POST", "/api/v1/backends/e2/enable")[0])
        after = owners()
        c.eq("e2's keys come back to it", {u: {h} for u, h in home.items()}, after)

        # No X-User header: the client's address is the key, so these all stick together.
        c.eq("a missing key falls back to the client address", 1, len(set(sessions(lb, 6))))

        c.eq("reload to hash_key = query:room", True, lb.reload(
            [], sections({"algorithm": "hash", "hash_key": "query:room"}, plain, ap))[0]
            .startswith("reloaded"))
        rooms = {r: set(sessions(lb, 3, path=f"/chat?x=1&room={r}")) for r in range(12)}
        c.true("query:room sticks per room", all(len(v) == 1 for v in rooms.values()), str(rooms))
        c.true("rooms spread over backends", len(set().union(*rooms.values())) >= 2, str(rooms))
    finally:
        lb.stop()


def test_backup(echoes):
    ap = free_port()
    e1, e2, e3 = echoes
    lb = Wsbal([], sections=sections({"slow_start": "0"},
                                     [("e1", e1.url, {}), ("e2", e2.url, {}),
                                      ("e3", e3.url, {"backup": "on"})], ap))
    try:
        c.true("the backup takes nothing while a primary is available",
               "e3" not in sessions(lb, 20), "")
        api(ap, "POST", "/api/v1/backends/e1/disable")
        c.eq("one primary left: it takes everything", {"e2": 6}, counts(sessions(lb, 6)))
        api(ap, "POST", "/api/v1/backends/e2/disable")
        c.eq("no primary left: the backup takes over", {"e3": 6}, counts(sessions(lb, 6)))
        api(ap, "POST", "/api/v1/backends/e1/enable")
        c.eq("a primary back: the backup is left alone", {"e1": 6}, counts(sessions(lb, 6)))
    finally:
        lb.stop()


def test_max_sessions(echoes):
    e1, e2, _ = echoes
    lb = Wsbal([], sections=sections({"slow_start": "0"},
                                     [("e1", e1.url, {"max_sessions": "2"}),
                                      ("e2", e2.url, {"max_sessions": "1"})]))
    held = []
    try:
        c.eq("three sessions fill both backends", {"e1": 2, "e2": 1},
             counts(sessions(lb, 3, held)))
        c.eq("full backends: 503", [503, 503], sessions(lb, 2))
        held.pop(0).close()  # an e1 session (least_conn put the first one on e1 or e2)
        deadline = time.monotonic() + 10
        got = 503
        while got == 503 and time.monotonic() < deadline:
            got, cl = open_session(lb)
            if cl is not None:
                held.append(cl)
            else:
                time.sleep(0.05)  # the close reaches the worker asynchronously
        c.true("a freed place is taken again", got in ("e1", "e2"), str(got))
        c.eq("and then it is full again", [503], sessions(lb, 1))
    finally:
        close_all(held)
        lb.stop()


def test_slow_start(echoes):
    e1, e2, e3 = echoes
    slow = 4.0
    up = {"slow_start": f"{int(slow)}s"}
    lb = Wsbal([], sections=sections(up, [("e1", e1.url, {}), ("e2", e2.url, {})]))
    held = []
    try:
        c.eq("a pool with 10 sessions each", {"e1": 10, "e2": 10}, counts(sessions(lb, 20, held)))
        t0 = time.monotonic()
        verdict, _ = lb.reload([], sections(up, [("e1", e1.url, {}), ("e2", e2.url, {}),
                                                 ("e3", e3.url, {})]))
        c.true("reload adding e3", verdict and verdict.startswith("reloaded"), str(verdict))
        first = counts(sessions(lb, 10, held))
        elapsed = time.monotonic() - t0
        print(f"slow start: 10 sessions within {elapsed:.2f} s of adding e3: {first}", flush=True)
        # Without slow start all 10 would go to e3 (0 live against 10). Ramping, e3 weighs
        # elapsed/slow_start at most, and least_conn gives it a session only while
        # (e3 + 1) / that < (others + 1), others being at most 15: this bounds its share.
        bound = math.ceil(min(1.0, elapsed / slow) * 16)
        c.true("a new backend does not take every new session at once",
               first.get("e3", 0) < 10 and first.get("e3", 0) <= bound,
               f"{first}, bound {bound} after {elapsed:.2f} s")
        while time.monotonic() - t0 < slow + 0.5:
            time.sleep(0.1)  # the ramp's end is a time, nothing to wait on but the clock
        later = counts(sessions(lb, 10, held))
        print(f"slow start: 10 sessions after the ramp: {later}", flush=True)
        c.eq("after slow_start, least_conn catches the new backend up", {"e3": 10}, later)
    finally:
        close_all(held)
        lb.stop()


def main():
    echoes = [Echo("e1"), Echo("e2"), Echo("e3")]
    try:
        return run_tests(c, lambda: test_least_conn(echoes), lambda: test_round_robin(echoes),
                         lambda: test_random(echoes), lambda: test_hash(echoes),
                         lambda: test_backup(echoes), lambda: test_max_sessions(echoes),
                         lambda: test_slow_start(echoes))
    finally:
        for e in echoes:
            e.stop()


if __name__ == "__main__":
    sys.exit(main())

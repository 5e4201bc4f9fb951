"""DNS discovery: a backend host with several addresses becomes one backend per address (NAME#ADDR),
looked up again every resolve_interval; addresses that come and go are added and removed like a
reload would; a failed lookup keeps the addresses; the admin API works on the expanded names.

The name svc.wsbal.test is served by the real resolver (getaddrinfo through nss "files"): wsbal runs
in a mount namespace of its own (unshare -m, or -Urm when not root) where a test-owned file is
bind-mounted over /etc/hosts, and nsswitch.conf says "hosts: files" so a missing name fails at once
instead of asking a DNS server. Rewriting that file in place is how an address appears or goes,
exactly as a Kubernetes headless Service's answer changes. Nothing of the machine is modified.
The test is skipped (exit 77) where no mount namespace can be made."""
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from wsbtest import (ECHO, OP_TEXT, T, Checks, Process, RawClient, Wsbal, frame, free_port, run_tests,
                     wait_for)

c = Checks()
NAME = "svc.wsbal.test"


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def api(port, method, path, body=None):
    status, data = request(port, method, path, body)
    return status, json.loads(data)


def metric(port, name):
    m = re.search(rf"^{name} (\d+)$", request(port, "GET", "/metrics")[1].decode(), re.M)
    return int(m.group(1)) if m else None


def names(port):
    return sorted(b["name"] for b in api(port, "GET", "/api/v1/backends")[1]["backends"])


def write_hosts(path, addrs):
    # In place (same inode): the bind mount shows the file, not a name that could be replaced.
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost\n" + "".join(f"{a} {NAME}\n" for a in addrs))


def namespace_wrapper(hosts, nsswitch):
    """The command prefix that runs a program with hosts and nsswitch mounted over /etc's, or
    None when this machine cannot make a mount namespace."""
    script = ('mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/nsswitch.conf && '
              'shift && exec "$@"')
    for flags in (["-m"], ["-Urm"]):
        argv = ["unshare", *flags, "sh", "-c", script, hosts, nsswitch]
        try:
            out = subprocess.run(argv + ["getent", "ahostsv4", NAME], capture_output=True,
                                 timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and b"127.0.0.1" in out.stdout:
            return argv
    return None


def echo(host, port, ident):
    p = Process([ECHO, "--host", host, "--port", str(port), "--id", ident])
    if p.wait_line(r"listening on") is None:
        p.stop()
        raise RuntimeError(f"wsbal-echo on {host}:{port} did not start: {p.output()}")
    return p


def session(port):
    """A held session; returns (client, the X-Backend-Id of the echo it reached)."""
    cl, hdrs = RawClient.upgraded(port)
    return cl, hdrs.get("x-backend-id")


def echoes(cl, text):
    try:
        cl.send(frame(OP_TEXT, text.encode()))
        return cl.read_frame()[2] == text.encode()
    except Exception:  # closed, or no answer in time: not echoed
        return False


tmp = tempfile.mkdtemp(prefix="wsbal-discovery-")
HOSTS = os.path.join(tmp, "hosts")
NSSWITCH = os.path.join(tmp, "nsswitch.conf")
with open(NSSWITCH, "w") as f:
    f.write("hosts: files\n")
write_hosts(HOSTS, ["127.0.0.1", "127.0.0.2", "::1"])
WRAPPER = namespace_wrapper(HOSTS, NSSWITCH)


def test_start_fails_on_unresolvable_name():
    lb = Wsbal([("web", "ws://nowhere.wsbal.test:9")], expect_start=False, wrapper=WRAPPER)
    rc = lb.stop(0)
    c.eq("a name that does not resolve stops the start-up (exit 3)", 3, rc)
    c.true("its error names FILE:LINE, the backend and the host",
           re.search(r"\.ini:\d+: backend web: cannot resolve nowhere\.wsbal\.test",
                     lb.output()) is not None, lb.output())


def test_discovery():
    port = free_port()
    servers = {"v4a": echo("127.0.0.1", port, "v4a"), "v4b": echo("127.0.0.2", port, "v4b"),
               "v6": echo("::1", port, "v6")}
    ap = free_port()
    sections = {"admin": {"address": f"127.0.0.1:{ap}"},
                "upstream": {"resolve_interval": "1s", "pass_headers": "X-Backend-Id"}}
    backends = [("web", f"ws://{NAME}:{port}"), ("lit", f"ws://127.0.0.1:{port}")]
    lb = Wsbal(backends, sections=sections, wrapper=WRAPPER)
    held = []
    try:
        expanded = ["lit", "web#127.0.0.1", "web#127.0.0.2", "web#::1"]
        c.eq("one backend per address, NAME#ADDR; a literal IP keeps its name", expanded,
             names(ap))
        c.true("the start-up lookup is logged",
               lb.wait_line(rf"backend web: {re.escape(NAME)} is 127\.0\.0\.1 127\.0\.0\.2 ::1")
               is not None, lb.output())
        one = api(ap, "GET", "/api/v1/backends/web%23::1")[1]
        c.eq("an address's backend has its section's URL", f"ws://{NAME}:{port}", one["url"])

        # Only the discovered addresses take sessions: disable the literal one.
        api(ap, "POST", "/api/v1/backends/lit/disable")
        for _ in range(24):
            held.append(session(lb.port))
        counts = {}
        for _, ident in held:
            counts[ident] = counts.get(ident, 0) + 1
        c.true("sessions spread over the three addresses",
               all(counts.get(i, 0) >= 4 for i in ("v4a", "v4b", "v6")), str(counts))

        # Re-resolution with an unchanged answer: lookups counted, no new generation.
        gen = api(ap, "GET", "/api/v1/status")[1]["generation"]
        c.true("lookups run every resolve_interval",
               wait_for(lambda: (metric(ap, "wsbal_resolves_total") or 0) >= 3), lb.output())
        c.eq("an unchanged answer publishes nothing", gen,
             api(ap, "GET", "/api/v1/status")[1]["generation"])

        # The admin API on expanded names and on the section.
        st, b = api(ap, "POST", "/api/v1/backends/web%23::1/disable")
        c.eq("disable one address", (200, False), (st, b.get("enabled")))
        cl, ident = session(lb.port)
        cl.close()
        c.true("a disabled address takes no new session", ident in ("v4a", "v4b"), str(ident))
        c.true("a change to one address survives the next lookups",
               wait_for(lambda: (metric(ap, "wsbal_resolves_total") or 0) >= 5) and
               api(ap, "GET", "/api/v1/backends/web%23::1")[1]["enabled"] is False)
        st, b = api(ap, "GET", "/api/v1/backends/web")
        c.eq("GET of the section lists its addresses", (200, expanded[1:]),
             (st, [x["name"] for x in b.get("backends", [])]))
        st, b = api(ap, "PATCH", "/api/v1/backends/web", json.dumps({"weight": 3, "enabled": True}))
        c.eq("PATCH of the section reaches every address (and undoes the disable)",
             (200, [(3, True)] * 3), (st, [(x["weight"], x["enabled"]) for x in b["backends"]]))
        st, b = api(ap, "DELETE", "/api/v1/backends/web%23127.0.0.2")
        c.eq("an address cannot be deleted (DNS would bring it back)", 409, st)

        # An address disappears: removed like a reload removes a backend.
        v6_sessions = [cl for cl, ident in held if ident == "v6"]
        with lb.cond:
            mark = len(lb.lines)
        write_hosts(HOSTS, ["127.0.0.1", "127.0.0.2"])
        c.true("the change is logged with what went",
               lb.wait_line(r"discovery: backend web: .* is now 127\.0\.0\.1 127\.0\.0\.2 "
                            r"\(-::1\)", start=mark) is not None, lb.output())
        c.true("the gone address's backend leaves the list",
               wait_for(lambda: names(ap) == ["lit", "web#127.0.0.1", "web#127.0.0.2"]),
               str(names(ap)))
        c.true("its live sessions keep running on it",
               all(echoes(cl, "still here") for cl in v6_sessions), f"{len(v6_sessions)} sessions")
        c.eq("the remaining addresses keep the admin's weight", [3, 3],
             [x["weight"] for x in api(ap, "GET", "/api/v1/backends/web")[1]["backends"]])
        # Its server goes too: with failover on, those sessions move to the remaining addresses.
        servers.pop("v6").stop()
        c.true("then they fail over and keep echoing",
               all(echoes(cl, "moved") for cl in v6_sessions), lb.output()[-2000:])
        new = [session(lb.port) for _ in range(6)]
        c.true("new sessions go to the remaining addresses only",
               all(ident in ("v4a", "v4b") for _, ident in new), str([i for _, i in new]))
        held += new

        # A failed lookup keeps the addresses and is counted.
        errors = metric(ap, "wsbal_resolve_errors_total")
        write_hosts(HOSTS, [])
        c.true("a failed lookup is counted",
               wait_for(lambda: (metric(ap, "wsbal_resolve_errors_total") or 0) > errors),
               lb.output()[-2000:])
        c.true("and logged as a warning", lb.wait_line(r"cannot resolve .*keeping its 2 addresses")
               is not None)
        c.eq("the addresses stay", ["lit", "web#127.0.0.1", "web#127.0.0.2"], names(ap))

        # An address appears: added like a reload adds a backend.
        servers["v6"] = echo("::1", port, "v6")
        write_hosts(HOSTS, ["127.0.0.1", "127.0.0.2", "::1"])
        c.true("a new address becomes a backend",
               wait_for(lambda: names(ap) == expanded), str(names(ap)))
        c.eq("it starts from its section's settings", 3,
             api(ap, "GET", "/api/v1/backends/web%23::1")[1]["weight"])

        # SIGHUP with the same file: the same backends, in the same slots.
        verdict, since = lb.reload(backends, sections)
        c.true("reload works", verdict is not None and verdict.startswith("reloaded"),
               str(verdict))
        c.eq("it logs the runtime changes it discards",
             ["backend lit: enabled (disabled through the API)",
              "backend web: weight 1 (3 through the API)"],
             sorted(x.split("discards a runtime change: ", 1)[1] for x in since
                    if "discards a runtime change" in x))
        c.eq("after the reload, the same expanded backends", expanded, names(ap))
        c.eq("a reload restores the file's weight", [1, 1, 1],
             [x["weight"] for x in api(ap, "GET", "/api/v1/backends/web")[1]["backends"]])

        # Drain one address: it is disabled and its sessions move to the other addresses.
        c.true("the address to drain holds sessions",
               api(ap, "GET", "/api/v1/backends/web%23127.0.0.2")[1]["sessions"] > 0)
        st, b = api(ap, "POST", "/api/v1/backends/web%23127.0.0.2/drain")
        c.eq("drain one address", (202, "draining"), (st, b.get("status")))
        c.true("its sessions leave it",
               wait_for(lambda: api(ap, "GET", "/api/v1/backends/web%23127.0.0.2")[1]["sessions"]
                        == 0), lb.output()[-2000:])
        c.true("and keep echoing", all(echoes(cl, "drained") for cl, _ in held))
        c.eq("only that address is disabled", [True, False, True],
             [x["enabled"] for x in api(ap, "GET", "/api/v1/backends/web")[1]["backends"]])

        # A reload discards the change to that one address, and says so.
        st, b = api(ap, "POST", "/api/v1/reload")
        c.eq("a reload lists the address's change among what it discards",
             (200, ["backend web#127.0.0.2: enabled (disabled through the API)"]),
             (st, b.get("discarded")))
        c.eq("and the address takes sessions again", [True, True, True],
             [x["enabled"] for x in api(ap, "GET", "/api/v1/backends/web")[1]["backends"]])

        # Drain the section: every address at once, with the answer of one backend's drain.
        st, b = api(ap, "POST", "/api/v1/backends/web/drain")
        c.eq("drain the section: 202, naming each of its addresses",
             (202, "draining", expanded[1:]), (st, b.get("status"), sorted(b.get("backends", []))))
        c.eq("every address of the section is disabled", [False] * 3,
             [x["enabled"] for x in api(ap, "GET", "/api/v1/backends/web")[1]["backends"]])
        c.true("their sessions leave them",
               wait_for(lambda: all(x["sessions"] == 0 for x in
                                    api(ap, "GET", "/api/v1/backends/web")[1]["backends"])),
               lb.output()[-2000:])
        c.true("and keep echoing on the other backend",
               all(echoes(cl, "section drained") for cl, _ in held))

        st, b = api(ap, "DELETE", "/api/v1/backends/web?sessions=keep")
        c.eq("DELETE of the section removes every address", (200, ["lit"]),
             (st, names(ap)))
    finally:
        for cl, _ in held:
            cl.close()
        rc = lb.stop()
        c.eq("wsbal exits cleanly", 0, rc)
        for s in servers.values():
            s.stop()


if __name__ == "__main__":
    if WRAPPER is None:
        print("SKIP: no mount namespace (unshare -m or -Urm) for a private /etc/hosts")
        sys.exit(77)
    sys.exit(run_tests(c, test_start_fails_on_unresolvable_name, test_discovery))

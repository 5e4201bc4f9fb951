"""Backends changed at run time (issue 12): a removed backend's slot is not handed to a backend
added later while its sessions live; POST /api/v1/backends looks a host name up without blocking
the master; a reload says which runtime changes it discards.

The slow resolver is real: wsbal runs in a mount namespace of its own (unshare -m) where
/etc/resolv.conf names a DNS server this test runs on a loopback address, port 53, and
/etc/nsswitch.conf says "hosts: files dns". The server holds every query until the test releases
it, so a lookup takes exactly as long as the test wants. Those checks are skipped where no mount
namespace can be made or port 53 cannot be bound (not root)."""
import http.client
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from wsbtest import (OP_CLOSE, OP_TEXT, T, Checks, Echo, RawClient, Wsbal, frame, free_port, run_tests,
                     wait_for)

c = Checks()


def request(port, method, path, body=None, timeout=T):
    """One request; returns (status, parsed JSON body or None), or (None, error) on a timeout."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"} if body is not None else {})
        r = conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)
    except (OSError, http.client.HTTPException) as e:  # timeouts, resets, closes
        return None, repr(e)
    finally:
        conn.close()


def session(port):
    return RawClient.upgraded(port)[0]


def echoes(cl, text):
    """True when text comes back; False on a close frame, a closed connection or no answer."""
    try:
        cl.send(frame(OP_TEXT, text.encode()))
        _, op, payload = cl.read_frame(timeout=5)
        return op == OP_TEXT and payload == text.encode()
    except Exception:
        return False


def backend(ap, name):
    return request(ap, "GET", f"/api/v1/backends/{name}")


# ---- item 6: a removed backend's slot and the backends added after it ----

def test_removed_slot_not_inherited():
    keep, old, new = Echo("keep"), Echo("old"), Echo("new")
    ap = free_port()
    lb = Wsbal([("keep", keep.url), ("old", old.url)], workers=2,
               sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    held = []
    try:
        request(ap, "POST", "/api/v1/backends/keep/disable")
        held = [session(lb.port) for _ in range(3)]
        c.true("three sessions echo on the backend to remove", all(echoes(x, "a") for x in held))
        c.eq("they are counted on it", 3, backend(ap, "old")[1]["sessions"])
        st, _ = request(ap, "DELETE", "/api/v1/backends/old?sessions=keep")
        c.eq("the backend holding them is deleted, its sessions kept", 200, st)
        # Two more generations: the table before the next one no longer knows "old" at all.
        c.eq("another change publishes a generation", 200,
             request(ap, "POST", "/api/v1/backends/keep/enable")[0])
        c.eq("and another", 200, request(ap, "PATCH", "/api/v1/backends/keep",
                                          json.dumps({"weight": 2}))[0])
        for name in ("new", "new2"):
            st, b = request(ap, "POST", "/api/v1/backends",
                            json.dumps({"name": name, "url": new.url}))
            c.eq(f"backend {name} added", 201, st)
            c.eq(f"{name} starts with no session (not the removed backend's)", 0,
                 b["sessions"] if isinstance(b, dict) else b)
        metrics = http.client.HTTPConnection("127.0.0.1", ap, timeout=T)
        metrics.request("GET", "/metrics")
        text = metrics.getresponse().read().decode()
        metrics.close()
        c.true("wsbal_sessions shows no session on them",
               'wsbal_sessions{backend="new"} 0' in text and
               'wsbal_sessions{backend="new2"} 0' in text,
               [x for x in text.split("\n") if x.startswith("wsbal_sessions{")])
        for name in ("new", "new2"):
            st, _ = request(ap, "DELETE", f"/api/v1/backends/{name}?sessions=close")
            c.eq(f"DELETE {name}?sessions=close", 200, st)
        # Every worker has handled the close commands once it has answered a session list
        # (one control socket per worker, read in order).
        st, lst = request(ap, "GET", "/api/v1/sessions")
        c.eq("the removed backend's sessions are still listed", (200, 3, False),
             (st, lst["total"] if st == 200 else lst, lst.get("partial") if st == 200 else None))
        c.true("and still echo: closing the new backends' sessions did not close them",
               all(echoes(x, "still") for x in held))
        st, s = request(ap, "GET", "/api/v1/status")
        c.eq("three live sessions in the totals", 3, s["totals"]["sessions"])
        # The name coming back while its sessions live gets them back (its slot was held).
        st, b = request(ap, "POST", "/api/v1/backends", json.dumps({"name": "old", "url": old.url}))
        c.eq("the removed name, added again, has its sessions back", (201, 3),
             (st, b["sessions"] if st == 201 else b))
    finally:
        for x in held:
            x.close()
        c.eq("wsbal exits cleanly", 0, lb.stop())
        for e in (keep, old, new):
            e.stop()


def test_reused_slot_starts_from_zero():
    """Once a removed backend's last session is gone its slot is free; the backend that gets it
    starts with no history: totals, failovers and the breaker judged the old one."""
    keep, a, b = Echo("keep"), Echo("a"), Echo("b")
    ap = free_port()
    lb = Wsbal([("keep", keep.url), ("a", a.url)], workers=1,
               sections={"admin": {"address": f"127.0.0.1:{ap}"},
                         "upstream": {"breaker_threshold": "2", "breaker_cooldown": "1h"}})
    try:
        request(ap, "POST", "/api/v1/backends/keep/disable")
        for _ in range(2):
            cl = session(lb.port)
            echoes(cl, "x")
            cl.close()
        a.stop()  # now a refuses: two failed upgrades open its breaker
        for _ in range(2):
            cl = RawClient(lb.port)
            cl.request("/")
            cl.read_head()
            cl.close()
        st, info = backend(ap, "a")
        c.eq("the old backend has a history and an open breaker", (2, "open"),
             (info["sessions_total"], info["breaker"]))
        c.eq("and counted the messages relayed each way, one each per echo (client frames are "
             "masked: 4 bytes more)", (2, 2, 2 * 7, 2 * 3),
             (info.get("messages_in"), info.get("messages_out"), info.get("bytes_in"),
              info.get("bytes_out")))
        c.true("and no live session", wait_for(lambda: backend(ap, "a")[1]["sessions"] == 0))
        request(ap, "DELETE", "/api/v1/backends/a")
        request(ap, "POST", "/api/v1/backends/keep/enable")
        st, info = request(ap, "POST", "/api/v1/backends", json.dumps({"name": "b", "url": b.url}))
        c.eq("the backend added in its slot starts from zero",
             (201, 0, 0, 0, "closed", 0, 0),
             (st, info.get("sessions_total"), info.get("failovers"), info.get("failures"),
              info.get("breaker"), info.get("messages_in"), info.get("bytes_out")))
        request(ap, "POST", "/api/v1/backends/keep/disable")
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("and takes sessions (no breaker of the old backend in the way)", 101, cl.read_head()[0])
        c.true("it echoes", echoes(cl, "b"))
        cl.close()

        def metrics():
            conn = http.client.HTTPConnection("127.0.0.1", ap, timeout=T)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
            return [x for x in text.split("\n") if x.startswith(
                ('wsbal_sessions_total{backend="b"}', 'wsbal_backend_connect_seconds_count{backend="b"}'))]
        want = ['wsbal_sessions_total{backend="b"} 1',
                'wsbal_backend_connect_seconds_count{backend="b"} 1']
        c.true("its metrics count from its own start (its one session)",
               wait_for(lambda: metrics() == want), metrics())
    finally:
        c.eq("wsbal exits cleanly", 0, lb.stop())
        keep.stop()
        b.stop()


# ---- item 18: what a reload discards ----

def test_reload_discards():
    e1, e2 = Echo("e1"), Echo("e2")
    ap = free_port()
    sections = {"admin": {"address": f"127.0.0.1:{ap}"}}
    backends = [("e1", e1.url), ("e2", e2.url)]
    lb = Wsbal(backends, workers=1, sections=sections)
    try:
        st, b = request(ap, "POST", "/api/v1/reload")
        c.eq("a reload with no runtime change discards nothing", (200, []),
             (st, b.get("discarded")))
        request(ap, "POST", "/api/v1/backends/e1/disable")
        request(ap, "PATCH", "/api/v1/backends/e2", json.dumps({"weight": 5}))
        request(ap, "POST", "/api/v1/backends", json.dumps({"name": "x", "url": e2.url}))
        with lb.cond:
            mark = len(lb.lines)
        st, b = request(ap, "POST", "/api/v1/reload")
        want = ["backend e1: enabled (disabled through the API)",
                "backend e2: weight 1 (5 through the API)",
                "backend x: removed (added through the API)"]
        c.eq("the reload's answer lists what it discarded", (200, want),
             (st, sorted(b.get("discarded", []))))
        for line in want:
            c.true(f"and logs it: {line}",
                   lb.wait_line("reload: discards a runtime change: " + line.replace("(", r"\(")
                                .replace(")", r"\)"), start=mark) is not None, lb.output()[-1500:])
        c.eq("the file's word holds after it (SPEC: runtime changes last until a reload)",
             (True, 1, 404), (backend(ap, "e1")[1]["enabled"], backend(ap, "e2")[1]["weight"],
                              backend(ap, "x")[0]))

        # A runtime change the file now agrees with is not discarded.
        request(ap, "POST", "/api/v1/backends/e1/disable")
        lb.write_config(backends, sections)
        with open(lb.config) as f:
            text = f.read().replace(f"url = {e1.url}\n", f"url = {e1.url}\nenabled = off\n")
        verdict, since = lb.reload(None, raw=text)
        c.true("SIGHUP with the file disabling e1 too", verdict and verdict.startswith("reloaded"),
               str(verdict))
        c.eq("discards nothing", [], [x for x in since if "discards" in x])
        c.eq("e1 stays disabled", False, backend(ap, "e1")[1]["enabled"])

        # A backend deleted through the API comes back with the file, and says so (SIGHUP too).
        request(ap, "DELETE", "/api/v1/backends/e2")
        verdict, since = lb.reload(None, raw=text)
        c.eq("a deleted backend back from the file is logged",
             ["reload: discards a runtime change: backend e2: back (deleted through the API)"],
             [x.split(": ", 1)[1] for x in since if "discards" in x])
        c.eq("and back", 200, backend(ap, "e2")[0])
    finally:
        c.eq("wsbal exits cleanly", 0, lb.stop())
        e1.stop()
        e2.stop()


# ---- item 17: POST /api/v1/backends does not block the master while a host is looked up ----

class HeldDns:
    """A DNS server on addr:53 (UDP) for the names given (name -> IPv4 address): A queries get the
    address, AAAA ones an empty answer, other names NXDOMAIN. While held, queries wait unanswered
    until release()."""

    def __init__(self, addr, names):
        self.names = names
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 53))
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.holding = True
        self.held = []
        self.asked = []  # every name asked, in order
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.asked.append(self._question(data)[0])
                if self.holding:
                    self.held.append((data, peer))
                    continue
            self._answer(data, peer)

    @staticmethod
    def _question(data):
        pos, labels = 12, []
        while data[pos]:
            labels.append(data[pos + 1:pos + 1 + data[pos]].decode())
            pos += 1 + data[pos]
        qtype = struct.unpack("!H", data[pos + 1:pos + 3])[0]
        return ".".join(labels).lower(), qtype, data[12:pos + 5]

    def _answer(self, data, peer):
        name, qtype, question = self._question(data)
        addr, answers = self.names.get(name), b""
        if addr is not None and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(addr)
        flags = 0x8180 if addr is not None else 0x8183  # NOERROR or NXDOMAIN, RD and RA
        reply = data[:2] + struct.pack("!HHHHH", flags, 1, 1 if answers else 0, 0, 0) + question
        self.sock.sendto(reply + answers, peer)

    def hold(self):
        with self.lock:
            self.holding = True

    def release(self):
        with self.lock:
            self.holding = False
            held, self.held = self.held, []
        for data, peer in held:
            self._answer(data, peer)

    def wait_asked(self, name, timeout=T):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if name in self.asked:
                    return True
            time.sleep(0.02)
        return False

    def close(self):
        self.running = False
        self.release()
        self.sock.close()
        self.thread.join(2)


def dns_setup():
    """(HeldDns, wrapper) or None where a private resolv.conf or port 53 is not possible."""
    tmp = tempfile.mkdtemp(prefix="wsbal-admin-dns-")
    names = {"slow.wsbal.test": "127.0.0.1", "gone.wsbal.test": "127.0.0.1"}
    names.update({f"a{i}.wsbal.test": "127.0.0.1" for i in range(5)})
    names.update({f"{n}.wsbal.test": "127.0.0.1" for n in ("late", "later", "latest")})
    dns = None
    for _ in range(5):
        addr = f"127.83.{random.randint(0, 255)}.{random.randint(2, 254)}"
        try:
            dns = HeldDns(addr, names)
            break
        except OSError:
            continue
    if dns is None:
        return None
    resolv, nss = os.path.join(tmp, "resolv.conf"), os.path.join(tmp, "nsswitch.conf")
    with open(resolv, "w") as f:
        f.write(f"nameserver {addr}\noptions timeout:20 attempts:1\n")
    with open(nss, "w") as f:
        f.write("hosts: files dns\n")
    script = ('mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/nsswitch.conf && '
              'shift && exec "$@"')
    argv = ["unshare", "-m", "sh", "-c", script, resolv, nss]
    dns.release()
    try:
        out = subprocess.run(argv + ["getent", "ahostsv4", "slow.wsbal.test"], capture_output=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        out = None
    dns.hold()
    dns.asked.clear()
    if out is None or out.returncode != 0 or b"127.0.0.1" not in out.stdout:
        dns.close()
        return None
    return dns, argv


def post_in_thread(ap, body, results, key):
    def run():
        results[key] = request(ap, "POST", "/api/v1/backends", json.dumps(body), timeout=30)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_add_resolves_without_blocking():
    setup = dns_setup()
    if setup is None:
        print("SKIP test_add_resolves_without_blocking: no mount namespace or port 53 here")
        return
    dns, wrapper = setup
    e1, e2 = Echo("e1"), Echo("e2")
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], workers=1, sections={"admin": {"address": f"127.0.0.1:{ap}"}},
               wrapper=wrapper)
    results, threads = {}, []
    try:
        dns.hold()
        threads.append(post_in_thread(ap, {"name": "slow", "url": f"ws://slow.wsbal.test:{e2.port}"},
                                      results, "slow"))
        c.true("the add waits for its lookup",
               lb.wait_line(r"admin: backend slow: looking slow\.wsbal\.test up") is not None,
               lb.output()[-1000:])
        c.true("the master asks the DNS server", dns.wait_asked("slow.wsbal.test"))
        # The lookup is held: the master must go on answering everything else meanwhile.
        took = []
        for _ in range(3):
            t0 = time.monotonic()
            st, b = request(ap, "GET", "/healthz", timeout=3)
            took.append(time.monotonic() - t0)
            c.eq("/healthz answers while a POST waits for DNS", 200, st)
        c.true("each within half a second", max(took) < 0.5, str(took))
        c.eq("the backend list answers too, without the backend being added", (200, ["e1"]),
             (lambda r: (r[0], [x["name"] for x in r[1]["backends"]] if r[0] == 200 else r[1]))(
                 request(ap, "GET", "/api/v1/backends", timeout=3)))
        st, b = request(ap, "POST", "/api/v1/backends",
                        json.dumps({"name": "slow", "url": e2.url}), timeout=3)
        c.eq("the same name again while it is being added: 409", 409, st)
        c.true("the POST is still waiting", "slow" not in results, str(results))
        dns.release()
        threads[0].join(T)
        st, b = results.get("slow", (None, None))
        c.eq("once the answer comes, the POST is answered 201 with the backend",
             (201, "slow", f"ws://slow.wsbal.test:{e2.port}"),
             (st, b.get("name") if isinstance(b, dict) else b,
              b.get("url") if isinstance(b, dict) else None))
        request(ap, "POST", "/api/v1/backends/e1/disable")
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("and sessions reach it", 101, cl.read_head()[0])
        cl.close()

        # A name that does not exist: 422 naming it, after the lookup.
        dns.hold()
        t = post_in_thread(ap, {"name": "missing", "url": "ws://missing.wsbal.test:9"}, results,
                           "missing")
        c.true("a missing name is asked too", dns.wait_asked("missing.wsbal.test"))
        c.eq("/healthz meanwhile", 200, request(ap, "GET", "/healthz", timeout=3)[0])
        dns.release()
        t.join(T)
        st, b = results.get("missing", (None, None))
        c.true("an unknown name is 422 naming the host",
               st == 422 and "cannot resolve missing.wsbal.test" in b.get("error", ""), str((st, b)))

        # The client goes away while its lookup runs: the add goes on, nothing uses the request.
        dns.hold()
        raw = socket.create_connection(("127.0.0.1", ap), timeout=T)
        body = json.dumps({"name": "gone", "url": f"ws://gone.wsbal.test:{e2.port}"}).encode()
        raw.sendall(b"POST /api/v1/backends HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body))
        c.true("its lookup starts", dns.wait_asked("gone.wsbal.test"))
        raw.close()
        with lb.cond:
            mark = len(lb.lines)
        dns.release()
        c.true("the backend is added without anyone to answer",
               lb.wait_line(r"admin 127\.0\.0\.1:\d+: backend gone added", start=mark) is not None,
               lb.output()[-1500:])
        c.eq("and the master goes on", 200, request(ap, "GET", "/healthz", timeout=3)[0])

        # At most four adds wait for DNS at once (libuv runs two lookups and queues the rest):
        # the fifth is refused at once rather than queued behind them.
        dns.hold()
        with lb.cond:
            mark = len(lb.lines)
        waiting = []
        for i in range(4):
            waiting.append(post_in_thread(
                ap, {"name": f"a{i}", "url": f"ws://a{i}.wsbal.test:{e2.port}"}, results, f"a{i}"))
            c.true(f"add a{i} waits for its lookup",
                   lb.wait_line(rf"admin: backend a{i}: looking a{i}\.wsbal\.test up", start=mark)
                   is not None, lb.output()[-1000:])
        c.true("two lookups run", dns.wait_asked("a0.wsbal.test") and dns.wait_asked("a1.wsbal.test"),
               str(dns.asked))
        st, b = request(ap, "POST", "/api/v1/backends",
                        json.dumps({"name": "a4", "url": f"ws://a4.wsbal.test:{e2.port}"}),
                        timeout=3)
        c.eq("a fifth is 503 at once", 503, st)
        dns.release()
        for t in waiting:
            t.join(T)
        c.eq("the four are added", [201] * 4, [results.get(f"a{i}", (None,))[0] for i in range(4)])

        # A stop while lookups wait: the running one cannot be taken back, so the master waits
        # for it (the resolver's timeout bounds that), answers nobody, and exits cleanly.
        dns.hold()
        with lb.cond:
            mark = len(lb.lines)
        for name in ("late", "later", "latest"):
            waiting.append(post_in_thread(
                ap, {"name": name, "url": f"ws://{name}.wsbal.test:{e2.port}"}, results, name))
            c.true(f"add {name} waits",
                   lb.wait_line(rf"admin: backend {name}: looking", start=mark) is not None)
        lb.proc.send_signal(15)
        c.true("the master stops", lb.wait_line(r"stopping", start=mark) is not None)
        time.sleep(0.3)  # the stop goes on while the lookups are held
        dns.release()
        c.eq("then exits cleanly once the lookups end", 0, lb.stop(0))
        for t in waiting:
            t.join(T)
        c.true("no add was answered 201 after the stop",
               all(results.get(n, (None,))[0] != 201 for n in ("late", "later", "latest")),
               str({n: results.get(n) for n in ("late", "later", "latest")}))
    finally:
        dns.release()
        for t in threads:
            t.join(1)
        c.eq("wsbal exits cleanly", 0, lb.stop())
        dns.close()
        e1.stop()
        e2.stop()


if __name__ == "__main__":
    sys.exit(run_tests(c, test_removed_slot_not_inherited, test_reused_slot_starts_from_zero,
                       test_reload_discards,
                       test_add_resolves_without_blocking))

"""TLS: wss listeners and wss backends, with certificates made by the openssl CLI at test time.

Real processes on 127.0.0.1: wsbal, wsbal-echo, python3-websockets backends over ssl
(peer_backend.py --tls-cert), python3-websockets and ssl-wrapped raw clients verifying against
the test CA. Every wait has a deadline.
"""
import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
import warnings

import websockets

from wsbtest import (OP_TEXT, T, Checks, Echo, Peer, RawClient, Wsbal, frame, free_port, run,
                     run_tests, wait_for)

c = Checks()
TMP = tempfile.mkdtemp(prefix="wsbal-tls-")


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def path(name):
    return os.path.join(TMP, name)


def make_ca():
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2",
            "-subj", "/CN=wsbal test CA")


def make_cert(name, sans, serial, self_signed=False):
    """A certificate for sans (an openssl subjectAltName value) with a known serial."""
    key, csr, pem = path(name + ".key"), path(name + ".csr"), path(name + ".pem")
    ext = path(name + ".ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={sans}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    if self_signed:
        openssl("x509", "-req", "-in", csr, "-signkey", key, "-out", pem, "-days", "2",
                "-set_serial", str(serial), "-extfile", ext)
    else:
        openssl("x509", "-req", "-in", csr, "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-out", pem, "-days", "2", "-set_serial", str(serial), "-extfile", ext)
    return pem, key


make_ca()
SERVER = make_cert("server", "DNS:localhost,IP:127.0.0.1", 1001)
OTHER = make_cert("other", "DNS:other.test", 2002)
SERVER2 = make_cert("server2", "DNS:localhost,IP:127.0.0.1", 3003)
CLIENT = make_cert("client", "DNS:wsbal.client", 5005)
BAD = make_cert("bad", "DNS:localhost,IP:127.0.0.1", 4004, self_signed=True)
with open(path("broken.pem"), "w") as f:
    f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")


def client_ctx():
    ctx = ssl.create_default_context(cafile=path("ca.pem"))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def tls_listen(pairs=(SERVER,), **extra):
    keys = {"tls_cert": ",".join(p[0] for p in pairs), "tls_key": ",".join(p[1] for p in pairs)}
    keys.update(extra)
    return keys


def wss_url(lb, host="127.0.0.1"):
    return f"wss://{host}:{lb.port}"


async def echo_once(url, ctx=None, text="hello", **kw):
    async with websockets.connect(url, ssl=ctx, compression=None, ping_interval=None, **kw) as ws:
        await ws.send(text)
        got = await asyncio.wait_for(ws.recv(), T)
        obj = ws.transport.get_extra_info("ssl_object")
        serial = obj.getpeercert()["serialNumber"] if obj is not None else None
        alpn = obj.selected_alpn_protocol() if obj is not None else None
        return got, serial, alpn


def tls_raw(port, ctx=None, hostname="127.0.0.1", session=None):
    """A RawClient over TLS; returns it (its ssl socket is .sock)."""
    rc = RawClient(port)
    rc.sock = (ctx or client_ctx()).wrap_socket(rc.sock, server_hostname=hostname, session=session)
    return rc


def metrics(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=T) as r:
        return r.read().decode()


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(re.escape(name + "{" + want + "}") + r" (\d+)", text)
    return int(m.group(1)) if m else None


def test_wss_client_to_ws_backend():
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], sections={"listen": tls_listen()})
    try:
        got, serial, alpn = run(echo_once(wss_url(lb), client_ctx()))
        c.eq("wss client -> ws backend: echoed", "hello", got)
        c.eq("the listener's certificate (serial 1001 = 0x3E9)", "03E9", serial)
        c.eq("ALPN http/1.1", "http/1.1", alpn)
        got, _, _ = run(echo_once(f"wss://localhost:{lb.port}", client_ctx(), text="by name"))
        c.eq("verified by name (localhost)", "by name", got)
        # A client held to TLS 1.1 is refused: 1.2 is the minimum.
        old = client_ctx()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        try:
            tls_raw(lb.port, old).close()
            c.true("TLS 1.1 refused", False, "handshake succeeded")
        except (ssl.SSLError, ConnectionError) as e:
            c.true("TLS 1.1 refused", True, repr(e))
    finally:
        lb.stop()
        echo.stop()


def test_min_version_13_and_http_and_garbage():
    echo = Echo("e1")
    ap = free_port()
    lb = Wsbal([("e1", echo.url)], workers=1,
               sections={"listen": tls_listen(tls_min_version="1.3", handshake_timeout="1s"),
                         "admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        ctx12 = client_ctx()
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            tls_raw(lb.port, ctx12).close()
            c.true("tls_min_version = 1.3 refuses TLS 1.2", False, "handshake succeeded")
        except (ssl.SSLError, ConnectionError):
            c.true("tls_min_version = 1.3 refuses TLS 1.2", True)
        # Plain HTTP to the TLS port, then garbage, then a client that says nothing.
        plain = RawClient(lb.port)
        plain.request()
        c.true("plain HTTP to the TLS port: connection closed", plain.closed_by_peer())
        plain.close()
        junk = RawClient(lb.port)
        # Fixed bytes, not random ones: about one random prefix in 400 reads as the header of
        # a record longer than what follows (openssl s_server waits too), and then the server
        # rightly waits for the rest until handshake_timeout (a flaky CI failure).
        junk.send(b"\x00\x01not TLS at all\r\n" * 150)
        c.true("garbage to the TLS port: connection closed", junk.closed_by_peer())
        junk.close()
        quiet = RawClient(lb.port)
        c.true("silent client closed after handshake_timeout", quiet.closed_by_peer(timeout=T))
        quiet.close()
        got, _, _ = run(echo_once(wss_url(lb), client_ctx(), text="still fine"))
        c.eq("a good client after all that", "still fine", got)
        m = metrics(ap)
        c.eq("http_request counted", 1, metric(m, "wsbal_tls_handshake_errors_total",
                                               side="client", reason="http_request"))
        c.true("version error counted", (metric(m, "wsbal_tls_handshake_errors_total",
                                                side="client", reason="version") or 0) >= 1, m)
        c.eq("timeout counted", 1, metric(m, "wsbal_tls_handshake_errors_total", side="client",
                                          reason="timeout"))
        c.true("garbage counted as protocol", (metric(m, "wsbal_tls_handshake_errors_total",
                                                      side="client", reason="protocol") or 0) >= 1)
        c.true("worker alive", "exited" not in lb.output() and "signal" not in lb.output(),
               lb.output())
    finally:
        lb.stop()
        echo.stop()


def test_ws_client_to_wss_backend_and_resumption():
    peer = Peer("t1", tls=SERVER)
    ap = free_port()
    lb = Wsbal([("t1", peer.url)], workers=1,
               sections={"upstream": {"tls_ca_file": path("ca.pem")},
                         "admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        for i in range(3):
            got, _, _ = run(echo_once(lb.url, text=f"plain {i}"))
            c.eq(f"ws client -> wss backend: echo {i}", f"plain {i}", got)
        c.true("backend saw wsbal resume its TLS session",
               peer.wait_line(r"tls_resumed=True") is not None, peer.output())
        m = metrics(ap)
        c.true("resumed backend handshakes counted",
               (metric(m, "wsbal_tls_handshakes_total", side="backend", resumed="true") or 0) >= 1,
               m)
    finally:
        lb.stop()
        peer.stop()


def test_wss_to_wss():
    peer = Peer("t1", tls=SERVER, host="localhost")
    lb = Wsbal([("t1", peer.url)],
               sections={"listen": tls_listen(), "upstream": {"tls_ca_file": path("ca.pem")}})
    try:
        got, _, _ = run(echo_once(wss_url(lb), client_ctx(), text="x" * 100000))
        c.eq("wss -> wss (backend named localhost): a 100 kB message", 100000, len(got))
    finally:
        lb.stop()
        peer.stop()


def test_bad_backend_certificate():
    peer = Peer("bad", tls=BAD)
    lb = Wsbal([("bad", peer.url)], sections={"upstream": {"tls_ca_file": path("ca.pem")}})
    try:
        rc = RawClient(lb.port)
        rc.request()
        status, _, _ = rc.read_head()
        rc.close()
        c.eq("self-signed backend refused while verifying: 502", 502, status)
        c.true("the reason is logged",
               lb.wait_line(r"certificate not accepted: self.signed") is not None, lb.output())
        verdict, _ = lb.reload([("bad", peer.url)],
                               sections={"upstream": {"tls_ca_file": path("ca.pem"),
                                                      "tls_verify": "off"}})
        c.true("reload with tls_verify = off", verdict and verdict.startswith("reloaded"), verdict)
        got, _, _ = run(echo_once(lb.url, text="unverified"))
        c.eq("tls_verify = off: accepted", "unverified", got)
    finally:
        lb.stop()
        peer.stop()
    # A certificate for another name is refused too: the URL's host is verified.
    peer = Peer("other", tls=OTHER)
    lb = Wsbal([("other", peer.url)], sections={"upstream": {"tls_ca_file": path("ca.pem")}})
    try:
        rc = RawClient(lb.port)
        rc.request()
        status, _, _ = rc.read_head()
        rc.close()
        c.eq("backend certificate for another host: 502", 502, status)
    finally:
        lb.stop()
        peer.stop()


def test_mutual_tls_to_backend():
    peer = Peer("m1", tls=SERVER, client_ca=path("ca.pem"))
    upstream = {"tls_ca_file": path("ca.pem")}
    lb = Wsbal([("m1", peer.url)], sections={"upstream": upstream})
    try:
        rc = RawClient(lb.port)
        rc.request()
        status, _, _ = rc.read_head()
        rc.close()
        c.eq("backend wanting a client certificate, none configured: 502", 502, status)
        verdict, _ = lb.reload([("m1", peer.url)], sections={"upstream": dict(
            upstream, tls_client_cert=CLIENT[0], tls_client_key=CLIENT[1])})
        c.true("reload with tls_client_cert", verdict and verdict.startswith("reloaded"), verdict)
        got, _, _ = run(echo_once(lb.url, text="mutual"))
        c.eq("mutual TLS with tls_client_cert: accepted", "mutual", got)
    finally:
        lb.stop()
        peer.stop()


def test_sni():
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], sections={"listen": tls_listen((SERVER, OTHER))})
    try:
        _, serial, _ = run(echo_once(wss_url(lb), client_ctx()))
        c.eq("no SNI (an address): the first certificate", "03E9", serial)
        _, serial, _ = run(echo_once(wss_url(lb), client_ctx(), server_hostname="other.test"))
        c.eq("SNI other.test: its certificate", "07D2", serial)
        _, serial, _ = run(echo_once(wss_url(lb, "localhost"), client_ctx()))
        c.eq("SNI localhost: the first", "03E9", serial)
    finally:
        lb.stop()
        echo.stop()


async def session_through_reload(lb, new_sections):
    async with websockets.connect(wss_url(lb), ssl=client_ctx(), compression=None,
                                  ping_interval=None) as ws:
        await ws.send("before")
        first = await asyncio.wait_for(ws.recv(), T)
        verdict, _ = await asyncio.get_running_loop().run_in_executor(
            None, lambda: lb.reload(lb.backends, sections=new_sections))
        got, serial, _ = await echo_once(wss_url(lb), client_ctx(), text="new")
        await ws.send("after")
        second = await asyncio.wait_for(ws.recv(), T)
        old_serial = ws.transport.get_extra_info("ssl_object").getpeercert()["serialNumber"]
        return first, second, verdict, serial, old_serial


def test_reload_swaps_certificate():
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], sections={"listen": tls_listen()})
    lb.backends = [("e1", echo.url)]
    try:
        first, second, verdict, serial, old_serial = run(
            session_through_reload(lb, {"listen": tls_listen((SERVER2,))}))
        c.true("reload accepted", verdict and verdict.startswith("reloaded"), verdict)
        c.eq("new handshakes see the new certificate", "0BBB", serial)
        c.eq("the open session keeps its certificate", "03E9", old_serial)
        c.eq("the open session keeps working", ("before", "after"), (first, second))
        # A broken certificate: the reload fails at the key's line and the running one stays.
        verdict, lines = lb.reload(lb.backends,
                                   sections={"listen": tls_listen(((path("broken.pem"),
                                                                    SERVER[1]),))})
        c.true("broken certificate: reload failed", verdict and "failed" in verdict, verdict)
        c.true("the error names FILE:LINE and the key",
               any(re.search(re.escape(lb.config) + r":\d+: \[listen\] tls_cert: .*broken\.pem", l)
                   for l in lines), "\n".join(lines))
        _, serial, _ = run(echo_once(wss_url(lb), client_ctx()))
        c.eq("after the failed reload the previous certificate serves", "0BBB", serial)
    finally:
        lb.stop()
        echo.stop()


def test_start_with_broken_certificate():
    cfg = path("broken.ini")
    with open(cfg, "w") as f:
        f.write(f"[listen]\naddress = 127.0.0.1:{free_port()}\ntls_cert = {path('broken.pem')}\n"
                f"tls_key = {SERVER[1]}\n[backend:a]\nurl = ws://127.0.0.1:9\n")
    from wsbtest import WSBAL
    r = subprocess.run([WSBAL, "-t", "-c", cfg], capture_output=True, text=True, timeout=T)
    c.eq("wsbal -t with a broken certificate exits 1", 1, r.returncode)
    c.true("wsbal -t names FILE:3", f"{cfg}:3: [listen] tls_cert" in r.stderr, r.stderr)
    with open(cfg, "w") as f:
        f.write(f"[listen]\naddress = 127.0.0.1:{free_port()}\ntls_cert = {SERVER[0]}\n"
                f"tls_key = {OTHER[1]}\n[backend:a]\nurl = ws://127.0.0.1:9\n")
    r = subprocess.run([WSBAL, "-t", "-c", cfg], capture_output=True, text=True, timeout=T)
    c.true("a key that does not match its certificate", r.returncode == 1 and
           ("does not match" in r.stderr or "mismatch" in r.stderr), r.stderr)


def test_tickets_shared_across_workers():
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], workers=2, sections={"listen": tls_listen()})
    try:
        ctx = client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # a session exists right after the handshake
        first = tls_raw(lb.port, ctx)
        first.request()
        status, _, _ = first.read_head()
        session = first.sock.session
        first.close()
        c.eq("first wss upgrade", 101, status)
        reused = 0
        for _ in range(10):
            rc = tls_raw(lb.port, ctx, session=session)
            rc.request()
            rc.read_head()
            reused += rc.sock.session_reused
            rc.close()
        c.eq("10 reconnects over 2 workers all resume the session (shared ticket keys)", 10,
             reused)
        ctx13 = client_ctx()
        first = tls_raw(lb.port, ctx13)
        first.request()
        first.read_head()
        session = first.sock.session
        first.close()
        rc = tls_raw(lb.port, ctx13, session=session)
        rc.request()
        rc.read_head()
        c.true("TLS 1.3 resumes too", rc.sock.session_reused)
        rc.close()
    finally:
        lb.stop()
        echo.stop()


def backends_up(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/v1/backends", timeout=T) as r:
        return {b["name"]: b["up"] for b in json.loads(r.read())["backends"]}


def who_serves(lb):
    """Opens a session and asks its backend who it is; returns (client, name)."""
    rc = RawClient(lb.port)
    rc.request()
    status, _, _ = rc.read_head()
    if status != 101:
        rc.close()
        return None, f"HTTP {status}"
    rc.send(frame(OP_TEXT, b"who"))
    _, _, payload = rc.read_frame()
    return rc, payload.decode()


def test_health_and_load_over_tls():
    """health_check = http and load_report_path speak TLS to wss:// backends, with the data
    path's verification: checks pass and reports steer sessions; with a CA that does not verify
    the backends, their checks fail and they are down. A plain TCP server behind a wss:// URL
    that never answers the ClientHello times the check out."""
    busy = Peer("busy", tls=SERVER, report=50)
    idle = Peer("idle", tls=SERVER, host="localhost", report=0)  # SNI and a name to verify
    mute = Peer("mute", mode="silent")
    ap = free_port()
    upstream = {"tls_ca_file": path("ca.pem"), "health_check": "http",
                "health_interval": "200ms", "health_timeout": "1s", "health_rise": "1",
                "health_fall": "1", "load_report_path": "/metric", "slow_start": "0"}
    backends = [("busy", busy.url), ("idle", idle.url),
                ("mute", mute.url.replace("ws://", "wss://"))]
    lb = Wsbal(backends, workers=1,
               sections={"upstream": upstream, "admin": {"address": f"127.0.0.1:{ap}"}})
    held = []
    try:
        def passing():
            m = metrics(ap)
            return all((metric(m, "wsbal_backend_health_checks_total", backend=n,
                               result="ok") or 0) >= 2 and
                       (metric(m, "wsbal_backend_load_reports_total", backend=n,
                               result="ok") or 0) >= 2 for n in ("busy", "idle"))
        c.true("http checks and load reports over TLS pass for both wss backends",
               wait_for(passing), metrics(ap)[-3000:] + lb.output()[-1500:])
        c.true("the mute backend timed out",
               lb.wait_line(r"backend mute is down: no answer within") is not None,
               lb.output()[-1500:])
        c.eq("both wss backends up, the mute one down", {"busy": True, "idle": True, "mute": False},
             backends_up(ap))
        c.true("the backend answered GET /healthCheck over TLS",
               busy.wait_line(r"probe /healthCheck") is not None, busy.output()[-500:])
        # busy reports 50 connections, idle 0: least_conn sends every new session to idle.
        names = []
        for _ in range(6):
            rc, name = who_serves(lb)
            names.append(name)
            if rc is not None:
                held.append(rc)
        c.eq("the reports steer sessions: all 6 to the backend reporting 0", ["idle"] * 6, names)
        for rc in held:
            rc.close()
        held = []
        # Another CA: the backends' certificates no longer verify, so their checks fail.
        verdict, _ = lb.reload(backends, sections={"upstream": dict(upstream,
                                                                    tls_ca_file=BAD[0]),
                                                   "admin": {"address": f"127.0.0.1:{ap}"}})
        c.true("reload with a CA that does not sign the backends",
               verdict and verdict.startswith("reloaded"), verdict)
        for name in ("busy", "idle"):
            c.true(f"{name} is down: its certificate is not accepted",
                   lb.wait_line(rf"backend {name} is down: TLS: certificate not accepted") is not None,
                   lb.output()[-1500:])
        c.eq("down in the admin API", {"busy": False, "idle": False, "mute": False},
             backends_up(ap))
        m = metrics(ap)
        c.true("counted as result error",
               all((metric(m, "wsbal_backend_health_checks_total", backend=n, result="error")
                    or 0) >= 1 for n in ("busy", "idle")), m[-3000:])
        # tls_verify = off, as for the data path: the same backends pass again.
        verdict, _ = lb.reload(backends, sections={"upstream": dict(upstream, tls_ca_file=BAD[0],
                                                                    tls_verify="off"),
                                                   "admin": {"address": f"127.0.0.1:{ap}"}})
        c.true("reload with tls_verify = off", verdict and verdict.startswith("reloaded"), verdict)
        c.true("with tls_verify = off both are up again",
               wait_for(lambda: backends_up(ap) == {"busy": True, "idle": True, "mute": False}),
               lb.output()[-1500:])
    finally:
        for rc in held:
            rc.close()
        lb.stop()
        for p in (busy, idle, mute):
            p.stop()


def test_ticket_rotation():
    """tls_ticket_rotation: the master replaces the ticket key every interval and every worker
    follows at once. A ticket resumes through one rotation (and is replaced by one under the new
    key), not through two."""
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], workers=2, log_level="debug",
               sections={"listen": tls_listen(tls_ticket_rotation="3s")})
    try:
        ctx = client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # a session exists right after the handshake

        def connect(session=None):
            rc = tls_raw(lb.port, ctx, session=session)
            rc.request()
            status, _, _ = rc.read_head()
            got = (status, rc.sock.session, rc.sock.session_reused)
            rc.close()
            return got

        rotated = r"master debug: TLS session ticket keys rotated"
        mark = [0]

        def next_rotation():
            m = lb.wait_line(rotated, start=mark[0])
            with lb.cond:
                mark[0] = next((i for i in range(mark[0], len(lb.lines))
                                if re.search(rotated, lb.lines[i])), len(lb.lines)) + 1
            return m is not None

        # Start right after a rotation: the steps below then have a whole interval each.
        c.true("the keys rotate every 3 s", next_rotation(), lb.output()[-1000:])
        status, t0, _ = connect()
        c.eq("first wss upgrade", 101, status)
        resumed = [connect(t0)[2] for _ in range(4)]
        c.eq("within the interval the ticket resumes on either worker", [True] * 4, resumed)
        c.true("a rotation", next_rotation())
        _, t1, reused = connect(t0)
        c.true("after one rotation the ticket still resumes", reused)
        c.true("a second rotation", next_rotation())
        _, _, reused = connect(t0)
        c.true("after two rotations the first ticket no longer resumes", not reused)
        _, _, reused = connect(t1)
        c.true("the ticket renewed after the first rotation resumes", reused)
    finally:
        lb.stop()
        echo.stop()


async def kill_mid_session(lb, peers):
    async with websockets.connect(wss_url(lb), ssl=client_ctx(), compression=None,
                                  ping_interval=None) as ws:
        await ws.send("who")
        serving = await asyncio.wait_for(ws.recv(), T)
        for i in range(5):
            await ws.send(f"m{i}")
            assert await asyncio.wait_for(ws.recv(), T) == f"m{i}"
        idx = [p.ident for p in peers].index(serving)
        peers[idx].stop(sig=signal.SIGKILL)
        got = []
        for i in range(5, 15):
            await ws.send(f"m{i}")
            got.append(await asyncio.wait_for(ws.recv(), T))
        await ws.send("who")
        now = await asyncio.wait_for(ws.recv(), T)
        return serving, now, got


def test_failover_between_wss_backends():
    peers = [Peer("p1", tls=SERVER), Peer("p2", tls=SERVER)]
    lb = Wsbal([(p.ident, p.url) for p in peers],
               sections={"listen": tls_listen(), "upstream": {"tls_ca_file": path("ca.pem")}})
    try:
        try:
            serving, now, got = run(kill_mid_session(lb, peers))
        except Exception:
            print(lb.output())
            raise
        c.true("the session moved to the other wss backend", serving != now, (serving, now))
        c.eq("every message after the kill echoed in order", [f"m{i}" for i in range(5, 15)], got)
    finally:
        lb.stop()
        for p in peers:
            p.stop()


async def burst(url, n=128, size=65536):
    """Sends n distinct messages before reading any answer: wsbal's queues fill and its TLS legs
    pause, then everything must come back whole and in order once the client reads."""
    async with websockets.connect(url, ssl=client_ctx(), compression=None, ping_interval=None,
                                  max_size=None, max_queue=4) as ws:
        msgs = [bytes([i % 251]) * size for i in range(n)]

        async def send_all():
            for m in msgs:
                await ws.send(m)

        sender = asyncio.create_task(send_all())
        await asyncio.wait([sender], timeout=1)  # let the pipes and queues fill up
        got = []
        for _ in range(n):
            got.append(await asyncio.wait_for(ws.recv(), T))
        await sender
        return got == msgs, len(got)


def test_backpressure_over_tls():
    echo = Echo("e1")
    peer = Peer("t1", tls=SERVER)
    lb = Wsbal([("e1", echo.url)], sections={"listen": tls_listen()})
    lb2 = Wsbal([("t1", peer.url)],
                sections={"listen": tls_listen(), "upstream": {"tls_ca_file": path("ca.pem")}})
    try:
        # More than loopback's socket buffers hold: wsbal's queues pass their high-water marks,
        # its TLS legs pause with ciphertext held, and pass it on when they resume.
        ok, n = run(burst(wss_url(lb), n=512))
        c.true("32 MB burst, wss -> ws: every message back, in order", ok, n)
        ok, n = run(burst(wss_url(lb2), n=256))
        c.true("16 MB burst, wss -> wss: every message back, in order", ok, n)
    finally:
        lb.stop()
        lb2.stop()
        echo.stop()
        peer.stop()


def test_load_generator_over_wss():
    """wsbal-load's wss:// support, which the benchmark uses: echo and connect modes, no errors."""
    load = os.environ.get("WSBAL_LOAD")
    if not load:
        c.true("WSBAL_LOAD is set", False)
        return
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], sections={"listen": tls_listen()})
    try:
        for mode in ("echo", "connect"):
            r = subprocess.run([load, "--url", f"wss://127.0.0.1:{lb.port}/", "--mode", mode,
                                "-c", "4", "-t", "1", "--warmup", "0.2", "--json-only"],
                               capture_output=True, text=True, timeout=60)
            result = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
            count = result.get("messages" if mode == "echo" else "cycles", 0)
            c.true(f"wsbal-load {mode} over wss: no errors, work done",
                   r.returncode == 0 and result.get("error_total") == 0 and count > 0,
                   r.stdout[-400:] + r.stderr[-400:])
    finally:
        lb.stop()
        echo.stop()


def test_real_client_verifies():
    """python3-websockets with its default verification against the test CA, by host name."""
    echo = Echo("e1")
    lb = Wsbal([("e1", echo.url)], sections={"listen": tls_listen()})
    try:
        ctx = ssl.create_default_context(cafile=path("ca.pem"))

        async def chat():
            async with websockets.connect(f"wss://localhost:{lb.port}/chat", ssl=ctx) as ws:
                out = []
                for i in range(20):
                    await ws.send(f"msg {i}")
                    out.append(await asyncio.wait_for(ws.recv(), T))
                await ws.send(b"\x00\x01binary")
                out.append(await asyncio.wait_for(ws.recv(), T))
                return out

        out = run(chat())
        c.eq("20 text and a binary message over verified wss", [f"msg {i}" for i in range(20)] +
             [b"\x00\x01binary"], out)
        bad = ssl.create_default_context()  # the system store does not know the test CA
        try:
            run(echo_once(f"wss://localhost:{lb.port}", bad))
            c.true("a client without the test CA refuses us", False)
        except ssl.SSLCertVerificationError:
            c.true("a client without the test CA refuses us", True)
    finally:
        lb.stop()
        echo.stop()


try:
    status = run_tests(c, test_wss_client_to_ws_backend, test_min_version_13_and_http_and_garbage,
                       test_ws_client_to_wss_backend_and_resumption, test_wss_to_wss,
                       test_bad_backend_certificate, test_mutual_tls_to_backend, test_sni,
                       test_reload_swaps_certificate,
                       test_start_with_broken_certificate, test_tickets_shared_across_workers,
                       test_health_and_load_over_tls, test_ticket_rotation,
                       test_failover_between_wss_backends, test_backpressure_over_tls,
                       test_load_generator_over_wss,
                       test_real_client_verifies)
finally:
    shutil.rmtree(TMP, ignore_errors=True)
raise SystemExit(status)

#!/usr/bin/python3
"""Compares wsbal with HAProxy and nginx (and a direct connection) on the same load, on loopback.

Run through test/bench/compare, which installs what is missing and builds first. Every figure is
measured in the same invocation, round by round, targets interleaved, and the table reports
medians over the rounds that were not disturbed by other load on the machine.
See test/bench/README.md for what each figure means.
"""

import argparse
import datetime
import gzip
import shutil
import json
import math
import os
import platform
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = ["direct", "forwarder", "haproxy", "nginx", "wsbal", "pack"]
# This build again with [wsbal] worker_balance = pack (new sessions on the fewest workers that
# are not busy) beside the default, spread.
PACK = "pack"
# The minimal relay (test/bench/forwarder.c): a reference, not a peer, for these scenarios only.
FORWARDER = "forwarder"
FORWARDER_SCENARIOS = ["echo", "rate", "connect"]
# --baseline DIR: the wsbal of another build (e.g. main's), run as one more target beside this one.
BASELINE = "baseline"
PEERS = ["haproxy", "nginx"]
SCENARIOS = ["echo", "rate", "idle", "connect", "http", "storm", "compression"]
# The storm needs several processes per proxy and a minute per run: only when asked for.
DEFAULT_SCENARIOS = ["echo", "rate", "idle", "connect", "http"]
IDLE_SESSIONS = 9900
STORM_CLIENTS = 20000
STORM_SOURCE = "127.6.0.0/16"  # client addresses of the storm: one or two sessions per address
STORM_BACKLOG = 1024  # listen queue of each listening socket, the same for every proxy
FD_MARGIN = 1000  # descriptors a process keeps for listeners, logs and spares
RATE = 20000
HTTP_CONNECTIONS = 64  # wrk's keep-alive connections in the http scenario
HTTP_THREADS = 1  # wrk threads: one loop, as wsbal-load has, leaves the proxy the other core
NOISE_SHARE = 0.10  # other load above this share of one core marks a round noisy
# --syscalls: the system calls counted by kind (perf's syscall tracepoints, on the proxy's processes)
SYSCALL_SCENARIOS = {"echo": "echoed message", "rate": "message at %s msg/s" % format(RATE, ","),
                     "connect": "handshake"}
SYSCALL_KINDS = ["read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg",
                 "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "accept", "accept4",
                 "connect", "socket", "close", "shutdown", "setsockopt", "getsockopt",
                 "getsockname", "getpeername", "ioctl", "fcntl", "timerfd_settime", "futex",
                 "io_uring_enter", "splice"]
SYSCALL_INTERVAL_MS = 100


def irq_time_accounting():
    """Whether the kernel keeps irq and softirq time out of the processes' own CPU times."""
    for path in ["/boot/config-" + platform.release(), "/proc/config.gz"]:
        try:
            if path.endswith(".gz"):
                text = gzip.open(path, "rt").read()
            else:
                text = open(path).read()
        except OSError:
            continue
        return "CONFIG_IRQ_TIME_ACCOUNTING=y" in text
    return False


IRQ_TIME_ACCOUNTING = irq_time_accounting()


def log(msg):
    print("compare: " + msg, file=sys.stderr, flush=True)


class Stop(Exception):
    """Raised by SIGINT/SIGTERM so the cleanup in main's finally runs."""


def on_signal(signum, frame):
    raise Stop("signal %d" % signum)


# ---- processes ----

class Processes:
    """Every process this script starts, so each one is stopped at the end, by its id."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.live = []

    def start(self, name, args, stdout=subprocess.DEVNULL):
        err = open(os.path.join(self.tmp, name + ".err"), "ab")
        # Its own process group: workers forked by a proxy can be stopped with it as a last resort.
        p = subprocess.Popen(args, stdout=stdout, stderr=err, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        err.close()
        p.name = name
        self.live.append(p)
        return p

    def stop(self, p, grace=3.0):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                # wsbal stops at once on a second SIGTERM; the others get SIGKILL.
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(2.0)
                except subprocess.TimeoutExpired:
                    pass
        # Workers left behind by a master that died go with its process group.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.wait(5)
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, grace=2.0)


def children_of(pid):
    """Every descendant of pid, from the parent field of /proc/PID/stat."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def listeners(port):
    """Listening sockets on 127.0.0.1:port (SO_REUSEPORT gives each process or worker its own)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        return sum(1 for line in f.readlines()[1:]
                   if line.split()[1] == want and line.split()[3] == "0A")


def read_listening_port(p, timeout=10.0):
    """wsbal-echo --port 0 prints "listening on HOST:PORT" once bound."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([p.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith("listening on "):
                    return int(line.rsplit(":", 1)[1])
    raise RuntimeError("%s did not report its port: %r" % (p.name, buf))


# ---- proxy configurations ----

def haproxy_config(port, backends, maxconn, tls=None, threads=2, backlog=None):
    bind = f"bind 127.0.0.1:{port}"
    if backlog:
        bind += f" backlog {backlog}"
    if tls:
        bind += f" ssl crt {tls['combined']} alpn http/1.1 ssl-min-ver TLSv1.2"
    servers = "".join("    server b%d 127.0.0.1:%d\n" % (i + 1, b) for i, b in enumerate(backends))
    return f"""# generated by test/bench/compare
global
    nbthread {threads}
    maxconn {maxconn}

defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h

frontend fe
    {bind}
    default_backend be

backend be
    balance leastconn
{servers}"""


def nginx_preamble(tmp, nofile, workers):
    """What every generated nginx.conf starts with: workers, descriptors, private paths, and the
    http block opened."""
    return f"""# generated by test/bench/compare
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections {nofile}; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/client_body;
  proxy_temp_path {tmp}/proxy_temp;
  fastcgi_temp_path {tmp}/fastcgi_temp;
  uwsgi_temp_path {tmp}/uwsgi_temp;
  scgi_temp_path {tmp}/scgi_temp;"""


def nginx_config(port, backends, tmp, nofile, tls=None, workers=2, backlog=None):
    servers = "".join("    server 127.0.0.1:%d;\n" % b for b in backends)
    listen = f"127.0.0.1:{port}"
    if backlog:
        # One listening socket per worker, as wsbal's workers and HAProxy's processes have.
        listen += f" reuseport backlog={backlog}"
    if tls:
        listen += (f" ssl;\n    ssl_certificate {tls['cert']};\n    ssl_certificate_key {tls['key']};"
                   "\n    ssl_protocols TLSv1.2 TLSv1.3")
    return nginx_preamble(tmp, nofile, workers) + f"""
  upstream be {{
    least_conn;
{servers}  }}
  server {{
    listen {listen};
    location / {{
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }}
  }}
}}
"""


def balance_line(balance):
    """Only pack is written: a baseline build from before the key would refuse it."""
    return "worker_balance = pack\n" if balance == "pack" else ""


def wsbal_config(port, backends, tls=None, workers=2, max_sessions=100000, balance="spread"):
    listen_tls = f"tls_cert = {tls['cert']}\ntls_key = {tls['key']}\n" if tls else ""
    blocks = "".join("\n[backend:b%d]\nurl = ws://127.0.0.1:%d\n" % (i + 1, b)
                     for i, b in enumerate(backends))
    return f"""; generated by test/bench/compare
[wsbal]
workers = {workers}
{balance_line(balance)}max_sessions = {max_sessions}
log_level = warn
shutdown_timeout = 1s

[listen]
address = 127.0.0.1:{port}
{listen_tls}
[upstream]
algorithm = least_conn
health_check = off

[admin]
address = off
{blocks}"""


# ---- the http scenario: plain keep-alive HTTP/1.1 through each proxy ----

def haproxy_http_config(port, backends):
    """HTTP keep-alive on both sides; idle server connections shared by every client
    (http-reuse always), as wsbal's and nginx's per-process pools are."""
    servers = "".join("    server b%d 127.0.0.1:%d\n" % (i + 1, b) for i, b in enumerate(backends))
    return f"""# generated by test/bench/compare (http scenario)
global
    nbthread 2
    maxconn 2000

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout http-keep-alive 1h

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    balance leastconn
    http-reuse always
{servers}"""


def nginx_http_config(port, backends, tmp, nofile):
    """Keep-alive to the backends (HTTP/1.1, Connection cleared, an idle cache of 64 per
    worker); keepalive_requests raised on both sides so neither closes a connection every
    1,000 requests (its default), which the other two never do."""
    servers = "".join("    server 127.0.0.1:%d;\n" % b for b in backends)
    return nginx_preamble(tmp, nofile, 2) + f"""
  keepalive_requests 10000000;
  keepalive_timeout 1h;
  upstream be {{
    least_conn;
{servers}    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 1h;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 1h;
    }}
  }}
}}
"""


def wsbal_http_config(port, backends, balance="spread"):
    blocks = "".join("\n[backend:b%d]\nurl = ws://127.0.0.1:%d\n" % (i + 1, b)
                     for i, b in enumerate(backends))
    return f"""; generated by test/bench/compare (http scenario)
[wsbal]
workers = 2
{balance_line(balance)}log_level = warn
shutdown_timeout = 1s

[listen]
address = 127.0.0.1:{port}
http = proxy

[upstream]
algorithm = least_conn
health_check = off
http_keepalive = 64

[admin]
address = off
{blocks}"""


# wrk prints this one JSON line when it is done (latencies in microseconds).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def proc_cpu_s(pids):
    """utime + stime of these processes, in seconds (those gone count 0)."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tck


def machine_cpu_s():
    """The machine's CPU times from /proc/stat, in seconds, as wsbal-load's --watch reads them."""
    tck = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        cols = f.readline().split()[1:9]
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    return {n: int(v) / tck for n, v in zip(names, cols)}


def http_sample(pids, backend_pids, self_cpu_s):
    return {"machine": machine_cpu_s(), "self_cpu_s": self_cpu_s,
            "groups": {"proxy": {"cpu_s": proc_cpu_s(pids), "pss_kb": -1},
                       "backends": {"cpu_s": proc_cpu_s(backend_pids), "pss_kb": -1}}}


def run_wrk(port, seconds, script, timeout):
    """One wrk run against port; returns (its JSON line or None, its CPU seconds, stderr)."""
    args = ["wrk", "-t", str(HTTP_THREADS), "-c", str(HTTP_CONNECTIONS), "-d", "%ds" % seconds,
            "--timeout", "5s", "-s", script, "http://127.0.0.1:%d/bench" % port]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    result = None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
    return result, p.returncode, err.decode(errors="replace")


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Bench:
    def __init__(self, opts, procs, tmp):
        self.o = opts
        self.procs = procs
        self.tmp = tmp
        self.build = opts.build
        self.backend_procs = []
        self.backend_ports = []
        self.http_backend_procs = []
        self.http_backend_ports = []
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        # Each proxied idle session costs the proxy two descriptors.
        self.idle_sessions = min(IDLE_SESSIONS, max(100, (self.nofile - 200) // 2))
        # The storm, spread by the descriptor limit as test/bench/scale does: two descriptors per
        # session in a proxy process, one in a backend or a load process.
        per = max(1000, self.nofile - FD_MARGIN)
        n = opts.storm_clients
        self.storm_procs = max(2, math.ceil(2 * n * 1.15 / per))
        self.storm_backends = max(2, math.ceil(n * 1.15 / per))
        self.storm_load_procs = max(2, math.ceil(n * 1.1 / per))
        self.tls = self.make_certificate() if opts.tls else None

    def make_certificate(self):
        """One throwaway ECDSA P-256 certificate that every proxy terminates TLS with."""
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        combined = os.path.join(self.tmp, "combined.pem")
        with open(combined, "w") as f:
            f.write(open(cert).read() + open(key).read())
        for path in (cert, key, combined):
            os.chmod(path, 0o644)  # nginx workers may run as nobody
        return {"cert": cert, "key": key, "combined": combined}

    def start_backends(self):
        n = max(2, self.storm_backends if "storm" in self.o.scenarios else 0)
        for i in range(n):
            p = self.procs.start("backend%d" % (i + 1),
                                 [os.path.join(self.build, "wsbal-echo"), "--port", "0",
                                  "--id", "b%d" % (i + 1)], stdout=subprocess.PIPE)
            self.backend_ports.append(read_listening_port(p))
            self.backend_procs.append(p)
        log("backends on ports %s" % self.backend_ports)
        if "http" in self.o.scenarios:
            self.start_http_backends()

    def check_backends(self):
        for p in self.backend_procs + self.http_backend_procs:
            if p.poll() is not None:
                raise RuntimeError("backend %s exited (status %s); see %s/%s.err" %
                                   (p.name, p.returncode, self.tmp, p.name))

    def start_proxy(self, target, storm=False, http=False):
        """Starts a fresh proxy; returns (its processes, port, pids of all its processes).

        Every scenario but the storm: 2 threads or workers and the first two backends. The storm
        needs two descriptors per session in the proxy, so each proxy runs storm_procs processes
        (HAProxy: that many single-threaded processes on one port, SO_REUSEPORT being its default;
        nginx: that many workers, each with its own listening socket; wsbal: that many workers)
        with the same listen backlog, over every backend."""
        port = free_port()
        d = os.path.join(self.tmp, target)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)  # nginx workers may run as nobody
        backends = self.backend_ports if storm else self.backend_ports[:2]
        n = self.storm_procs if storm else 2
        backlog = STORM_BACKLOG if storm else None
        instances, workers = 1, 0
        if http:
            args, workers = self.http_proxy_args(target, d, port)
        elif target == FORWARDER:
            args = [os.path.join(self.build, "test", "bench", "wsbal-bench-forwarder"), "--port",
                    str(port), "--workers", str(n)]
            for b in backends:
                args += ["--backend", str(b)]
            workers = n
        elif target == "haproxy":
            cfg = os.path.join(d, "haproxy.cfg")
            # Each process holds its share of the storm, with room for an uneven spread.
            maxconn = (min((self.nofile - 200) // 2, math.ceil(self.o.storm_clients * 1.3 / n))
                       if storm else self.idle_sessions + 50)
            with open(cfg, "w") as f:
                f.write(haproxy_config(port, backends, maxconn, self.tls, threads=1 if storm else 2,
                                       backlog=backlog))
            args = ["haproxy", "-db", "-f", cfg]
            instances = n if storm else 1
        elif target == "nginx":
            cfg = os.path.join(d, "nginx.conf")
            with open(cfg, "w") as f:
                f.write(nginx_config(port, backends, d, self.nofile, self.tls, workers=n,
                                     backlog=backlog))
            args = ["nginx", "-p", d + "/", "-e", os.path.join(d, "nginx-error.log"), "-c", cfg,
                    "-g", "daemon off;"]
            workers = n
        else:
            cfg = os.path.join(d, "wsbal.ini")
            with open(cfg, "w") as f:
                f.write(wsbal_config(port, backends, self.tls, workers=n,
                                     max_sessions=max(100000, 2 * self.o.storm_clients),
                                     balance="pack" if target == PACK else "spread"))
            build = self.o.baseline if target == BASELINE else self.build
            args = [os.path.join(build, "wsbal"), "-c", cfg]
            workers = n
        ps = [self.procs.start(target if i == 0 else "%s%d" % (target, i + 1), args)
              for i in range(instances)]
        if not wait_port(port, ps[0]):
            for p in ps:
                self.procs.stop(p)
            raise RuntimeError("%s did not start; see %s/%s.err" % (target, self.tmp, target))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kids = sum(len(children_of(p.pid)) for p in ps)
            if kids >= workers and (not storm or listeners(port) >= n) and \
                    all(p.poll() is None for p in ps):
                break
            time.sleep(0.05)
        else:
            for p in ps:
                self.procs.stop(p)
            raise RuntimeError("%s: not every process listens; see %s/%s.err" %
                               (target, self.tmp, target))
        time.sleep(0.3)  # let the workers reach their loops before the load starts
        pids = []
        for p in ps:
            pids += [p.pid] + children_of(p.pid)
        return ps, port, pids

    def load_args(self, scenario):
        o = self.o
        d, w = "%g" % o.duration, "%g" % o.warmup
        if scenario == "echo":
            return ["--mode", "echo", "-c", "64", "-d", "8", "-s", "64", "-t", d, "--warmup", w]
        if scenario == "rate":
            return ["--mode", "rate", "-r", str(RATE), "-c", "64", "-s", "64", "-t", d,
                    "--warmup", w]
        if scenario == "idle":
            return ["--mode", "idle", "-c", str(self.idle_sessions), "-t", "%g" % o.idle_hold,
                    "--warmup", "0"]
        if scenario == "storm":
            return ["--mode", "storm", "-c", str(o.storm_clients), "--processes",
                    str(self.storm_load_procs), "--source", STORM_SOURCE, "-t",
                    "%g" % o.storm_hold]
        return ["--mode", "connect", "-c", "32", "-s", "64", "-t", d, "--warmup", w]

    def run_one(self, rnd, scenario, target):
        self.check_backends()
        if scenario == "http":
            return self.run_http(rnd, target)
        procs, pids = [], []
        if target == "direct":
            port = self.backend_ports[0]
        else:
            procs, port, pids = self.start_proxy(target, storm=scenario == "storm")
        scheme = "wss" if self.tls and target != "direct" else "ws"
        args = [os.path.join(self.build, "wsbal-load"), "--url",
                "%s://127.0.0.1:%d/bench" % (scheme, port),
                "--json-only"] + self.load_args(scenario)
        if pids:
            args += ["--watch", "proxy:" + ",".join(map(str, pids))]
        args += ["--watch", "backends:" + ",".join(str(p.pid) for p in self.backend_procs)]
        limit = self.o.warmup + max(self.o.duration, self.o.idle_hold) + 120
        if scenario == "storm":
            limit = 60 + self.o.storm_hold + 30 + self.o.storm_clients / 500
        started = time.time()
        alive = True
        counter = None
        if self.o.syscalls and pids and scenario in SYSCALL_SCENARIOS:
            counter = SyscallCounter(self.procs, self.tmp, "%s-%s-%d" % (target, scenario, rnd),
                                     pids)
        try:
            load_started = time.monotonic()
            out = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 timeout=limit)
        finally:
            if counter:
                counter.stop()
            for p in procs:
                alive = alive and p.poll() is None
                self.procs.stop(p)
        record = {"round": rnd, "scenario": scenario, "target": target, "started": started,
                  "load_args": args[1:], "proxy_pids": pids, "proxy_survived": alive,
                  "exit_status": out.returncode,
                  "stderr": out.stderr.decode(errors="replace")[-2000:]}
        if scenario == "storm":
            record["proxy_processes"] = self.storm_procs
            record["load_processes"] = self.storm_load_procs
        lines = out.stdout.decode(errors="replace").strip().splitlines()
        try:
            record["load"] = json.loads(lines[-1])
        except (IndexError, ValueError):
            record["load"] = None
        record["derived"] = derive(record, target)
        if counter and record["load"]:
            record["syscalls"] = counter.per_unit(record["load"], load_started)
        return record


    # ---- the http scenario ----

    def start_http_backends(self):
        prog = os.path.join(self.build, "test", "bench", "wsbal-bench-http")
        for i in range(2):
            p = self.procs.start("http-backend%d" % (i + 1), [prog, "--port", "0"],
                                 stdout=subprocess.PIPE)
            self.http_backend_ports.append(read_listening_port(p))
            self.http_backend_procs.append(p)
        log("http backends on ports %s" % self.http_backend_ports)

    def http_proxy_args(self, target, d, port):
        """Writes target's http configuration into d; returns its command and worker count."""
        backends = self.http_backend_ports
        if target == "haproxy":
            cfg = os.path.join(d, "haproxy-http.cfg")
            with open(cfg, "w") as f:
                f.write(haproxy_http_config(port, backends))
            return ["haproxy", "-db", "-f", cfg], 0
        if target == "nginx":
            cfg = os.path.join(d, "nginx-http.conf")
            with open(cfg, "w") as f:
                f.write(nginx_http_config(port, backends, d, self.nofile))
            return ["nginx", "-p", d + "/", "-e", os.path.join(d, "nginx-error.log"), "-c", cfg,
                    "-g", "daemon off;"], 2
        cfg = os.path.join(d, "wsbal-http.ini")
        with open(cfg, "w") as f:
            f.write(wsbal_http_config(port, backends, "pack" if target == PACK else "spread"))
        build = self.o.baseline if target == BASELINE else self.build
        return [os.path.join(build, "wsbal"), "-c", cfg], 2

    def run_http(self, rnd, target):
        """wrk over keep-alive connections: a warm-up run, then the measured one, with the CPU
        of the proxy, the backends, wrk and the machine read just before and just after it."""
        procs, pids = [], []
        if target == "direct":
            port = self.http_backend_ports[0]
        else:
            procs, port, pids = self.start_proxy(target, http=True)
        script = os.path.join(self.tmp, "wrk-done.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        backend_pids = [p.pid for p in self.http_backend_procs]
        seconds = max(1, int(round(self.o.duration)))
        started = time.time()
        alive = True
        try:
            if self.o.warmup > 0:
                run_wrk(port, max(1, int(round(self.o.warmup))), script, self.o.warmup + 30)
            cpu0 = children_cpu_s()
            t0 = time.monotonic()
            before = http_sample(pids, backend_pids, 0.0)
            result, status, err = run_wrk(port, seconds, script, seconds + 30)
            after = http_sample(pids, backend_pids, children_cpu_s() - cpu0)
            window = time.monotonic() - t0
        finally:
            for p in procs:
                alive = alive and p.poll() is None
                self.procs.stop(p)
        record = {"round": rnd, "scenario": "http", "target": target, "started": started,
                  "load_args": ["wrk", "-t", str(HTTP_THREADS), "-c", str(HTTP_CONNECTIONS),
                                "-d", "%ds" % seconds],
                  "proxy_pids": pids, "proxy_survived": alive, "exit_status": status,
                  "stderr": err[-2000:], "load": None}
        if result is not None and status == 0:
            errors = sum(result[k] for k in ["connect", "read", "write", "status", "timeout"])
            record["load"] = {
                "mode": "http", "window_s": window, "wrk": result,
                "requests": result["requests"],
                "requests_per_s": result["requests"] / (result["duration_us"] / 1e6),
                "latency_us": {"p50": result["p50"], "p90": result["p90"], "p99": result["p99"],
                               "max": result["max"]},
                "error_total": errors, "mismatches": 0,
                "watch": {"start": before, "end": after}}
        record["derived"] = derive(record, target)
        return record


# ---- system calls by kind (--syscalls) ----

class SyscallCounter:
    """perf stat on the syscall tracepoints of a proxy's processes, in 100 ms intervals, so the
    counts can be cut to the load's measurement window (no set-up, warm-up or teardown). The
    tracepoints cost far less than strace's stops, so the proxy batches as it does unobserved."""

    def __init__(self, procs, tmp, name, pids):
        self.out = os.path.join(tmp, "perf-%s.csv" % name)
        have = "/sys/kernel/tracing/events/syscalls"
        kinds = [k for k in SYSCALL_KINDS if os.path.isdir(os.path.join(have, "sys_enter_" + k))]
        events = ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + k for k in kinds]
        self.procs = procs
        self.p = procs.start("perf-" + name, ["perf", "stat", "-I", str(SYSCALL_INTERVAL_MS),
                                              "-x,", "-o", self.out, "-e", ",".join(events),
                                              "-p", ",".join(map(str, pids))])
        # perf's interval times count from its own start: the first interval line, seen as it is
        # written (perf flushes each one), ties them to this clock within the 10 ms poll.
        deadline = time.monotonic() + 10
        self.t0 = None
        while self.t0 is None and time.monotonic() < deadline and self.p.poll() is None:
            time.sleep(0.01)
            first = self.first_interval()
            if first is not None:
                self.t0 = time.monotonic() - first
        if self.t0 is None:
            self.stop()
            raise RuntimeError("perf stat did not start; see %s/perf-%s.err" % (tmp, name))

    def first_interval(self):
        try:
            with open(self.out) as f:
                for line in f:
                    try:
                        return float(line.split(",")[0])
                    except ValueError:
                        continue
        except OSError:
            pass
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                pass
        self.procs.stop(self.p)

    def per_unit(self, load, load_started):
        """Counts per message (echo, rate) or per handshake (connect) over the intervals that lie
        wholly inside the window, the units being the load's rate times their length."""
        w = load["watch"]
        lo = load_started - self.t0 + w["start"]["t_s"]
        hi = load_started - self.t0 + w["end"]["t_s"]
        counts, ends = {}, set()
        try:
            lines = open(self.out).read().splitlines()
        except OSError:
            return None
        for line in lines:
            f = line.split(",")
            if len(f) < 4 or line.startswith("#"):
                continue
            try:
                t = float(f[0])
            except ValueError:
                continue
            if t - SYSCALL_INTERVAL_MS / 1000.0 < lo or t > hi:
                continue
            ends.add(t)
            kind = "all" if f[3] == "raw_syscalls:sys_enter" else f[3].split("sys_enter_")[-1]
            counts[kind] = counts.get(kind, 0) + (int(f[1]) if f[1].isdigit() else 0)
        covered = len(ends) * SYSCALL_INTERVAL_MS / 1000.0
        rate = load.get("handshakes_per_s") if load["mode"] == "connect" else load.get("msgs_per_s")
        if not covered or not rate:
            return None
        units = rate * covered
        per = {k: v / units for k, v in counts.items()}
        per["epoll_wakeups_per_s"] = sum(counts.get(k, 0) for k in
                                         ("epoll_wait", "epoll_pwait", "epoll_pwait2")) / covered
        per["seconds_counted"] = covered
        return per


def syscalls_table(runs, targets):
    """Medians over the rounds of each kind's count per unit, for the kinds some proxy makes."""
    lines = []
    for scenario, unit in SYSCALL_SCENARIOS.items():
        med = {}
        for t in targets:
            rs = [r["syscalls"] for r in runs
                  if r["scenario"] == scenario and r["target"] == t and r.get("syscalls")]
            if rs:
                med[t] = {k: statistics.median(r.get(k, 0.0) for r in rs)
                          for k in set().union(*rs)}
        if not med:
            continue
        cols = [t for t in targets if t in med]
        lines += ["", "| system calls per %s | %s |" % (unit, " | ".join(cols)),
                  "|---|" + "---|" * len(cols)]
        kinds = ["all"] + [k for k in SYSCALL_KINDS if any(m.get(k, 0) >= 0.005
                                                           for m in med.values())]
        for k in kinds + ["epoll_wakeups_per_s"]:
            label = {"all": "all", "epoll_wakeups_per_s": "epoll waits per second"}.get(k, k)
            cells = [("%.0f" if k == "epoll_wakeups_per_s" else "%.3f") % med[t].get(k, 0.0)
                     for t in cols]
            lines.append("| %s | %s |" % (label, " | ".join(cells)))
    return "\n".join(lines)


# ---- figures ----

def delta(load, group, key):
    w = load["watch"]
    g0 = w["start"]["groups"].get(group)
    g1 = w["end"]["groups"].get(group)
    if g0 is None or g1 is None:
        return None
    return g1[key] - g0[key]


def derive(record, target):
    """CPU and memory over the window, and whether other load disturbed it."""
    load = record["load"]
    if load is None:
        return {"valid": False}
    w = load["watch"]
    m0, m1 = w["start"]["machine"], w["end"]["machine"]
    dm = {k: m1[k] - m0[k] for k in m0}
    window = load["window_s"]
    proxy = delta(load, "proxy", "cpu_s") if target != "direct" else 0.0
    backends = delta(load, "backends", "cpu_s") or 0.0
    tool = w["end"]["self_cpu_s"] - w["start"]["self_cpu_s"]
    process_time = dm["user"] + dm["nice"] + dm["system"]
    busy = process_time + dm["irq"] + dm["softirq"] + dm["steal"]
    # Loopback traffic is mostly softirq work done inside the sending process's system calls.
    # With tick-based accounting that time is also in the process's stime; with
    # IRQ_TIME_ACCOUNTING it is in neither, so it must not count as other load.
    tracked = (proxy or 0.0) + backends + tool
    other = (process_time if IRQ_TIME_ACCOUNTING else busy) - tracked
    d = {
        "valid": True,
        "window_s": window,
        "proxy_cpu_s": proxy if target != "direct" else None,
        "backends_cpu_s": backends,
        "load_cpu_s": tool,
        "machine_busy_s": busy,
        "machine_softirq_s": dm["softirq"] + dm["irq"],
        "machine_idle_s": dm["idle"] + dm["iowait"],
        "other_cpu_s": other,
        "other_share_of_core": other / window if window > 0 else None,
        "noisy": window <= 0 or other > NOISE_SHARE * window,
        "errors": load["error_total"] + load["mismatches"],
    }
    if load["mode"] == "storm":
        d["storm_errors"] = {k: v for k, v in load["errors"].items() if v}
        d["storm_all_connected"] = load["connections_established"] == load["connections"]
    if target != "direct" and load["mode"] == "idle":
        before = w["before"]["groups"]["proxy"]["pss_kb"]
        during = w["start"]["groups"]["proxy"]["pss_kb"]
        d["proxy_pss_before_kb"] = before
        d["proxy_pss_idle_kb"] = during
        if before >= 0 and during >= 0 and load["open_at_start"] > 0:
            d["kib_per_idle_session"] = (during - before) / load["open_at_start"]
    return d


def per_unit_us(record, count_key):
    d, load = record["derived"], record["load"]
    if d.get("proxy_cpu_s") is None or not load.get(count_key):
        return None
    return d["proxy_cpu_s"] / load[count_key] * 1e6


FIGURES = [
    # key, label, scenario, value, better, applies to direct
    ("echo_msgs_per_s", "closed-loop echo msgs/s, 64 conns x 8 in flight, 64 B", "echo",
     lambda r: r["load"]["msgs_per_s"], "higher", True),
    ("echo_cpu_us", "proxy CPU per echoed message, us, closed loop", "echo",
     lambda r: per_unit_us(r, "messages"), "lower", False),
    ("rate_cpu_us", "proxy CPU per message at %s msg/s, us" % format(RATE, ","), "rate",
     lambda r: per_unit_us(r, "messages"), "lower", False),
    ("rate_p50_us", "latency p50 at %s msg/s, us" % format(RATE, ","), "rate",
     lambda r: r["load"]["latency_us"]["p50"], "lower", True),
    ("rate_p99_us", "latency p99 at %s msg/s, us" % format(RATE, ","), "rate",
     lambda r: r["load"]["latency_us"]["p99"], "lower", True),
    ("idle_kib", "memory per idle session, KiB PSS, %s sessions" % format(IDLE_SESSIONS, ","),
     "idle", lambda r: r["derived"].get("kib_per_idle_session"), "lower", False),
    ("connect_cpu_us", "proxy CPU per handshake, us, 32 connect loops", "connect",
     lambda r: per_unit_us(r, "cycles"), "lower", False),
    ("connect_per_s", "handshakes/s: connect, upgrade, 1 echo, close; 32 loops", "connect",
     lambda r: r["load"]["handshakes_per_s"], "higher", True),
    ("http_per_s", "HTTP requests/s: GET, %d keep-alive conns, wrk" % HTTP_CONNECTIONS, "http",
     lambda r: r["load"]["requests_per_s"], "higher", True),
    ("http_cpu_us", "proxy CPU per HTTP request, us", "http",
     lambda r: per_unit_us(r, "requests"), "lower", False),
    ("http_p50_us", "HTTP latency p50, us (closed loop)", "http",
     lambda r: r["load"]["latency_us"]["p50"], "lower", True),
    ("http_p99_us", "HTTP latency p99, us (closed loop)", "http",
     lambda r: r["load"]["latency_us"]["p99"], "lower", True),
    ("storm_all_s", "storm: seconds until every client is connected and upgraded", "storm",
     lambda r: storm_value(r, r["load"]["connect_s"]), "lower", False),
    ("storm_p50_ms", "storm: handshake latency p50, ms (TCP connect start to 101)", "storm",
     lambda r: storm_value(r, r["load"]["handshake_latency_us"]["p50"] / 1000), "lower", False),
    ("storm_p99_ms", "storm: handshake latency p99, ms", "storm",
     lambda r: storm_value(r, r["load"]["handshake_latency_us"]["p99"] / 1000), "lower", False),
    ("storm_max_ms", "storm: handshake latency max, ms", "storm",
     lambda r: storm_value(r, r["load"]["handshake_latency_us"]["max"] / 1000), "lower", False),
    ("storm_cpu_us", "storm: proxy CPU per handshake, us", "storm",
     lambda r: storm_value(r, per_unit_us(r, "connections_established")), "lower", False),
    ("storm_upgrades", "storm: clients upgraded", "storm",
     lambda r: r["load"]["connections_established"], "higher", False),
]


def storm_value(record, value):
    """A storm's times and CPU per upgrade only mean something when every client got through
    (the errors rows count the others)."""
    return value if record["derived"].get("storm_all_connected") else None


def summarize(runs, targets):
    """Per figure and target: the median over quiet rounds (all rounds when none was quiet)."""
    out = {}
    for key, label, scenario, value, better, direct_ok in FIGURES:
        row = {}
        for t in targets:
            if t == "direct" and not direct_ok:
                continue
            vals, quiet = [], []
            for r in runs:
                if r["scenario"] != scenario or r["target"] != t or not r["derived"]["valid"]:
                    continue
                v = value(r)
                if v is None:
                    continue
                vals.append(v)
                if not r["derived"]["noisy"]:
                    quiet.append(v)
            if not vals:
                continue
            use = quiet if quiet else vals
            row[t] = {"median": statistics.median(use), "values": vals, "quiet_values": quiet,
                      "all_noisy": not quiet}
        out[key] = row
    return out


def fmt(v, key):
    if v is None:
        return "-"
    if key.endswith("per_s") or key == "storm_upgrades":
        return format(int(round(v)), ",")
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def table(summary, targets, scenarios, runs):
    fwd = FORWARDER in targets
    over = [t for t in ("wsbal", PACK, BASELINE, "haproxy", "nginx") if t in targets]
    ours = [t for t in ("wsbal", PACK) if t in targets]
    lines = ["| figure | " + " | ".join(targets) + " | %s / best peer |" % " / ".join(ours) +
             (" %s ÷ forwarder |" % " / ".join(over) if fwd else ""),
             "|---|" + "---|" * len(targets) + "---|" + ("---|" if fwd else "")]
    for key, label, scenario, value, better, direct_ok in FIGURES:
        if scenario not in scenarios:
            continue
        row = summary.get(key, {})
        cells = []
        for t in targets:
            c = row.get(t)
            cells.append("-" if c is None else fmt(c["median"], key) + (" ~" if c["all_noisy"] else ""))
        ratio = "-"
        peers = [row[p]["median"] for p in PEERS if p in row and row[p]["median"]]
        if peers and any(t in row for t in ours):
            best = max(peers) if better == "higher" else min(peers)
            ratio = " / ".join("%.2f" % (row[t]["median"] / best) if t in row and best else "-"
                               for t in ours)
        line = "| %s (%s is better) | %s | %s |" % (label, better, " | ".join(cells), ratio)
        if fwd:
            ref = row.get(FORWARDER, {}).get("median")
            line += " %s |" % (" / ".join(
                "%.2f" % (row[t]["median"] / ref) if t in row and ref else "-"
                for t in over) if ref else "-")
        lines.append(line)
    errs = []
    for t in targets:
        n = sum(r["derived"].get("errors", 0) for r in runs if r["target"] == t and r["derived"]["valid"])
        bad = sum(1 for r in runs if r["target"] == t and not r["derived"]["valid"])
        errs.append(str(n) + (" (+%d runs without result)" % bad if bad else ""))
    tail = " | |" + (" |" if fwd else "")
    lines.append("| errors + mismatches, all runs | " + " | ".join(errs) + tail)
    if "storm" in scenarios:
        kinds = []
        for t in targets:
            total = {}
            for r in runs:
                if r["target"] == t and r["scenario"] == "storm" and r["derived"]["valid"]:
                    for k, v in r["derived"]["storm_errors"].items():
                        total[k] = total.get(k, 0) + v
            kinds.append(", ".join("%s %d" % kv for kv in sorted(total.items())) or "0")
        lines.append("| storm errors by kind, all runs | " + " | ".join(kinds) + tail)
    noisy = []
    for t in targets:
        mine = [r for r in runs if r["target"] == t and r["derived"]["valid"]]
        noisy.append("%d/%d" % (sum(1 for r in mine if r["derived"]["noisy"]), len(mine)))
    lines.append("| noisy runs (excluded) | " + " | ".join(noisy) + tail)
    return "\n".join(lines)


def machine_info(build):
    def first_line(args):
        try:
            out = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
            return out.stdout.decode(errors="replace").strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "haproxy": first_line(["haproxy", "-v"]), "nginx": first_line(["nginx", "-v"]),
            "wsbal": first_line([os.path.join(build, "wsbal"), "-V"]),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
            "irq_time_accounting": IRQ_TIME_ACCOUNTING}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="test/bench/compare",
                                description="wsbal vs HAProxy vs nginx on the same load, on loopback")
    p.add_argument("--rounds", type=int, default=3, help="rounds, medians over them (default 3)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="measured window of each run in seconds (default 10)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up before each window (default 1)")
    p.add_argument("--idle-hold", type=float, default=2.0,
                   help="seconds the idle sessions are held open (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="1 round of short windows: a smoke check, not a measurement")
    p.add_argument("--only", default=",".join(TARGETS),
                   help="comma list of targets among %s" % ",".join(TARGETS))
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help="comma list among %s (default %s)" % (",".join(SCENARIOS),
                                                             ",".join(DEFAULT_SCENARIOS)))
    p.add_argument("--storm-clients", type=int, default=STORM_CLIENTS,
                   help="storm: clients that connect and upgrade at once (default %d)" %
                        STORM_CLIENTS)
    p.add_argument("--storm-hold", type=float, default=2.0,
                   help="storm: seconds the sessions are held once all are up (default 2)")
    p.add_argument("--tls", action="store_true",
                   help="clients speak wss to the proxies, which terminate TLS with one ECDSA "
                        "P-256 certificate (direct stays plain ws: the backends have no TLS)")
    p.add_argument("--syscalls", action="store_true",
                   help="also count the proxies' system calls by kind per message and per "
                        "handshake (echo, rate, connect) with perf's syscall tracepoints")
    p.add_argument("--baseline", default=None,
                   help="build directory of another wsbal (e.g. main's), run as the target "
                        "'baseline' beside this one in every round")
    p.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "..", "build"),
                   help="build directory holding wsbal, wsbal-echo, wsbal-load")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                   help="directory for the raw JSON (default test/bench/results)")
    o = p.parse_args(argv)
    if o.quick:
        o.rounds, o.duration, o.warmup, o.idle_hold = 1, 2.0, 0.5, 1.0
    targets = [t for t in o.only.split(",") if t]
    if o.baseline:
        o.baseline = os.path.abspath(o.baseline)
        if not os.access(os.path.join(o.baseline, "wsbal"), os.X_OK):
            p.error("no wsbal in %s" % o.baseline)
        targets.append(BASELINE)
    scenarios = [s for s in o.scenarios.split(",") if s]
    for t in targets:
        if t not in TARGETS + [BASELINE] * bool(o.baseline):
            p.error("unknown target %r" % t)
    for s in scenarios:
        if s not in SCENARIOS:
            p.error("unknown scenario %r" % s)
    # Columns and runs keep one order whatever order the lists were given in.
    o.targets = [t for t in TARGETS + [BASELINE] if t in targets]
    o.scenarios = [s for s in SCENARIOS if s in scenarios]
    if not o.targets or not o.scenarios:
        p.error("nothing to run")
    if not 1 <= o.rounds <= 20 or not 0.5 <= o.duration <= 300 or not 0 <= o.warmup <= 60 \
            or not 0.5 <= o.idle_hold <= 60 or not 100 <= o.storm_clients <= 200000 \
            or not 0.1 <= o.storm_hold <= 60:
        p.error("rounds 1..20, duration 0.5..300, warmup 0..60, idle hold 0.5..60, storm clients "
                "100..200000, storm hold 0.1..60")
    o.build = os.path.abspath(o.build)
    return o


def main(argv):
    o = parse_args(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for prog in ["wsbal", "wsbal-echo", "wsbal-load"]:
        if not os.access(os.path.join(o.build, prog), os.X_OK):
            sys.exit("compare: %s/%s is missing; build first" % (o.build, prog))
    tmp = tempfile.mkdtemp(prefix="wsbal-bench-")
    os.chmod(tmp, 0o755)
    procs = Processes(tmp)
    runs = []
    comp_runs = []
    status = 0
    started = datetime.datetime.now()
    try:
        bench = Bench(o, procs, tmp)
        if bench.idle_sessions < IDLE_SESSIONS:
            log("only %d descriptors: idle test with %d sessions" % (bench.nofile, bench.idle_sessions))
        bench.start_backends()
        if "storm" in o.scenarios:
            log("storm of %d clients: %d processes per proxy, %d backends, %d load processes" %
                (o.storm_clients, bench.storm_procs, len(bench.backend_ports),
                 bench.storm_load_procs))
        for rnd in range(o.rounds):
            shift = rnd % len(o.targets)
            order = o.targets[shift:] + o.targets[:shift]
            for scenario in o.scenarios:
                for target in order:
                    # No backend could hold a storm's sessions alone; compression runs apart.
                    if (scenario == "storm" and target == "direct") or scenario == "compression":
                        continue
                    if target == FORWARDER and scenario not in FORWARDER_SCENARIOS:
                        continue
                    r = bench.run_one(rnd, scenario, target)
                    runs.append(r)
                    d = r["derived"]
                    if not d["valid"]:
                        log("round %d %-7s %-7s: no result (exit %s): %s" %
                            (rnd + 1, scenario, target, r["exit_status"], r["stderr"][-300:]))
                        continue
                    log("round %d %-7s %-7s: proxy cpu %s s, other load %.0f%% of a core%s%s" %
                        (rnd + 1, scenario, target,
                         "-" if d["proxy_cpu_s"] is None else "%.2f" % d["proxy_cpu_s"],
                         100 * (d["other_share_of_core"] or 0), " NOISY" if d["noisy"] else "",
                         " ERRORS %d" % d["errors"] if d["errors"] else ""))
        if "compression" in o.scenarios:
            comp_runs = compression_rounds(bench, o)
    except Stop as e:
        log("stopped by %s" % e)
        status = 1
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log("failed: %s" % e)
        status = 1
    finally:
        procs.stop_all()
    summary = summarize(runs, o.targets)
    text = table(summary, o.targets, o.scenarios, runs)
    if comp_runs:
        text += "\n\n" + compression_table(comp_runs, o.targets)
    if o.syscalls:
        text += "\n" + syscalls_table(runs, o.targets)
    os.makedirs(o.out, exist_ok=True)
    path = os.path.join(o.out, "compare-%s.json" % started.strftime("%Y%m%d-%H%M%S"))
    with open(path, "w") as f:
        json.dump({"started": started.isoformat(), "options": {k: v for k, v in vars(o).items()},
                   "machine": machine_info(o.build), "temp_dir": tmp, "runs": runs,
                   "summary": summary, "compression": comp_runs, "table": text}, f, indent=1)
    if status == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    print("\nMedians over %d round(s) of %gs windows; '~' = every round was noisy (other load "
          "> %d%% of a core), median of all. Raw data: %s" %
          (o.rounds, o.duration, int(NOISE_SHARE * 100), os.path.relpath(path)))
    return status


# ---- the compression scenario: wsbal's own permessage-deflate, on against off ----

COMPRESSION_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compression_load.py")


def compression_config(port, admin, backend, on):
    return f"""; generated by test/bench/compare (compression scenario)
[wsbal]
workers = 1
log_level = warn
shutdown_timeout = 1s

[listen]
address = 127.0.0.1:{port}
compression = {"on" if on else "off"}

[upstream]
health_check = off

[admin]
address = 127.0.0.1:{admin}

[backend:b1]
url = ws://127.0.0.1:{backend}
"""


def proc_cpu_s(pids):
    total = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def byte_counters(admin):
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10).read()
    out = {}
    for line in text.decode().splitlines():
        if line.startswith(("wsbal_bytes_total{", "wsbal_compression_bytes_total{")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def compression_rounds(bench, o):
    """One wsbal worker, one client connection, 1 KiB JSON-like messages echoed, compression off
    and on in turn each round: bytes per message on the client leg, wsbal's CPU per message,
    messages a second (bound by the python client, not by wsbal)."""
    n = max(1000, int(2000 * o.duration))
    runs = []
    for rnd in range(o.rounds):
        for on in (False, True):
            port, admin = free_port(), free_port()
            d = os.path.join(bench.tmp, "compression")
            os.makedirs(d, exist_ok=True)
            cfg = os.path.join(d, "wsbal.ini")
            with open(cfg, "w") as f:
                f.write(compression_config(port, admin, bench.backend_ports[0], on))
            p = bench.procs.start("wsbal-compression", [os.path.join(bench.build, "wsbal"), "-c",
                                                        cfg])
            try:
                if not wait_port(port, p) or not wait_port(admin, p):
                    raise RuntimeError("wsbal did not start; see %s/wsbal-compression.err" %
                                       bench.tmp)
                time.sleep(0.3)
                pids = [p.pid] + children_of(p.pid)
                m0, c0 = byte_counters(admin), proc_cpu_s(pids)
                out = subprocess.run(["/usr/bin/python3", COMPRESSION_CLIENT,
                                      "ws://127.0.0.1:%d/bench" % port, str(n),
                                      "on" if on else "off"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
                c1, m1 = proc_cpu_s(pids), byte_counters(admin)
            finally:
                bench.procs.stop(p)
            client = json.loads(out.stdout.decode().strip().splitlines()[-1])
            per = {k: (m1[k] - m0.get(k, 0)) / n for k in m1}
            to_backend = per['wsbal_bytes_total{direction="client_to_backend"}']
            from_backend = per['wsbal_bytes_total{direction="backend_to_client"}']
            wire = per.get('wsbal_compression_bytes_total{direction="backend_to_client",'
                           'stage="wire"}', 0)
            payload = per.get('wsbal_compression_bytes_total{direction="backend_to_client",'
                              'stage="payload"}', 0)
            r = {"round": rnd, "compression": on, "messages": n, "wrong": client["wrong"],
                 "extensions": client["extensions"],
                 "client_to_wsbal_bytes": to_backend,
                 # The backend's frames, with the payload compressed where it was.
                 "wsbal_to_client_bytes": from_backend - payload + wire,
                 "cpu_us_per_message": (c1 - c0) / n * 1e6,
                 "messages_per_s": n / client["seconds"]}
            runs.append(r)
            log("round %d compression %-3s: %.0f B in, %.0f B out per message, %.1f us CPU, "
                "%.0f msgs/s%s" % (rnd + 1, "on" if on else "off", r["client_to_wsbal_bytes"],
                                   r["wsbal_to_client_bytes"], r["cpu_us_per_message"],
                                   r["messages_per_s"], " WRONG %d" % r["wrong"] if r["wrong"] else ""))
    return runs


def compression_table(runs, targets):
    def med(on, key):
        vals = [r[key] for r in runs if r["compression"] == on]
        return statistics.median(vals) if vals else None

    others = [t for t in ("haproxy", "nginx") if t in targets]
    head = "| compression: 1 KiB JSON messages echoed, one client | wsbal off | wsbal on |" + \
        "".join(" %s |" % t for t in others)
    rows = [head, "|---|---:|---:|" + "---|" * len(others)]
    for label, key, f in [("client leg, bytes per message to wsbal", "client_to_wsbal_bytes", "%.0f"),
                          ("client leg, bytes per message from wsbal", "wsbal_to_client_bytes",
                           "%.0f"),
                          ("wsbal CPU per message, us (both ways)", "cpu_us_per_message", "%.1f"),
                          ("messages/s (bound by the python client)", "messages_per_s", "%.0f")]:
        cells = [f % v if v is not None else "-" for v in (med(False, key), med(True, key))]
        rows.append("| %s | %s | %s |" % (label, cells[0], cells[1]) +
                    " pass-through only |" * len(others))
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

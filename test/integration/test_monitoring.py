"""/metrics as scrapers read it, and packaging/monitoring against a real Prometheus.

Exposition: the 0.0.4 text and the OpenMetrics answer (by Accept) checked by metrics_check.py
(HELP and TYPE, families together, no series twice, no OpenMetrics name collision but the
documented wsbal_sessions) and by promtool; the new figures agree with the traffic sent.
Prometheus (Debian's /usr/bin/prometheus on loopback, 1 s scrapes and rule evaluations, the
rules loaded) scrapes a wsbal carrying sessions, messages both ways and a failover: every PromQL
expression of the dashboard and the rules answers, the dashboard's with data, every rule is
healthy, and a failed reload fires WsbalReloadFailed."""
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import metrics_check
from wsbtest import OP_TEXT, Checks, Echo, Peer, RawClient, Wsbal, frame, free_port, run_tests

c = Checks()
ROOT = os.environ.get("WSBAL_SOURCE_ROOT",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MONITORING = os.path.join(ROOT, "packaging", "monitoring")
DASHBOARD = os.path.join(MONITORING, "wsbal-dashboard.json")
RULES = os.path.join(MONITORING, "wsbal-alerts.yml")
OPENMETRICS = "application/openmetrics-text"
# What Prometheus 2.42 sends.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def request(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r.getheader("Content-Type"), body.decode()


def value(text, name, **labels):
    """The value of one series of a /metrics text, or None."""
    return metrics_check.series(text).get((name, frozenset(labels.items())))


def total(text, name, **labels):
    """The sum of every series of name whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics_check.series(text).items() if n == name and want <= ls)


def echo_once(cl, payload):
    cl.send(frame(OP_TEXT, payload))
    return cl.read_frame()[2]


def wait_metric(ap, pred, timeout=10):
    """Scrapes until pred(text) holds; returns the last text."""
    deadline = time.monotonic() + timeout
    while True:
        text = request(ap, "/metrics")[2]
        if pred(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_exposition(e1, e2):
    holder = Peer("holder")
    ap = free_port()
    # "dead" refuses connections: its first failure opens its breaker for the whole test.
    lb = Wsbal([("e1", e1.url), ("e2", e2.url), ("holder", holder.url),
                ("dead", f"ws://127.0.0.1:{free_port()}")],
               sections={"admin": {"address": f"127.0.0.1:{ap}"},
                         "upstream": {"algorithm": "round_robin", "health_check": "off",
                                      "breaker_threshold": "1", "breaker_cooldown": "10m"}})
    held = []
    try:
        sent = 0
        for i in range(6):
            cl, _ = RawClient.upgraded(lb.port)
            for j in range(i + 1):
                echo_once(cl, b"x" * 10)
                sent += 1
            held.append(cl)
        for cl in held[:3]:
            cl.close()
        # An upgrade request read whole but refused (a version wsbal does not speak): timed too.
        refused = RawClient(lb.port)
        refused.request("/", headers={"Sec-WebSocket-Version": "12"})
        c.eq("an unknown version is refused", 426, refused.read_head()[0])
        refused.close()
        text = wait_metric(ap, lambda t: value(t, "wsbal_session_seconds_count") == 3)
        s, ctype, text = request(ap, "/metrics")
        c.eq("0.0.4 by default", (200, "text/plain; version=0.0.4; charset=utf-8"), (s, ctype))
        c.eq("0.0.4: clean but for the documented wsbal_sessions", [],
             metrics_check.problems(text, allow_collisions=("wsbal_sessions",)))
        c.eq("0.0.4: the check does see the wsbal_sessions collision",
             ["OpenMetrics collision on wsbal_sessions: ['wsbal_sessions', 'wsbal_sessions_total']"],
             metrics_check.problems(text))
        promtool = shutil.which("promtool")
        if c.true("promtool is installed", promtool is not None, "apt-get install prometheus"):
            r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True)
            c.eq("promtool check metrics passes", (0, b""), (r.returncode, r.stdout + r.stderr))

        # The figures agree with the traffic.
        c.eq("sessions: 3 ended; 7 handshakes timed, the refused one with them",
             (3, 7, 6, 1), (value(text, "wsbal_session_seconds_count"),
                            value(text, "wsbal_handshake_seconds_count"),
                            value(text, "wsbal_handshakes_total", result="ok"),
                            value(text, "wsbal_handshakes_total", result="bad_request")))
        c.eq("per-backend messages add up to the totals, both ways", (sent, sent, sent, sent),
             (total(text, "wsbal_backend_messages_total", direction="client_to_backend"),
              total(text, "wsbal_backend_messages_total", direction="backend_to_client"),
              value(text, "wsbal_messages_total", direction="client_to_backend"),
              value(text, "wsbal_messages_total", direction="backend_to_client")))
        c.eq("per-backend bytes add up to the totals",
             value(text, "wsbal_bytes_total", direction="backend_to_client"),
             total(text, "wsbal_backend_bytes_total", direction="backend_to_client"))
        c.true("every backend carried messages", all(
            total(text, "wsbal_backend_messages_total", backend=b) > 0 for b in ("e1", "e2", "holder")),
            text)
        live = {b: value(text, "wsbal_sessions_active", backend=b) for b in ("e1", "e2", "holder")}
        c.eq("wsbal_sessions_active: the 3 open sessions, as wsbal_sessions", (3, live),
             (sum(live.values()), {b: value(text, "wsbal_sessions", backend=b) for b in live}))
        c.eq("breakers: closed, and open for the dead backend", [0, 0, 0, 1],
             [value(text, "wsbal_backend_breaker_state", backend=b)
              for b in ("e1", "e2", "holder", "dead")])

        # process_*: the master and both workers, told apart by role and slot, not pid.
        pids = lb.pids()
        keys = sorted(tuple(sorted(ls)) for (n, ls) in metrics_check.series(text)
                      if n == "process_open_fds")
        c.eq("process_open_fds of the master and workers 0 and 1",
             [(("role", "master"),), (("role", "worker"), ("worker", "0")),
              (("role", "worker"), ("worker", "1"))], keys)
        with open(f"/proc/{pids[0]}/limits") as f:
            soft = int(re.search(r"^Max open files\s+(\d+)", f.read(), re.M).group(1))
        c.eq("process_max_fds: the master's soft limit", soft,
             value(text, "process_max_fds", role="master"))
        start = value(text, "process_start_time_seconds", role="master")
        c.true("process_start_time_seconds: the master started within the last minute",
               time.time() - 60 < start <= time.time() + 1, start)
        c.true("resident and virtual memory, CPU of a worker",
               0 < value(text, "process_resident_memory_bytes", role="worker", worker="0") <
               value(text, "process_virtual_memory_bytes", role="worker", worker="0") and
               value(text, "process_cpu_seconds_total", role="worker", worker="0") >= 0, text[-2000:])

        # A fragment a backend sent and has not finished is held, and counted until it goes.
        c.eq("nothing held yet", 0, value(text, "wsbal_failover_hold_bytes"))
        on_holder = None
        for cl in held[3:]:
            cl.send(frame(OP_TEXT, b"who"))
            if cl.read_frame()[2] == b"holder":
                on_holder = cl
        if c.true("a session is on the holder", on_holder is not None, ""):
            on_holder.send(frame(OP_TEXT, b"halfhold"))
            text = wait_metric(ap, lambda t: value(t, "wsbal_failover_hold_bytes") > 0)
            c.eq("the held fragment's bytes are counted", 2 + 33,
                 value(text, "wsbal_failover_hold_bytes"))
            on_holder.close()
            text = wait_metric(ap, lambda t: value(t, "wsbal_failover_hold_bytes") == 0)
            c.eq("and given back when its session ends", 0, value(text, "wsbal_failover_hold_bytes"))

        # OpenMetrics, when asked for.
        for accept in (OPENMETRICS, PROMETHEUS_ACCEPT, "Application/OpenMetrics-Text; version=1.0.0",
                       f"text/plain;q=0.5 , {OPENMETRICS};q=0.01", f"{OPENMETRICS};q=0.,{OPENMETRICS}"):
            s, ctype, om = request(ap, "/metrics", {"Accept": accept})
            c.eq(f"OpenMetrics for Accept: {accept}",
                 (200, "application/openmetrics-text; version=1.0.0; charset=utf-8"), (s, ctype))
        c.eq("OpenMetrics: clean, no exception", [], metrics_check.problems(om, openmetrics=True))
        c.true("OpenMetrics: counters typed by family, the colliding gauge left out",
               "# TYPE wsbal_sessions counter\n" in om and "\nwsbal_sessions{" not in om and
               "\nwsbal_sessions_total{" in om and om.endswith("\n# EOF\n"), om[:600])
        for accept in ("text/plain", "*/*", f"{OPENMETRICS};q=0, text/plain",
                       f"{OPENMETRICS}; version=1.0.0; q=0.000", "application/openmetrics-textx",
                       "text/openmetrics-text", f",,;q=, {OPENMETRICS[:-1]}", ""):
            c.eq(f"0.0.4 for Accept: {accept!r}", "text/plain; version=0.0.4; charset=utf-8",
                 request(ap, "/metrics", {"Accept": accept} if accept else {})[1])
        conn = http.client.HTTPConnection("127.0.0.1", ap, timeout=10)
        conn.request("GET", "/metrics")
        with conn.getresponse() as r:
            c.eq("the answer depends on Accept, and says so", "Accept", r.getheader("Vary"))
        conn.close()
    finally:
        for cl in held:
            cl.close()
        lb.stop()
        holder.stop()


def expressions():
    """(where, PromQL, needs data) of every dashboard target and rule, Grafana's variables
    substituted as it would for "All"."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            expr = (t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
                    .replace("$backend", ".*"))
            out.append((f"panel {p['title']!r} {t['refId']}", expr, True))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", v["definition"])
            out.append((f"variable {v['name']}", m.group(1).replace("$instance", ".*"), True))
    import yaml
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    for g in rules["groups"]:
        for r in g["rules"]:
            out.append((f"rule {r['alert']}", r["expr"], False))
    return out


def test_prometheus(e1, e2):
    prom, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not c.true("prometheus and promtool are installed", prom and promtool,
                  "apt-get install prometheus"):
        return
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    c.true("promtool check rules passes", r.returncode == 0, r.stdout + r.stderr)
    ap, pp = free_port(), free_port()
    sections = {"admin": {"address": f"127.0.0.1:{ap}"}}
    lb = Wsbal([("e1", e1.url), ("e2", e2.url)], sections=sections)
    tmp = tempfile.mkdtemp(prefix="wsbal-monitoring-")
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                f"rule_files: ['{RULES}']\n"
                "scrape_configs:\n  - job_name: wsbal\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{ap}']\n")
    proc = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{pp}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    held = []

    def query(expr):
        s, _, body = request(pp, "/api/v1/query?query=" + urllib.parse.quote(expr))
        return json.loads(body)

    def wait_query(expr, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                doc = query(expr)
                if doc.get("status") == "success" and doc["data"]["result"]:
                    return doc["data"]["result"]
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.25)
        return None

    try:
        c.true("Prometheus scrapes wsbal", wait_query('up{job="wsbal"} == 1') is not None, "")
        # Traffic: sessions opened and closed, messages both ways, a failover, one session held.
        for i in range(8):
            cl, _ = RawClient.upgraded(lb.port)
            for j in range(3):
                echo_once(cl, b"m" * (10 + i))
            held.append(cl)
        for cl in held[:5]:
            cl.close()
        del held[:5]
        sid = json.loads(request(ap, "/api/v1/sessions")[2])["sessions"][0]["id"]
        conn = http.client.HTTPConnection("127.0.0.1", ap, timeout=10)
        conn.request("POST", f"/api/v1/sessions/{sid}/failover", body=b"{}",
                     headers={"Content-Type": "application/json"})
        c.eq("an admin failover is accepted", 202, conn.getresponse().status)
        conn.close()
        for cl in held:
            c.eq("sessions still echo after the failover", b"after", echo_once(cl, b"after"))
        c.true("Prometheus has the traffic, the failover included",
               wait_query("wsbal_failover_seconds_count >= 1 and on () "
                          "wsbal_session_seconds_count >= 5") is not None, "")

        for where, expr, needs_data in expressions():
            try:
                doc = query(expr)
            except (OSError, ValueError) as e:
                doc = {"status": repr(e)}
            ok = doc.get("status") == "success" and "error" not in doc
            c.true(f"{where} evaluates", ok, f"{expr}: {doc}")
            if ok and needs_data:
                c.true(f"{where} has data", len(doc["data"]["result"]) > 0, expr)

        # Every rule group loaded and evaluated without error.
        deadline, rules = time.monotonic() + 10, []
        while time.monotonic() < deadline:
            groups = json.loads(request(pp, "/api/v1/rules")[2])["data"]["groups"]
            rules = [(r["name"], r["health"], r.get("lastError", "")) for g in groups
                     for r in g["rules"]]
            if rules and all(h == "ok" for _, h, _ in rules):
                break
            time.sleep(0.25)
        with open(RULES) as f:
            names = re.findall(r"^\s*- alert: (\w+)$", f.read(), re.M)
        c.eq("every rule loaded, healthy, without error", [(n, "ok", "") for n in names], rules)

        # A failed reload: WsbalReloadFailed fires (it has no "for").
        verdict, _ = lb.reload(None, raw="[wsbal]\nworkers = nonsense\n")
        c.true("a broken file is refused", verdict and verdict.startswith("reload failed"),
               verdict)
        deadline, firing = time.monotonic() + 15, []
        while time.monotonic() < deadline and "WsbalReloadFailed" not in firing:
            alerts = json.loads(request(pp, "/api/v1/alerts")[2])["data"]["alerts"]
            firing = [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]
            time.sleep(0.25)
        c.eq("WsbalReloadFailed fires, and nothing else", ["WsbalReloadFailed"], firing)
    finally:
        for cl in held:
            cl.close()
        proc.terminate()
        proc.wait(10)
        lb.stop()
        shutil.rmtree(tmp)


def main():
    e1, e2 = Echo("e1"), Echo("e2")
    try:
        return run_tests(c, lambda: test_exposition(e1, e2), lambda: test_prometheus(e1, e2))
    finally:
        e1.stop()
        e2.stop()


if __name__ == "__main__":
    sys.exit(main())

"""packaging/k8s/wsbal.yaml holds together and its probes point at real endpoints.

Parses every document with PyYAML (Debian's python3-yaml); checks that the Deployment's liveness
and readiness probes are HTTP GETs of /healthz and /readyz on the INI's admin port, that SPEC.md
names both endpoints, that the ports and Services match the INI, and that the headless Service is
the host of the backend URL, with resolve_interval set. Then starts wsbal with the ConfigMap's
INI (its addresses moved to loopback ports, its backend host to a local wsbal-echo, the
Deployment's environment with a test token) and asks both probe paths as the kubelet would, and
runs the config-reloader container's script against it: a changed file is reloaded, a broken one
refused.
"""
import configparser
import glob
import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import urllib.parse

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from wsbtest import T, WSBAL, Checks, Echo, Process, free_port, run_tests, wait_for  # noqa: E402

ROOT = os.environ.get("WSBAL_SOURCE_ROOT", ".")
WSBALCTL = os.environ.get("WSBALCTL", "build/wsbalctl")
TOKEN = "k8s-test-token"

checks = Checks()
state = {}


def load_documents():
    docs = []
    files = sorted(glob.glob(os.path.join(ROOT, "packaging", "k8s", "*.yaml")))
    checks.true("packaging/k8s has YAML files", len(files) > 0)
    for path in files:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                checks.true(f"{os.path.basename(path)}: a document with apiVersion, kind, name",
                            all(k in doc for k in ("apiVersion", "kind", "metadata"))
                            and "name" in doc["metadata"], repr(doc)[:200])
                docs.append(doc)
    return docs


def one(docs, kind, pred=lambda d: True):
    found = [d for d in docs if d.get("kind") == kind and pred(d)]
    checks.eq(f"one {kind}", 1, len(found))
    return found[0] if found else {}


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text.strip())
    if not m:
        return None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def port_of(container, port):
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def test_manifests():
    docs = load_documents()
    dep = one(docs, "Deployment")
    pod = dep.get("spec", {}).get("template", {})
    spec = pod.get("spec", {})
    containers = spec.get("containers", [])
    main = [c for c in containers if c.get("command", [""])[0].endswith("/wsbal")]
    checks.eq("one container runs wsbal", 1, len(main))
    c = main[0]
    cmd = c["command"]
    conf_path = cmd[cmd.index("-c") + 1] if "-c" in cmd else "/etc/wsbal/wsbal.ini"

    # The INI comes from the ConfigMap mounted as the directory of -c's file.
    mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == os.path.dirname(conf_path)]
    checks.eq("the configuration's directory is mounted", 1, len(mounts))
    checks.true("mounted without subPath (so ConfigMap changes reach the pod)",
                all("subPath" not in m for m in mounts))
    vol = [v for v in spec.get("volumes", []) if mounts and v["name"] == mounts[0]["name"]]
    cm_name = vol[0].get("configMap", {}).get("name") if vol else None
    cm = one(docs, "ConfigMap", lambda d: d["metadata"]["name"] == cm_name)
    text = cm.get("data", {}).get(os.path.basename(conf_path))
    checks.true("the ConfigMap holds the file -c names", text is not None)
    ini = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    ini.read_string(text or "")

    admin_port = int(ini["admin"]["address"].rsplit(":", 1)[1])
    listen_port = int(ini["listen"]["address"].rsplit(":", 1)[1])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        state[probe] = get.get("path", "")
        checks.eq(f"{probe} asks {path}", path, get.get("path"))
        checks.eq(f"{probe} is on the INI's admin port", admin_port, port_of(c, get.get("port")))
        checks.eq(f"{probe} is plain HTTP", "HTTP", get.get("scheme", "HTTP"))

    # Clients reach the INI's listen port through the wsbal Service.
    labels = pod.get("metadata", {}).get("labels", {})
    front = one(docs, "Service", lambda d: d["spec"].get("clusterIP") != "None")
    checks.true("the client Service selects the wsbal pods",
                front.get("spec", {}).get("selector", {}).items() <= labels.items()
                and front["spec"]["selector"])
    targets = [port_of(c, p.get("targetPort", p["port"])) for p in front["spec"]["ports"]]
    checks.eq("the client Service sends to the listen port", [listen_port], targets)

    # The headless Service is the backend URL's host, with discovery on.
    headless = one(docs, "Service", lambda d: d["spec"].get("clusterIP") == "None")
    backends = [s for s in ini.sections() if s.startswith("backend:")]
    checks.eq("one backend section", 1, len(backends))
    url = urllib.parse.urlsplit(ini[backends[0]]["url"])
    labels_ = url.hostname.split(".")
    ns = headless.get("metadata", {}).get("namespace", "default")
    checks.eq("the backend host is the headless Service", headless["metadata"]["name"], labels_[0])
    checks.true("the backend host names the Service's namespace (or none)",
                len(labels_) == 1 or labels_[1] == ns, url.hostname)
    checks.true("the backend port is a port of the headless Service",
                url.port in [p["port"] for p in headless["spec"]["ports"]])
    interval = duration_s(ini["upstream"].get("resolve_interval", "0"))
    checks.true("resolve_interval is set", interval is not None and interval > 0,
                ini["upstream"].get("resolve_interval"))

    # SIGKILL comes after the preStop pause, shutdown_timeout and the close handshakes.
    pause = 0
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if pre[:1] == ["sleep"]:
        pause = int(pre[1])
    grace = spec.get("terminationGracePeriodSeconds", 30)
    stop = duration_s(ini["wsbal"].get("shutdown_timeout", "30s"))
    checks.true("terminationGracePeriodSeconds covers preStop and shutdown_timeout",
                grace >= pause + stop + 5, f"{grace} < {pause} + {stop} + 5")

    # SPEC.md, where this tree sits next to it, names both endpoints.
    spec_md = [p for p in (os.environ.get("WSBAL_SPEC", ""),
                           os.path.join(ROOT, "..", "shared", "SPEC.md")) if os.path.isfile(p)]
    if spec_md:
        with open(spec_md[0], encoding="utf-8") as f:
            contract = f.read()
        for path in ("/healthz", "/readyz"):
            checks.true(f"SPEC.md has {path}", f"`{path}`" in contract)
    else:
        print("SPEC.md not found next to the tree: the live wsbal below decides alone")

    reloader = [x for x in containers if x is not c]
    checks.eq("one config-reloader container", 1, len(reloader))
    state.update(ini=ini, container=c, reloader=reloader[0] if reloader else None)


def env_of(container, overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSBAL")}
    for e in container.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else TOKEN
    env.update(overrides)
    return env


def get(port, path, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=T)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = conn.getresponse()
        return r.status, r.read()
    except OSError as e:
        return None, str(e).encode()
    finally:
        conn.close()


def write_ini(ini, path):
    with open(path, "w") as f:
        ini.write(f)


def test_live():
    ini, c = state["ini"], state["container"]
    e1, e2 = Echo("e1"), Echo("e2")
    state["echos"] = [e1, e2]
    admin, listen = free_port(), free_port()
    ini["listen"]["address"] = f"127.0.0.1:{listen}"
    ini["admin"]["address"] = f"127.0.0.1:{admin}"
    name = [s for s in ini.sections() if s.startswith("backend:")][0]
    url = urllib.parse.urlsplit(ini[name]["url"])
    ini[name]["url"] = url._replace(netloc=f"127.0.0.1:{e1.port}").geturl()
    fd, path = tempfile.mkstemp(prefix="wsbal-k8s-", suffix=".ini")
    os.close(fd)
    state["path"] = path
    write_ini(ini, path)

    w = Process([WSBAL, "-c", path], env=env_of(c, {}))
    state["wsbal"] = w
    checks.true("wsbal starts with the ConfigMap's INI", w.wait_line("listening on") is not None,
                w.output())
    live, ready = state["livenessProbe"], state["readinessProbe"]
    checks.eq("the liveness probe's path answers 200", 200, get(admin, live)[0])
    up = wait_for(lambda: get(admin, ready)[0] == 200)
    checks.true("the readiness probe's path answers 200 with the backend up", up,
                repr(get(admin, ready)))
    checks.eq("the readiness probe's path says ready", {"status": "ready"},
              json.loads(get(admin, ready)[1] or b"{}"))
    checks.eq("a path next to them is not an endpoint", 404, get(admin, "/healthzz", TOKEN)[0])
    checks.eq("the API needs the Deployment's token", 401, get(admin, "/api/v1/status")[0])
    checks.eq("the token from the Secret is taken", 200, get(admin, "/api/v1/status", TOKEN)[0])
    state["admin"] = admin


def generation():
    status, body = get(state["admin"], "/api/v1/status", TOKEN)
    return json.loads(body).get("generation") if status == 200 else None


def test_reloader():
    r, ini, path = state["reloader"], state["ini"], state["path"]
    script = r["command"][-1]
    env = env_of(r, {"CONFIG": path, "INTERVAL": "0.2",
                     "WSBAL_ADMIN": f"127.0.0.1:{state['admin']}",
                     "PATH": os.path.dirname(os.path.abspath(WSBALCTL)) + ":" +
                     os.environ.get("PATH", "/usr/bin:/bin")})
    proc = subprocess.Popen(["/bin/sh", "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        gen = generation()
        checks.true("the status has a generation", gen is not None)
        # The script took the file's first checksum once it sleeps in its loop.
        checks.true("the reloader's loop runs", wait_for(lambda: sleeping_child(proc.pid)))
        ini["backend:e2"] = {"url": f"ws://127.0.0.1:{state['echos'][1].port}"}
        write_ini(ini, path)
        moved = wait_for(lambda: (generation() or 0) > gen, timeout=T)
        checks.true("a changed file is reloaded by the sidecar's script", moved)
        _, body = get(state["admin"], "/api/v1/backends", TOKEN)
        names = [b["name"] for b in json.loads(body).get("backends", [])]
        checks.true("the new backend is there", "e2" in names, repr(names))

        gen = generation()
        with open(path, "a") as f:
            f.write("[upstream2]\n")
        refused = wait_for(lambda: "reload refused" in (state["wsbal"].output() + read_all(proc)),
                           timeout=T)
        checks.true("a broken file is refused and said so", refused, state["out"])
        checks.eq("the running configuration stays", gen, generation())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(T)


def sleeping_child(pid):
    """Whether a child of pid runs sleep (the reloader's loop)."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and comm == "sleep":
            return True
    return False


def read_all(proc):
    """What the reloader printed so far (non-blocking)."""
    out = state.setdefault("out", "")
    while select.select([proc.stdout], [], [], 0)[0]:
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        out += chunk.decode(errors="replace")
    state["out"] = out
    return out


def main():
    try:
        return run_tests(checks, test_manifests, test_live, test_reloader)
    finally:
        for p in [state.get("wsbal")] + state.get("echos", []):
            if p is not None:
                p.stop()
        if state.get("path") and os.path.exists(state["path"]):
            os.unlink(state["path"])


if __name__ == "__main__":
    sys.exit(main())

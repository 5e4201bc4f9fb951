"""The Debian package, built by tools/package from this tree: lintian has no error, every file is in
its place, and on this machine it installs (user, enabled unit), passes wsbal -t on its own
configuration, upgrades keeping a local change, and purges leaving nothing but the system user.

Needs dpkg and root (CI is Debian and root): skipped (exit 77) without them, or when a wsbal
package is installed here already, which this test would otherwise replace and purge. Man pages
are expected in the package when packaging/man/ exists in the tree (the man pages' sources).
Under a running systemd it also starts, reloads and stops the service; CI has none."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import wsbtest
from test_systemd import c, check_reload_commands, unit_values
from wsbtest import run_tests

SOURCE_ROOT = os.environ.get("WSBAL_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../.."))
UNIT = "/lib/systemd/system/wsbal.service"
CONF = "/etc/wsbal/wsbal.ini"
WANTS = "/etc/systemd/system/multi-user.target.wants/wsbal.service"
HAS_MAN = os.path.isdir(os.path.join(SOURCE_ROOT, "packaging/man"))
SYSTEMD_RUNS = os.path.isdir("/run/systemd/system")
SKIP = 77


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def dpkg(*args):
    """dpkg with args; waits (up to 120 s) while another helper's apt or dpkg holds the lock."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    deadline = time.monotonic() + 120
    while True:
        r = run(["dpkg", *args], timeout=300, env=env)
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(2)


def installed_version():
    r = run(["dpkg-query", "-W", "-f=${Status} ${Version}", "wsbal"])
    m = re.fullmatch(r"install ok installed (\S+)", r.stdout.strip()) if r.returncode == 0 else None
    return m.group(1) if m else None


def expected_files():
    files = {"/usr/sbin/wsbal", "/usr/bin/wsbalctl", UNIT, CONF, "/etc/default/wsbal",
             "/etc/logrotate.d/wsbal", "/usr/lib/sysusers.d/wsbal.conf",
             "/usr/share/doc/wsbal/copyright", "/usr/share/doc/wsbal/changelog.gz",
             "/usr/share/wsbal/monitoring/wsbal-dashboard.json",
             "/usr/share/wsbal/monitoring/wsbal-alerts.yml",
             "/usr/share/wsbal/monitoring/README.md"}
    if HAS_MAN:
        files |= {"/usr/share/man/man8/wsbal.8.gz", "/usr/share/man/man5/wsbal.ini.5.gz",
                  "/usr/share/man/man1/wsbalctl.1.gz"}
    return files


def test_contents(deb):
    listing = run(["dpkg", "-c", deb]).stdout.strip().split("\n")
    entries = {}
    for line in listing:
        fields = line.split(None, 5)
        path = fields[5].split(" -> ")[0].lstrip(".").rstrip("/")
        entries[path] = fields[0], fields[1]
    for path in sorted(expected_files()):
        c.true(f"the package holds {path}", path in entries, "\n".join(listing))
    for path in ("/usr/sbin/wsbal", "/usr/bin/wsbalctl"):
        c.eq(f"{path} is root's and executable", ("-rwxr-xr-x", "root/root"), entries.get(path))
    c.eq("the test peers are not in it (they need -Dinstall_tools=true)", [],
         [p for p in entries if "wsbal-echo" in p or "wsbal-load" in p])
    conffiles = run(["dpkg-deb", "--info", deb, "conffiles"]).stdout.split()
    c.eq("conffiles", sorted([CONF, "/etc/default/wsbal", "/etc/logrotate.d/wsbal"]),
         sorted(conffiles))
    depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    c.true("it depends on systemd-sysusers (through the systemd package or another)",
           "systemd | systemd-standalone-sysusers" in depends, depends)


def test_installed():
    c.true("the user wsbal exists, without a shell",
           re.search(r"^wsbal:x:\d+:\d+:.*:/usr/sbin/nologin$",
                     run(["getent", "passwd", "wsbal"]).stdout, re.M) is not None,
           run(["getent", "passwd", "wsbal"]).stdout)
    c.true("wsbal.service is enabled", os.path.islink(WANTS), WANTS)
    for path in sorted(expected_files()):
        c.true(f"{path} is installed", os.path.exists(path), "missing")
    r = run(["/usr/sbin/wsbal", "-t", "-c", CONF])
    c.eq("wsbal -t -c /etc/wsbal/wsbal.ini passes", (0, "configuration OK"),
         (r.returncode, (r.stdout + r.stderr).strip()))
    # The unit checks the file as the user it runs as.
    r = run(["runuser", "-u", "wsbal", "--", "/usr/sbin/wsbal", "-t", "-c", CONF])
    c.eq("and as the user wsbal (the unit's ExecStartPre)", (0, "configuration OK"),
         (r.returncode, (r.stdout + r.stderr).strip()))
    r = run(["/usr/bin/wsbalctl", "--help"])
    c.true("wsbalctl runs", "reload" in r.stdout + r.stderr, r.stdout + r.stderr)

    analyze = ["systemd-analyze", "verify"] + ([] if HAS_MAN else ["--man=no"]) + [UNIT]
    r = run(analyze)
    c.eq("systemd-analyze verify on the installed unit: no complaint", (0, ""),
         (r.returncode, (r.stdout + r.stderr).strip()))
    r = run(["systemd-analyze", "security", "--offline=true", UNIT])
    m = re.search(r"Overall exposure level for wsbal.service: ([\d.]+) (\S+)", r.stdout)
    print(f"systemd-analyze security: {m.group(1)} {m.group(2)}" if m else r.stdout, flush=True)
    c.true("systemd-analyze security: exposure at most 2.0", m and float(m.group(1)) <= 2.0,
           r.stdout[-2000:])

    # The access log's directory as the unit's LogsDirectory= makes it, with a log in it.
    os.makedirs("/var/log/wsbal", exist_ok=True)
    shutil.chown("/var/log/wsbal", "wsbal", "wsbal")
    with open("/var/log/wsbal/access.log", "w") as f:
        f.write("{}\n")
    shutil.chown("/var/log/wsbal/access.log", "wsbal", "wsbal")
    if shutil.which("logrotate"):
        r = run(["logrotate", "-d", "-f", "/etc/logrotate.d/wsbal"])
        out = r.stdout + r.stderr
        c.true("logrotate -d accepts /etc/logrotate.d/wsbal and would rotate access.log",
               r.returncode == 0 and "error" not in out and "/var/log/wsbal/access.log" in out,
               out[-2000:])
        c.true("its postrotate signals the main process through systemd",
               "systemctl kill --kill-whom=main --signal=SIGUSR1 wsbal.service" in out, out[-2000:])
    else:
        c.true("logrotate is installed (tools/lib.sh lists it)", False, "not found")

    # systemctl reload runs these lines: with the installed wsbal and a file of the test's own.
    wsbtest.WSBAL = "/usr/sbin/wsbal"
    with open(UNIT) as f:
        check_reload_commands(f.read(), wsbal="/usr/sbin/wsbal")


def test_under_systemd():
    """Only where systemd runs (not in CI): the service starts on a loopback file of the test's,
    a broken file fails its reload and leaves it running, and it stops."""
    port = wsbtest.free_port()
    echo = wsbtest.Echo("s1")
    saved = open(CONF).read()
    try:
        with open(CONF, "w") as f:
            f.write(f"[listen]\naddress = 127.0.0.1:{port}\n[admin]\naddress = off\n"
                    f"[backend:s1]\nurl = {echo.url}\n")
        run(["systemctl", "daemon-reload"])
        r = run(["systemctl", "restart", "wsbal.service"])
        c.eq("systemctl restart wsbal", 0, r.returncode)
        c.eq("it is active", "active", run(["systemctl", "is-active", "wsbal.service"]).stdout.strip())
        main = run(["systemctl", "show", "-p", "MainPID", "--value", "wsbal.service"]).stdout.strip()
        c.true("as the user wsbal", os.stat(f"/proc/{main}").st_uid ==
               int(run(["id", "-u", "wsbal"]).stdout), main)
        with open(CONF, "a") as f:
            f.write("[listen]\nno_such_key = 1\n")
        r = run(["systemctl", "reload", "wsbal.service"])
        c.true("systemctl reload fails on a broken file", r.returncode != 0, r.stderr)
        c.eq("and the service stays active", "active",
             run(["systemctl", "is-active", "wsbal.service"]).stdout.strip())
        c.eq("systemctl stop wsbal", 0, run(["systemctl", "stop", "wsbal.service"]).returncode)
    finally:
        run(["systemctl", "stop", "wsbal.service"])
        with open(CONF, "w") as f:
            f.write(saved)
        echo.stop()


def test_upgrade(deb, tmp):
    """A later version over this one: a local change to the configuration stays (conffile)."""
    with open(CONF, "a") as f:
        f.write("; a local change\n")
    tree = os.path.join(tmp, "tree")
    run(["dpkg-deb", "-R", deb, tree])
    control = os.path.join(tree, "DEBIAN/control")
    with open(control) as f:
        text = f.read()
    version = re.search(r"^Version: (\S+)$", text, re.M).group(1) + "+upgradetest"
    with open(control, "w") as f:
        f.write(re.sub(r"^Version: \S+$", f"Version: {version}", text, flags=re.M))
    newer = os.path.join(tmp, "wsbal_upgrade.deb")
    r = run(["dpkg-deb", "-b", tree, newer])
    c.eq("the newer package builds", 0, r.returncode)
    r = dpkg("-i", newer)
    c.eq("dpkg -i upgrades it", 0, r.returncode)
    if r.returncode != 0:
        print(r.stdout + r.stderr, flush=True)
    c.eq("to the newer version", version, installed_version())
    with open(CONF) as f:
        c.true("the local change to /etc/wsbal/wsbal.ini stays", "; a local change" in f.read(), CONF)
    c.true("the unit is still enabled", os.path.islink(WANTS), WANTS)
    r = run(["/usr/sbin/wsbal", "-t", "-c", CONF])
    c.eq("wsbal -t still passes", 0, r.returncode)


def test_purge():
    r = dpkg("-P", "wsbal")
    c.eq("dpkg -P wsbal", 0, r.returncode)
    if r.returncode != 0:
        print(r.stdout + r.stderr, flush=True)
    c.eq("it is gone", None, installed_version())
    left = [p for p in sorted(expected_files()) + ["/etc/wsbal", "/var/log/wsbal", WANTS]
            if os.path.lexists(p)]
    c.eq("nothing of it is left (configuration, logs, the enabled link)", [], left)
    # Debian's convention (haproxy, nginx): files elsewhere may still belong to the user.
    c.eq("the system user stays", 0, run(["getent", "passwd", "wsbal"]).returncode)


def main():
    missing = [p for p in ("dpkg", "dpkg-deb", "dpkg-buildpackage") if shutil.which(p) is None]
    if missing:
        print(f"SKIP: no {', '.join(missing)} here", flush=True)
        return SKIP
    if os.geteuid() != 0:
        print("SKIP: installing a package needs root", flush=True)
        return SKIP
    if installed_version() is not None:
        print(f"SKIP: wsbal {installed_version()} is installed here: not replacing it", flush=True)
        return SKIP
    tmp = tempfile.mkdtemp(prefix="wsbal-package-")
    try:
        out = os.path.join(tmp, "out")
        start = time.monotonic()
        r = run([os.path.join(SOURCE_ROOT, "tools/package"), out], timeout=900)
        print(r.stdout + r.stderr, flush=True)
        print(f"tools/package took {time.monotonic() - start:.0f} s", flush=True)
        c.eq("tools/package builds the package and lintian reports no error", 0, r.returncode)
        debs = glob.glob(os.path.join(out, "wsbal_*.deb"))
        if not c.eq("one wsbal .deb", 1, len(debs)):
            return c.summary()
        deb = debs[0]
        installed = []

        def install():
            r = dpkg("-i", deb)
            c.eq("dpkg -i installs it", 0, r.returncode)
            if r.returncode != 0:
                print(r.stdout + r.stderr, flush=True)
            installed.append(True)
            c.eq("installed, at the changelog's version",
                 run(["dpkg-deb", "-f", deb, "Version"]).stdout.strip(), installed_version())

        try:
            return run_tests(c, lambda: test_contents(deb), install, test_installed,
                             *([test_under_systemd] if SYSTEMD_RUNS else []),
                             lambda: test_upgrade(deb, tmp), test_purge)
        finally:
            if installed and installed_version() is not None:
                dpkg("-P", "wsbal")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

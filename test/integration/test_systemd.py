"""wsbal under systemd: sd_notify messages in order, privileges dropped, the unit file verified,
and its ExecReload lines run as systemd would (a broken file makes them fail)."""
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile

from wsbtest import OP_TEXT, T, WSBAL, Checks, Echo, RawClient, Wsbal, frame, run_tests

c = Checks()
SOURCE_ROOT = os.environ.get("WSBAL_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../.."))
# The unit as meson configured it (build/packaging/wsbal.service) and the directory it names for
# wsbal (PREFIX/sbin): the tests point that directory at this build's wsbal.
UNIT = os.environ.get("WSBAL_UNIT", "build/packaging/wsbal.service")
UNIT_SBINDIR = os.environ.get("WSBAL_UNIT_SBINDIR", "/usr/local/sbin")


def test_notify(echo):
    tmp = tempfile.mkdtemp(prefix="wsbal-notify-")
    path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(T)
    messages = []

    def receive_until(prefix):
        """Reads messages until one has a line starting with prefix; returns that line."""
        while True:
            msg = sock.recv(4096).decode()
            messages.append(msg)
            for line in msg.split("\n"):
                if line.startswith(prefix):
                    return line

    try:
        lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "7s"}},
                   extra_env={"NOTIFY_SOCKET": path})
        receive_until("READY=1")
        c.true("READY=1 comes with a STATUS line", "STATUS=" in messages[-1], messages[-1])
        c.eq("READY=1 is the first message", 1, len(messages))
        lb.proc.send_signal(signal.SIGHUP)
        receive_until("RELOADING=1")
        receive_until("READY=1")
        c.true("READY=1 again after RELOADING=1", "STATUS=" in messages[-1], messages[-1])
        lb.proc.send_signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        # The unit's TimeoutStopSec (15s) is shorter than a drain may be: the master asks for its
        # whole drain, its close handshakes (5 s) and its own kill, so systemd never cuts it short.
        extend = receive_until("EXTEND_TIMEOUT_USEC=")
        usec = int(extend.split("=", 1)[1])
        c.true("the stop asks for shutdown_timeout (7 s) + 5 s of close handshakes, at most 20 s",
               12_000_000 <= usec <= 20_000_000, extend)
        c.eq("wsbal exits 0", 0, lb.stop(sig=0))
        states = [line for m in messages for line in m.split("\n")
                  if not line.startswith(("STATUS=", "EXTEND_TIMEOUT_USEC="))]
        c.eq("notify states in order", ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], states)
    except socket.timeout:
        c.true("every notify message arrived", False, f"got {messages}")
    finally:
        sock.close()
        shutil.rmtree(tmp)


def test_upgrade_notify(echo):
    """A binary upgrade under systemd: the new master's READY=1 (sent once its workers accept,
    ignored by systemd under NotifyAccess=main as it is not the main process yet), then the old
    master's MAINPID= naming the new one, then the old master exits; the new one's later
    messages come from the new pid. The sender of each datagram comes with SO_PASSCRED."""
    tmp = tempfile.mkdtemp(prefix="wsbal-notify-up-")
    path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(path)
    sock.settimeout(T)
    got = []  # (sender pid, line)

    def receive_until(pred):
        while True:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            pid = next((struct.unpack("iII", d[:12])[0] for lvl, typ, d in anc
                        if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS), 0)
            lines = [(pid, x) for x in data.decode().split("\n") if x]
            got.extend(lines)
            hit = next((x for x in lines if pred(*x)), None)
            if hit:
                return hit

    new_pid = 0
    lb = None
    try:
        lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"shutdown_timeout": "5s"}},
                   extra_env={"NOTIFY_SOCKET": path})
        old_pid = lb.proc.pid
        receive_until(lambda pid, x: x == "READY=1")
        mark = len(got)
        lb.proc.send_signal(signal.SIGUSR2)
        sender, line = receive_until(lambda pid, x: x.startswith("MAINPID="))
        new_pid = int(line.split("=", 1)[1])
        c.true("MAINPID= names another process", new_pid not in (0, old_pid), line)
        c.eq("the old master sends it (the main process under NotifyAccess=main)", old_pid, sender)
        ready = [i for i, (pid, x) in enumerate(got[mark:]) if x == "READY=1" and pid == new_pid]
        main = [i for i, (pid, x) in enumerate(got[mark:]) if x.startswith("MAINPID=")]
        c.true("the new master's READY=1 comes before MAINPID=", ready and ready[0] < main[0],
               got[mark:])
        c.true("the log names the same new master",
               lb.wait_line(rf"handed over to pid {new_pid}") is not None)
        c.eq("the old master exits 0 after MAINPID=", 0, lb.proc.wait(3 * T))
        # The new master's periodic STATUS= (every 5 s) comes from the new pid.
        receive_until(lambda pid, x: pid == new_pid and x.startswith("STATUS="))
        c.true("the old master sent nothing after MAINPID=",
               all(pid != old_pid for pid, x in got[mark + main[0] + 1:]), got[mark:])
    except socket.timeout:
        c.true("every notify message arrived", False, f"got {got}")
    finally:
        if new_pid > 1:
            try:
                os.kill(new_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if lb is not None:
            lb.stop()
        sock.close()
        shutil.rmtree(tmp)


def uids(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:4]]
            if line.startswith("Groups:"):
                pass
    return None


def test_privileges(echo):
    if os.geteuid() != 0:
        print("SKIP privilege drop: not root", flush=True)
        return
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"user": "nobody", "group": "nogroup"}})
    try:
        procs = lb.pids()
        c.eq("master and two workers", 3, len(procs))
        c.eq("every process runs as nobody (real, effective, saved)", [[65534] * 3] * len(procs),
             [uids(p) for p in procs])
        cl = RawClient(lb.port)
        cl.request("/")
        c.eq("sessions work after the drop", 101, cl.read_head()[0])
        cl.send(frame(OP_TEXT, b"as nobody"))
        c.eq("and relay", (OP_TEXT, b"as nobody"), cl.read_frame()[1:])
        cl.close()
    finally:
        c.eq("wsbal exits 0 after dropping privileges", 0, lb.stop())

    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"user": "no-such-user-here"}},
               expect_start=False)
    c.eq("an unknown user is a start-up failure (exit 3)", 3, lb.stop(sig=0))
    c.true("and says which user", "no-such-user-here" in lb.output(), lb.output())

    # systemd's User= starts wsbal as that user: [wsbal] user naming it too is nothing to drop,
    # while another user cannot be reached without root (the unit grants no CAP_SETUID).
    as_nobody = ["sh", "-c", 'chmod 644 "$3" && exec setpriv --reuid=nobody --regid=nogroup '
                 '--init-groups "$@"', "sh"]
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"user": "nobody"}}, wrapper=as_nobody)
    try:
        c.eq("started as nobody with user = nobody: every process stays nobody",
             [[65534] * 3] * 3, [uids(p) for p in lb.pids()])
    finally:
        c.eq("and exits 0", 0, lb.stop())
    lb = Wsbal([("e1", echo.url)], sections={"wsbal": {"user": "root"}}, wrapper=as_nobody,
               expect_start=False)
    c.eq("started as nobody with user = root: a start-up failure (exit 3)", 3, lb.stop(sig=0))


def unit_values(text, key):
    """Every value of key in the unit's [Service] section, in order."""
    out, section = [], None
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line.startswith(key + "="):
            out.append(line[len(key) + 1:])
    return out


def unit_command(value, env):
    """One Exec*= line as systemd runs it: its prefixes ("-" ignores a failure) taken off,
    ${NAME} replaced as one word, a bare $NAME split into words."""
    words = shlex.split(value)
    prefix = re.match(r"[-@:+!]*", words[0]).group(0)
    words[0] = words[0][len(prefix):]
    argv = []
    for w in words:
        bare = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if bare:
            argv += env.get(bare.group(1), "").split()
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), w))
    return argv, "-" in prefix


def run_unit_commands(text, key, env, sbindir=None, wsbal=WSBAL):
    """Runs the unit's key= lines one after the other as systemd does, stopping at the first
    failure; returns (exit status, output). sbindir/wsbal: run this wsbal for the unit's."""
    env = dict(env)
    for e in unit_values(text, "Environment"):
        name, _, value = e.partition("=")
        env.setdefault(name, value)
    output = ""
    for value in unit_values(text, key):
        argv, may_fail = unit_command(value, env)
        if sbindir is not None and argv[0] == os.path.join(sbindir, "wsbal"):
            argv[0] = wsbal
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        output += r.stdout + r.stderr
        if r.returncode != 0 and not may_fail:
            return r.returncode, output
    return 0, output


def check_reload_commands(text, sbindir=None, wsbal=WSBAL):
    """The unit's ExecReload lines, against a running wsbal: they reload a good file and fail,
    without signalling wsbal, on a broken one."""
    echo = Echo("r1")
    lb = Wsbal([("r1", echo.url)])
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WSBAL_")}
        env.update({"CONFIG": lb.config, "MAINPID": str(lb.proc.pid)})
        with lb.cond:
            mark = len(lb.lines)
        rc, out = run_unit_commands(text, "ExecReload", env, sbindir, wsbal)
        c.eq("ExecReload succeeds on a good file", 0, rc)
        c.true("and wsbal reloads", lb.wait_line(r"reloaded ", start=mark) is not None, lb.output())
        with open(lb.config, "a") as f:
            f.write("[listen]\nno_such_key = 1\n")
        with lb.cond:
            mark = len(lb.lines)
        rc, out = run_unit_commands(text, "ExecReload", env, sbindir, wsbal)
        c.true("ExecReload fails on a broken file (systemctl reload reports it)", rc != 0, out)
        c.true("naming the bad line", f"{lb.config}:" in out and "no_such_key" in out, out)
        c.true("and wsbal is not signalled: no reload is attempted",
               lb.wait_line(r"reload", start=mark, timeout=1) is None, lb.output())
        c.true("wsbal still runs", lb.proc.poll() is None, lb.output())
    finally:
        lb.stop()
        echo.stop()


def test_unit_file():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        c.true("systemd-analyze is installed", False, "not found")
        return
    with open(UNIT) as f:
        unit = f.read()
    for key in ("Type=notify", "NotifyAccess=main", "KillMode=mixed", "LimitNOFILE=",
                "User=wsbal", "Group=wsbal", "LogsDirectory=wsbal", "NoNewPrivileges=yes",
                "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"):
        c.true(f"unit has {key.strip()}", key in unit, "missing")
    c.true("unit reads an optional /etc/default/wsbal (under its sysconfdir)",
           re.search(r"^EnvironmentFile=-/\S*/default/wsbal$", unit, re.M) is not None, unit)
    c.true("unit runs wsbal from sbin", all(v.startswith(os.path.join(UNIT_SBINDIR, "wsbal"))
                                            for v in unit_values(unit, "ExecStart")), unit)
    reload = unit_values(unit, "ExecReload")
    c.true("ExecReload checks the file (wsbal -t) before it signals",
           len(reload) == 2 and " -t " in reload[0] and "kill -HUP $MAINPID" in reload[1], reload)
    # wsbal extends the stop timeout itself (EXTEND_TIMEOUT_USEC): the unit's only bounds a hang.
    timeout = unit_values(unit, "TimeoutStopSec")
    c.true("TimeoutStopSec is modest (at most 30s)",
           len(timeout) == 1 and int(timeout[0].rstrip("s")) <= 30, str(timeout))
    # verify wants the programs it names to exist: point them at this build. The man pages it
    # would check (Documentation=) are the package test's (test_package.py).
    tmp = tempfile.mkdtemp(prefix="wsbal-unit-")
    try:
        path = os.path.join(tmp, "wsbal.service")
        with open(path, "w") as f:
            f.write(unit.replace(os.path.join(UNIT_SBINDIR, "wsbal"), os.path.abspath(WSBAL)))
        r = subprocess.run([analyze, "verify", "--man=no", path], capture_output=True, text=True,
                           timeout=60)
        c.eq("systemd-analyze verify passes without a complaint", (0, ""),
             (r.returncode, (r.stdout + r.stderr).strip()))
    finally:
        shutil.rmtree(tmp)
    check_reload_commands(unit, UNIT_SBINDIR, os.path.abspath(WSBAL))


def main():
    echo = Echo("e1")
    try:
        return run_tests(c, lambda: test_notify(echo), lambda: test_upgrade_notify(echo),
                         lambda: test_privileges(echo), test_unit_file)
    finally:
        echo.stop()


if __name__ == "__main__":
    sys.exit(main())

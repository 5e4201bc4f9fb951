"""wsbal under systemd: sd_notify messages in order, privileges dropped, the unit file verified."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from wsbtest import OP_TEXT, T, WSBAL, Checks, Echo, RawClient, Wsbal, frame, run_tests

c = Checks()
SOURCE_ROOT = os.environ.get("WSBAL_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../.."))


def test_notify(echo):
    tmp = tempfile.mkdtemp(prefix="wsbal-notify-")
    path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(T)
    messages = []

    def receive_until(state):
        while True:
            msg = sock.recv(4096).decode()
            messages.append(msg)
            if state in msg.split("\n"):
                return msg

    try:
        lb = Wsbal([("e1", echo.url)], extra_env={"NOTIFY_SOCKET": path})
        ready = receive_until("READY=1")
        c.true("READY=1 comes with a STATUS line", "STATUS=" in ready, ready)
        c.eq("READY=1 is the first message", ready, messages[0])
        lb.proc.send_signal(signal.SIGHUP)
        receive_until("RELOADING=1")
        after = receive_until("READY=1")
        c.true("READY=1 again after RELOADING=1", "STATUS=" in after, after)
        lb.proc.send_signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        c.eq("wsbal exits 0", 0, lb.stop(sig=0))
        states = [line for m in messages for line in m.split("\n") if not line.startswith("STATUS=")]
        c.eq("notify states in order", ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], states)
    except socket.timeout:
        c.true("every notify message arrived", False, f"got {messages}")
    finally:
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


def test_unit_file():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        c.true("systemd-analyze is installed", False, "not found")
        return
    with open(os.path.join(SOURCE_ROOT, "packaging/wsbal.service")) as f:
        unit = f.read()
    for key in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "KillMode=mixed",
                "LimitNOFILE=", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                "PrivateTmp=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE"):
        c.true(f"unit has {key}", key in unit, "missing")
    timeout = [l for l in unit.split("\n") if l.startswith("TimeoutStopSec=")]
    c.true("TimeoutStopSec is longer than the default shutdown_timeout (30s)",
           timeout and int(timeout[0].split("=")[1].rstrip("s")) > 30, str(timeout))
    # verify wants the programs it names to exist: point them at this build.
    tmp = tempfile.mkdtemp(prefix="wsbal-unit-")
    try:
        path = os.path.join(tmp, "wsbal.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/bin/wsbal", os.path.abspath(WSBAL)))
        r = subprocess.run([analyze, "verify", path], capture_output=True, text=True, timeout=60)
        c.eq("systemd-analyze verify passes without a complaint", (0, ""),
             (r.returncode, (r.stdout + r.stderr).strip()))
    finally:
        shutil.rmtree(tmp)


def main():
    echo = Echo("e1")
    try:
        return run_tests(c, lambda: test_notify(echo), lambda: test_privileges(echo), test_unit_file)
    finally:
        echo.stop()


if __name__ == "__main__":
    sys.exit(main())

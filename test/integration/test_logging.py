"""The error log: log_format = text|json in master and workers, switched by a reload; hostile
and over-long messages still one valid JSON object a line; <N> priorities when stderr is the
journal (JOURNAL_STREAM naming stderr's own file), none when it names another."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

from wsbtest import (SANITIZER_MARKERS, T, WSBAL, Checks, Echo, Wsbal, free_port, run_tests,
                     wait_for)

c = Checks()
TEXT_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (master|worker \d+) "
                     r"(error|warn|info|debug): ")
TS_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse_json_line(line):
    """The object of one line, or None when it is not exactly one JSON object of the format."""
    try:
        o = json.loads(line)
    except ValueError:
        return None
    if not isinstance(o, dict) or not TS_RX.match(o.get("ts", "")):
        return None
    if o.get("level") not in ("error", "warn", "info", "debug") or "msg" not in o:
        return None
    if o.get("role") == "master" and "worker" not in o:
        return o
    if o.get("role") == "worker" and isinstance(o.get("worker"), int):
        return o
    return None


def reopen_lines(w):
    """Sends SIGUSR1, which makes the master and each worker log a line; returns the lines since."""
    with w.cond:
        mark = len(w.lines)
    w.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: sum("access log reopened" in l for l in w.lines[mark:]) >= w.workers)
    with w.cond:
        return w.lines[mark:]


def test_reload_switches_format(echo):
    w = Wsbal([("a", echo.url)], workers=2)
    try:
        start = w.output().split("\n")
        c.true("starts in text", all(TEXT_RX.match(l) for l in start if l), "\n".join(start))
        verdict, since = w.reload([("a", echo.url)], {"wsbal": {"log_format": "json"}})
        c.true("reload to json", verdict is not None and verdict.startswith("reloaded"), verdict)
        objs = [parse_json_line(l) for l in since]
        c.true("after the reload every master line is JSON", since and all(objs), "\n".join(since))
        # Workers take it too: SIGUSR1 makes each log a line (an idle worker reads the reload then).
        lines = reopen_lines(w)
        objs = [parse_json_line(l) for l in lines]
        c.true("worker lines are JSON", lines and all(objs), "\n".join(lines))
        workers = sorted(o["worker"] for o in objs
                         if o and o["role"] == "worker" and "reopened" in o["msg"])
        c.eq("one reopen line from each worker, numbered", [0, 1], workers)
        # And back to text without a restart.
        verdict, since = w.reload([("a", echo.url)], {"wsbal": {"log_format": "text"}})
        c.true("back to text", since and all(TEXT_RX.match(l) for l in since), "\n".join(since))
        lines = reopen_lines(w)
        c.true("worker lines text again", lines and all(TEXT_RX.match(l) for l in lines),
               "\n".join(lines))
    finally:
        c.eq("wsbal stops with 0", 0, w.stop())


class RawWsbal:
    """wsbal with its stderr in a file: the test reads the bytes as written."""

    def __init__(self, config, env=None, stderr_path=None):
        self.out_path = stderr_path
        self.out = open(stderr_path, "wb")
        e = {k: v for k, v in os.environ.items() if not k.startswith("WSBAL_")}
        e.pop("JOURNAL_STREAM", None)
        e.update(env or {})
        self.proc = subprocess.Popen([WSBAL.encode(), b"-c", config], stdout=subprocess.DEVNULL,
                                     stderr=self.out, env=e)

    def data(self):
        with open(self.out_path, "rb") as f:
            return f.read()

    def wait(self, what, pred):
        """what names it for the reader; returns whether pred(output) came true in time."""
        return wait_for(lambda: pred(self.data()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(T)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.out.close()
        found = [l for l in self.data().split(b"\n") if any(m.encode() in l for m in
                                                           SANITIZER_MARKERS)]
        c.true("no sanitizer reports", not found, b"\n".join(found[:20]))
        return rc


def config_text(echo, fmt, port):
    return (f"[wsbal]\nworkers = 2\nlog_format = {fmt}\n[listen]\naddress = 127.0.0.1:{port}\n"
            f"[admin]\naddress = off\n[upstream]\nhealth_check = off\n"
            f"[backend:a]\nurl = {echo.url}\n").encode()


def reload_at(echo, path, tmp):
    """Starts a JSON-logging wsbal on the configuration at path (bytes), reloads it once, stops
    it; returns its stderr's lines (bytes), checking it ended with a newline."""
    with open(path, "wb") as f:
        f.write(config_text(echo, "json", free_port()))
    w = RawWsbal(path, stderr_path=os.path.join(tmp, "err"))
    try:
        c.true("started", w.wait("listening", lambda d: b"listening on" in d), w.data())
        w.proc.send_signal(signal.SIGHUP)
        c.true("reloaded", w.wait("reloaded", lambda d: b"reloaded" in d), w.data())
    finally:
        c.eq("stops with 0", 0, w.stop())
    lines = w.data().split(b"\n")
    c.eq("ends with a newline", b"", lines[-1])
    return lines[:-1]


def test_hostile_message(echo):
    """The configuration's path is in the "reloaded PATH" line: give it a quote, a backslash, a
    newline, control bytes and bytes that are not UTF-8."""
    tmp = tempfile.mkdtemp(prefix="wsbal-log-")
    try:
        path = os.path.join(tmp.encode(), b'a "q" \\ \n\x01\x1b[31m \xff\xc3 .ini')
        lines = reload_at(echo, path, tmp)
        objs = [parse_json_line(l.decode("utf-8")) for l in lines]
        c.true("every line one JSON object", lines and all(objs), lines)
        msg = [o["msg"] for o in objs if o and o["msg"].startswith("reloaded")]
        want = "reloaded " + tmp + '/a "q" \\ \n\x01\x1b[31m \ufffd\ufffd .ini: generation'
        c.true("the message is whole, bad bytes as U+FFFD", msg and msg[0].startswith(want),
               repr(msg))
    finally:
        shutil.rmtree(tmp)


def test_long_message(echo):
    """A path of about 3000 bytes of 2-byte characters: the line is cut where a character starts,
    says how much went, and stays valid JSON (and UTF-8)."""
    tmp = tempfile.mkdtemp(prefix="wsbal-log-")
    try:
        d = tmp
        for _ in range(12):
            d = os.path.join(d, "é" * 120)
        os.makedirs(d)
        path = os.path.join(d, "x.ini").encode()
        lines = reload_at(echo, path, tmp)
        line = [l for l in lines if b"reloaded" in l][0]
        o = parse_json_line(line.decode("utf-8"))  # strict: a cut character would raise
        c.true("the long line is one JSON object", o is not None, line[:200])
        m = re.search(r" \[truncated (\d+) bytes\]$", o["msg"] if o else "")
        c.true("it ends with the marker", m is not None, o["msg"][-80:] if o else "")
        full = len(("reloaded " + path.decode() + ": generation 2, 1 backend").encode())
        kept = len(o["msg"].encode()) - len(m.group(0)) if m else 0
        c.true("kept at most 2048 bytes, the marker counts the rest",
               m is not None and kept <= 2048 and kept + int(m.group(1)) == full,
               f"kept {kept}, full {full}, marker {m.group(0) if m else None}")
        c.true("lines stay bounded", max(len(l) for l in lines) < 2300,
               str(max(len(l) for l in lines)))
    finally:
        shutil.rmtree(tmp)


def test_journal(echo):
    """JOURNAL_STREAM naming the file stderr is: every line, master's and workers', starts with
    its priority; naming another file: none (a child whose stderr was redirected)."""
    tmp = tempfile.mkdtemp(prefix="wsbal-log-")
    try:
        for fmt in ("text", "json"):
            for right in (True, False):
                cfg = os.path.join(tmp, "c.ini")
                with open(cfg, "wb") as f:
                    f.write(config_text(echo, fmt, free_port()))
                err = os.path.join(tmp, f"err-{fmt}-{right}")
                open(err, "wb").close()
                st = os.stat(err)
                ino = st.st_ino if right else st.st_ino + 1
                w = RawWsbal(cfg.encode(), env={"JOURNAL_STREAM": f"{st.st_dev}:{ino}"},
                             stderr_path=err)
                try:
                    c.true("started", w.wait("listening", lambda d: b"listening on" in d), w.data())
                    w.proc.send_signal(signal.SIGUSR1)
                    w.wait("reopen lines", lambda d: d.count(b"reopened") >= 2)
                finally:
                    c.eq("stops with 0", 0, w.stop())
                lines = w.data().decode().split("\n")[:-1]
                what = f"{fmt}, JOURNAL_STREAM {'matching' if right else 'another file'}"
                if right:
                    ok = all(re.match(r"<[3467]>", l) for l in lines)
                    body = [l[3:] for l in lines]
                    prios = {l[:3] for l in lines if "reopened" in l or "listening" in l}
                    c.eq(f"{what}: info lines are <6>", {"<6>"}, prios)
                    c.true(f"{what}: the stop's info line too", any(
                        l.startswith("<6>") and "stopping" in l for l in lines), "\n".join(lines))
                else:
                    ok = not any(l.startswith("<") for l in lines)
                    body = lines
                c.true(f"{what}: {'every' if right else 'no'} line prefixed", lines and ok,
                       "\n".join(lines))
                if fmt == "json":
                    c.true(f"{what}: JSON after the prefix",
                           all(parse_json_line(l) for l in body), "\n".join(body))
                    c.true(f"{what}: worker lines there", any(
                        (parse_json_line(l) or {}).get("role") == "worker" for l in body))
                else:
                    c.true(f"{what}: text after the prefix", all(TEXT_RX.match(l) for l in body),
                           "\n".join(body))
    finally:
        shutil.rmtree(tmp)


def main():
    echo = Echo("e1")
    try:
        return run_tests(c, lambda: test_reload_switches_format(echo),
                         lambda: test_hostile_message(echo), lambda: test_long_message(echo),
                         lambda: test_journal(echo))
    finally:
        echo.stop()


if __name__ == "__main__":
    raise SystemExit(main())

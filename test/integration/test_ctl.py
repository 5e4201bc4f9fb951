"""wsbalctl: the exact requests of every command (against a scripted fake admin server), its
tables and error messages, exit statuses 0/1/2, and a live wsbal: status, backends, enable and
disable, weight, sessions, kill, failover, drain (--wait), remove, reload, a token (option, file,
environment), an unknown session id, a closed admin port."""
import http.client
import json
import os
import re
import socket
import socketserver
import subprocess
import tempfile
import threading
import time

from wsbtest import (OP_CLOSE, OP_TEXT, SANITIZER_MARKERS, Checks, Echo, RawClient, Wsbal, frame,
                     free_port, run_tests, wait_for)

CTL = os.environ.get("WSBALCTL", "build/wsbalctl")
c = Checks()
ctl_sanitizer_lines = []


def ctl(*args, env=None):
    """Runs wsbalctl; returns (exit status, stdout, stderr). WSBAL_* comes only from env."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("WSBAL_")}
    e.update(env or {})
    p = subprocess.run([CTL, *args], capture_output=True, text=True, timeout=60, env=e)
    ctl_sanitizer_lines.extend(line for line in (p.stdout + p.stderr).split("\n")
                               if any(m in line for m in SANITIZER_MARKERS))
    return p.returncode, p.stdout, p.stderr


def table(text):
    """A table's rows as dicts keyed by the header's titles (cells hold no blanks)."""
    lines = [line for line in text.split("\n") if line]
    head = lines[0].split()
    return [dict(zip(head, line.split())) for line in lines[1:]]


def aligned(text, right):
    """True when every cell starts where its title starts, or for the columns in right (numbers)
    ends where its title ends."""
    lines = [line for line in text.split("\n") if line]
    head = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", lines[0])]
    for line in lines[1:]:
        cells = [(m.start(), m.end()) for m in re.finditer(r"\S+", line)]
        if len(cells) != len(head):
            return False
        for (title, hs, he), (cs, ce) in zip(head, cells):
            if (ce != he) if title in right else (cs != hs):
                return False
    return not any(line != line.rstrip() for line in lines)


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


# ---- a fake admin server: records each request, answers what the test scripted ----

class Fake:
    def __init__(self):
        self.requests = []
        self.reply = self.json_reply(200, {})
        self.queue = []  # answers for the next requests, in order; then reply
        fake = self
        lock = threading.Lock()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                method, target, version = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                want = int(headers.get("content-length", "0"))
                while len(body) < want:
                    body += self.request.recv(65536)
                fake.requests.append({"method": method, "target": target, "version": version,
                                      "headers": headers, "body": body})
                with lock:
                    answer = fake.queue.pop(0) if fake.queue else fake.reply
                if callable(answer):  # a function of the target
                    answer = answer(target)
                if answer:
                    self.request.sendall(answer)
                self.request.shutdown(socket.SHUT_WR)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.addr = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def json_reply(status, obj, reason="Whatever"):
        body = (json.dumps(obj) + "\n").encode()
        return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body

    def take(self):
        r, self.requests = self.requests, []
        return r

    def close(self):
        self.server.shutdown()
        self.server.server_close()


SESSION_ID = "0010000000000001"

# command line, method, target, JSON body (None: none sent)
COMMANDS = [
    (["status"], "GET", "/api/v1/status", None),
    (["backends"], "GET", "/api/v1/backends", None),
    (["sessions"], "GET", "/api/v1/sessions?limit=1000&offset=0", None),
    (["sessions", "--backend", "e1"], "GET", "/api/v1/sessions?backend=e1&limit=1000&offset=0",
     None),
    (["sessions", "--pool", "p 1", "--backend", "e1"], "GET",
     "/api/v1/sessions?backend=e1&pool=p%201&limit=1000&offset=0", None),
    (["add", "e3", "ws://10.0.0.3:9000/app"], "POST", "/api/v1/backends",
     {"name": "e3", "url": "ws://10.0.0.3:9000/app"}),
    (["add", "--weight", "7", "e3", "wss://h.example:443"], "POST", "/api/v1/backends",
     {"name": "e3", "url": "wss://h.example:443", "weight": 7}),
    (["remove", "e1"], "DELETE", "/api/v1/backends/e1", None),
    (["remove", "e1", "--sessions", "failover"], "DELETE", "/api/v1/backends/e1?sessions=failover",
     None),
    (["enable", "e1"], "POST", "/api/v1/backends/e1/enable", None),
    (["disable", "e1"], "POST", "/api/v1/backends/e1/disable", None),
    (["drain", "e1"], "POST", "/api/v1/backends/e1/drain", None),
    (["weight", "e1", "5"], "PATCH", "/api/v1/backends/e1", {"weight": 5}),
    (["kill", SESSION_ID], "DELETE", f"/api/v1/sessions/{SESSION_ID}", None),
    (["failover", SESSION_ID], "POST", f"/api/v1/sessions/{SESSION_ID}/failover", None),
    (["failover", SESSION_ID, "--to", "e2"], "POST", f"/api/v1/sessions/{SESSION_ID}/failover",
     {"backend": "e2"}),
    (["reload"], "POST", "/api/v1/reload", None),
    (["routes"], "GET", "/api/v1/routes", None),
    (["enable", "a b#c/é"], "POST", "/api/v1/backends/a%20b%23c%2F%C3%A9/enable", None),
]


def test_exact_requests():
    fake = Fake()
    try:
        for argv, method, target, body in COMMANDS:
            name = " ".join(argv)
            fake.reply = Fake.json_reply(501, {"error": f"{argv[0]} is not built yet"},
                                         "Not Implemented")
            rc, out, err = ctl("-a", fake.addr, *argv)
            reqs = fake.take()
            if not c.eq(f"{name}: one request", 1, len(reqs)):
                continue
            r = reqs[0]
            h = r["headers"]
            c.eq(f"{name}: method and target", (method, target), (r["method"], r["target"]))
            c.eq(f"{name}: HTTP/1.1, Host, Connection: close, no token",
                 ("HTTP/1.1", fake.addr, "close", None),
                 (r["version"], h.get("host"), h.get("connection"), h.get("authorization")))
            c.eq(f"{name}: Content-Length", str(len(r["body"])), h.get("content-length"))
            if body is None:
                c.eq(f"{name}: no body", b"", r["body"])
            else:
                c.eq(f"{name}: JSON body", body, json.loads(r["body"]))
                c.eq(f"{name}: Content-Type", "application/json", h.get("content-type"))
            c.eq(f"{name}: 501 is exit 1 with the server's message, nothing on stdout",
                 (1, f"wsbalctl: 501: {argv[0]} is not built yet\n", ""), (rc, err, out))

        # --json gives the raw body even for an error answer, and still exits 1.
        fake.reply = Fake.json_reply(501, {"error": "adding is not built yet"})
        rc, out, err = ctl("-a", fake.addr, "--json", "add", "x", "ws://h:1")
        c.eq("--json on 501: raw body, exit 1, message",
             (1, {"error": "adding is not built yet"}, "wsbalctl: 501: adding is not built yet\n"),
             (rc, json.loads(out), err))
        fake.take()

        # The token: -T, WSBAL_TOKEN, -T over WSBAL_TOKEN; the address from WSBAL_ADMIN.
        fake.reply = Fake.json_reply(200, {"backends": []})
        ctl("-a", fake.addr, "-T", "tok-1", "backends")
        ctl("backends", env={"WSBAL_ADMIN": fake.addr, "WSBAL_TOKEN": "tok-2"})
        ctl("--token", "tok-3", "backends", env={"WSBAL_ADMIN": fake.addr, "WSBAL_TOKEN": "tok-2"})
        ctl("backends", env={"WSBAL_ADMIN": f"http://{fake.addr}/", "WSBAL_TOKEN": ""})
        c.eq("Authorization from -T, WSBAL_TOKEN, -T over it, none when empty",
             ["Bearer tok-1", "Bearer tok-2", "Bearer tok-3", None],
             [r["headers"].get("authorization") for r in fake.take()])
        test_token_file(fake)
        rc, out, err = ctl("-a", fake.addr, "-T", "bad\r\nX-Evil: 1", "backends")
        c.eq("a token with CR LF is a usage error, nothing sent",
             (2, "wsbalctl: the token holds a control character", []),
             (rc, err.split("\n")[0], fake.take()))
    finally:
        fake.close()


def test_token_file(fake):
    """--token-file and WSBAL_TOKEN_FILE: one trailing newline stripped, precedence
    --token > --token-file > WSBAL_TOKEN > WSBAL_TOKEN_FILE, bad files exit 2 and send nothing."""
    with tempfile.TemporaryDirectory() as d:
        def write(name, data):
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(data)
            return path
        f1, f2 = write("t1", b"file-1\n"), write("t2", b"file-2\r\n")
        f3 = write("t3", b"file 3\n\n")
        fake.reply = Fake.json_reply(200, {"backends": []})
        env = {"WSBAL_ADMIN": fake.addr}
        runs = [
            (["--token-file", f1], {}),
            (["--token-file", f2], {}),
            (["-T", "opt", "--token-file", f1], {"WSBAL_TOKEN": "env", "WSBAL_TOKEN_FILE": f2}),
            (["--token-file", f1], {"WSBAL_TOKEN": "env", "WSBAL_TOKEN_FILE": f2}),
            ([], {"WSBAL_TOKEN": "env", "WSBAL_TOKEN_FILE": f2}),
            ([], {"WSBAL_TOKEN_FILE": f2}),
            ([], {"WSBAL_TOKEN": "", "WSBAL_TOKEN_FILE": f1}),
        ]
        results = [ctl(*args, "backends", env={**env, **e})[0] for args, e in runs]
        c.eq("token files: exit 0 each", [0] * len(runs), results)
        c.eq("token files: one newline stripped; --token > --token-file > WSBAL_TOKEN > "
             "WSBAL_TOKEN_FILE",
             ["Bearer file-1", "Bearer file-2", "Bearer opt", "Bearer file-1", "Bearer env",
              "Bearer file-2", "Bearer file-1"],
             [r["headers"].get("authorization") for r in fake.take()])
        rc, out, err = ctl("--token-file", f3, "backends", env=env)
        c.true("a token file with two newlines: only one stripped, the other is refused",
               rc == 2 and "control character" in err, (rc, err))
        empty, missing = write("empty", b""), os.path.join(d, "missing")
        nl = write("nl", b"\n")
        for path, args, e, msg in [
                (empty, ["--token-file", empty], {}, f"wsbalctl: the token file {empty} is empty\n"),
                (nl, [], {"WSBAL_TOKEN_FILE": nl}, f"wsbalctl: the token file {nl} is empty\n"),
                (missing, ["--token-file", missing], {},
                 f"wsbalctl: cannot read the token file {missing}: No such file or directory\n"),
                (d, [], {"WSBAL_TOKEN_FILE": d},
                 f"wsbalctl: cannot read the token file {d}: Is a directory\n")]:
            c.eq(f"bad token file {os.path.basename(path)}: exit 2, says why",
                 (2, "", msg), ctl(*args, "backends", env={**env, **e}))
        c.eq("bad token files send nothing", [], fake.take())


def test_drain_wait():
    """drain --wait against scripted answers: polls the backend until no session is left, sums a
    section's addresses, gives up after --timeout with exit 1."""
    fake = Fake()
    ack = Fake.json_reply(202, {"status": "draining", "workers": 2, "backends": ["e1"]})
    one = lambda n: Fake.json_reply(200, {"name": "e1", "sessions": n})  # noqa: E731
    many = lambda a, b: Fake.json_reply(200, {"backends": [  # noqa: E731
        {"name": "s#10.0.0.1", "sessions": a}, {"name": "s#10.0.0.2", "sessions": b}]})
    try:
        fake.queue = [ack, one(3), one(1)]
        fake.reply = one(0)
        t0 = time.monotonic()
        rc, out, err = ctl("-a", fake.addr, "drain", "e1", "--wait")
        took = time.monotonic() - t0
        reqs = [(r["method"], r["target"]) for r in fake.take()]
        c.eq("drain --wait: POST drain, then GET the backend until 0",
             [("POST", "/api/v1/backends/e1/drain")] + [("GET", "/api/v1/backends/e1")] * 3, reqs)
        c.true("drain --wait: exit 0, says drained", rc == 0 and err == ""
               and out.endswith("e1: drained, no live sessions left\n"), (rc, out, err))
        c.true("drain --wait: polls about twice a second", 0.8 < took < 5, took)

        fake.queue = [ack, many(0, 2), many(1, 0)]
        fake.reply = many(0, 0)
        rc, out, err = ctl("-a", fake.addr, "drain", "s", "--wait")
        c.eq("drain --wait of a section: waits for every address", (0, 4),
             (rc, len(fake.take())))

        fake.queue = [ack]
        fake.reply = one(2)
        t0 = time.monotonic()
        rc, out, err = ctl("-a", fake.addr, "drain", "e1", "--wait", "--timeout", "1")
        took = time.monotonic() - t0
        c.eq("drain --wait --timeout 1: exit 1, says how many are left",
             (1, "wsbalctl: drain e1: 2 sessions still live after 1 s\n"), (rc, err))
        c.true("drain --wait --timeout 1: gives up after about 1 s", 0.9 < took < 4, took)
        fake.take()

        fake.queue = [ack, Fake.json_reply(404, {"error": "no such backend"})]
        c.eq("drain --wait: the backend removed meanwhile: exit 1, the server's message",
             (1, "wsbalctl: 404: no such backend\n"),
             ctl("-a", fake.addr, "drain", "e1", "--wait")[::2])
        fake.queue = [ack]
        fake.reply = Fake.json_reply(200, {"name": "e1"})
        rc, out, err = ctl("-a", fake.addr, "drain", "e1", "--wait")
        c.true("drain --wait: an answer without sessions: exit 1", rc == 1 and "sessions" in err,
               err)
        fake.take()
        fake.queue = [Fake.json_reply(404, {"error": "no such backend"})]
        c.eq("drain --wait of an unknown backend: exit 1, no waiting", (1, 1),
             (ctl("-a", fake.addr, "drain", "e9", "--wait")[0], len(fake.take())))
        fake.take()

        # The server's 404 for a session that is not live, in wsbalctl's words; another 404
        # (an unknown backend to move it to) keeps the server's.
        fake.queue = [Fake.json_reply(404, {"error": "no such session"})]
        c.eq("kill of a session that is not live: exit 1, no such session, one request",
             ((1, "", f"wsbalctl: no such session: {SESSION_ID}\n"), 1),
             (ctl("-a", fake.addr, "kill", SESSION_ID), len(fake.take())))
        fake.queue = [Fake.json_reply(404, {"error": "no such backend"})]
        c.eq("failover --to an unknown backend: exit 1, the server's message",
             (1, "", "wsbalctl: 404: no such backend\n"),
             ctl("-a", fake.addr, "failover", SESSION_ID, "--to", "e9"))
        fake.take()
    finally:
        fake.close()


def test_answers():
    """How answers are shown: the sessions table, notes, odd and broken answers."""
    fake = Fake()
    try:
        sessions = {"total": 3, "partial": True, "sessions": [
            {"id": "0000000000000001", "worker": 0, "client": "127.0.0.1:40000", "path": "/a?x=1",
             "backend": "e1", "started": "2024-05-01T10:00:00.000Z", "messages_in": 12,
             "messages_out": 11, "bytes_in": 1200, "bytes_out": 1100, "failovers": 0},
            {"id": "0010000000000002", "worker": 1, "client": "[::1]:40001",
             "path": "/evil\u001b[31m", "backend": None, "started": "2024-05-01T10:00:01.000Z",
             "messages_in": 0, "messages_out": 0, "bytes_in": 0, "bytes_out": 123456789012,
             "failovers": 2}]}
        fake.reply = Fake.json_reply(200, sessions)
        rc, out, err = ctl("-a", fake.addr, "sessions")
        rows = table(out)
        c.eq("sessions: exit 0, the header", (0, "ID WORKER CLIENT PATH POOL ROUTE BACKEND STARTED "
                                                "MSGS_IN MSGS_OUT BYTES_IN BYTES_OUT FAILOVERS"),
             (rc, " ".join(out.split("\n")[0].split())))
        c.eq("sessions: rows", [
            {"ID": "0000000000000001", "WORKER": "0", "CLIENT": "127.0.0.1:40000", "PATH": "/a?x=1",
             "POOL": "-", "ROUTE": "-", "BACKEND": "e1", "STARTED": "2024-05-01T10:00:00.000Z", "MSGS_IN": "12",
             "MSGS_OUT": "11", "BYTES_IN": "1200", "BYTES_OUT": "1100", "FAILOVERS": "0"},
            {"ID": "0010000000000002", "WORKER": "1", "CLIENT": "[::1]:40001",
             "PATH": "/evil?[31m", "POOL": "-", "ROUTE": "-", "BACKEND": "-", "STARTED": "2024-05-01T10:00:01.000Z",
             "MSGS_IN": "0", "MSGS_OUT": "0", "BYTES_IN": "0", "BYTES_OUT": "123456789012",
             "FAILOVERS": "2"}], rows)
        c.true("sessions: columns aligned, numbers right",
               aligned(out, {"WORKER", "MSGS_IN", "MSGS_OUT", "BYTES_IN", "BYTES_OUT", "FAILOVERS"}),
               out)
        c.true("sessions: no control byte reaches the terminal", "\x1b" not in out, repr(out))
        c.eq("sessions: partial and cut lists are noted on stderr",
             "wsbalctl: 2 of 3 sessions shown\n"
             "wsbalctl: some workers did not answer in time: the list is partial\n", err)

        fake.reply = Fake.json_reply(200, {"total": 0, "partial": False, "sessions": []})
        c.eq("no sessions", (0, "no live sessions\n", ""), ctl("-a", fake.addr, "sessions"))

        fake.reply = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: 25\r\n\r\nupstream went away\r\nmore\n")
        c.eq("a text error body: its first line", (1, "", "wsbalctl: 502: upstream went away\n"),
             ctl("-a", fake.addr, "status"))
        fake.reply = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        c.eq("an empty error body: the reason phrase",
             (1, "", "wsbalctl: 503: Service Unavailable\n"), ctl("-a", fake.addr, "status"))

        fake.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\": 1,"
        rc, out, err = ctl("-a", fake.addr, "status")
        c.true("malformed JSON in a 200: exit 1 and says so",
               rc == 1 and "not what wsbalctl expects" in err and out == "", (rc, out, err))
        c.eq("malformed JSON with --json: passed on as it came", (0, "{\"a\": 1,\n"),
             ctl("-a", fake.addr, "--json", "status")[:2])
        fake.reply = Fake.json_reply(200, {"something": "else"})
        rc, out, err = ctl("-a", fake.addr, "backends")
        c.true("JSON without the expected list: exit 1", rc == 1 and "\"backends\"" in err, err)

        body = json.dumps({"backends": []}).encode()
        fake.reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body
        c.eq("no Content-Length: the body runs to EOF", (0, body.decode() + "\n"),
             ctl("-a", fake.addr, "--json", "backends")[:2])
        fake.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"backends\""
        rc, out, err = ctl("-a", fake.addr, "backends")
        c.true("a body cut short: exit 1", rc == 1 and "middle of its answer" in err, err)
        fake.reply = b""
        rc, out, err = ctl("-a", fake.addr, "backends")
        c.eq("no answer at all: exit 1",
             (1, f"wsbalctl: the admin API at {fake.addr} closed the connection without answering\n"),
             (rc, err))
        fake.reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        rc, out, err = ctl("-a", fake.addr, "backends")
        c.true("a chunked answer: exit 1, said", rc == 1 and "chunked" in err, err)
        fake.reply = b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
        rc, out, err = ctl("-a", fake.addr, "backends")
        c.true("not HTTP: exit 1, malformed", rc == 1 and "malformed" in err, err)
        fake.take()
    finally:
        fake.close()


def session(n):
    return {"id": f"{n:016x}", "worker": 0, "client": "127.0.0.1:4000", "path": f"/s{n}",
            "pool": "default", "route": "r", "backend": "e1",
            "started": "2024-05-01T10:00:00.000Z", "messages_in": n, "messages_out": 0,
            "bytes_in": 0, "bytes_out": 0, "failovers": 0}


def page(total, offset, nxt, ids, partial=False):
    return {"total": total, "partial": partial, "offset": offset, "limit": 2,
            "next_offset": nxt, "sessions": [session(n) for n in ids]}


def test_pages():
    """sessions follows next_offset page after page: one table or one JSON object, a session a
    page repeats shown once, an error on a later page, and the bound of 1,000 pages."""
    fake = Fake()
    script = [page(5, 0, 2, [1, 2]), page(5, 2, 4, [2, 3]),  # 3 opened: 2 comes again
              page(5, 4, None, [4, 5], partial=True)]
    try:
        fake.queue = [Fake.json_reply(200, p) for p in script]
        rc, out, err = ctl("-a", fake.addr, "sessions", "--pool", "default")
        c.eq("every page asked for in turn, at each next_offset",
             ["/api/v1/sessions?pool=default&limit=1000&offset=0",
              "/api/v1/sessions?pool=default&limit=1000&offset=2",
              "/api/v1/sessions?pool=default&limit=1000&offset=4"],
             [r["target"] for r in fake.take()])
        c.eq("one table of the three pages, each session once; partial noted",
             (0, [f"/s{n}" for n in range(1, 6)],
              "wsbalctl: some workers did not answer in time: the list is partial\n"),
             (rc, [r["PATH"] for r in table(out)], err))
        fake.queue = [Fake.json_reply(200, p) for p in script]
        rc, out, err = ctl("-a", fake.addr, "--json", "sessions")
        doc = json.loads(out) if rc == 0 else {}
        c.eq("--json: one object of a page's shape holding every page's sessions",
             (0, 5, True, 0, 5, None, 3, [session(n) for n in range(1, 6)], ""),
             (rc, doc.get("total"), doc.get("partial"), doc.get("offset"), doc.get("limit"),
              doc.get("next_offset"), doc.get("pages"), doc.get("sessions"), err))
        fake.queue = [Fake.json_reply(200, page(3, 0, 2, [1, 2])),
                      Fake.json_reply(503, {"error": "too many session lists at once"})]
        rc, out, err = ctl("-a", fake.addr, "--json", "sessions")
        c.eq("an error on a later page: exit 1, its body on stdout with --json, its message",
             (1, {"error": "too many session lists at once"},
              "wsbalctl: 503: too many session lists at once\n"),
             (rc, json.loads(out) if out else None, err))
        fake.take()
        fake.queue = [Fake.json_reply(200, page(9, 0, 0, [1, 2]))]
        rc, out, err = ctl("-a", fake.addr, "sessions")
        c.eq("a next_offset that does not move on ends the walk",
             (0, 2, 1, "wsbalctl: 2 of 9 sessions shown\n"),
             (rc, len(table(out)), len(fake.take()), err))

        def endless(target):
            offset = int(target.rsplit("offset=", 1)[1])
            return Fake.json_reply(200, page(10 ** 6, offset, offset + 1, [offset]))
        fake.reply = endless
        rc, out, err = ctl("-a", fake.addr, "sessions")
        c.eq("at most 1,000 pages, and says so",
             (0, 1000, 1000, "wsbalctl: stopped after 1000 pages, 1000 sessions\n"
              "wsbalctl: 1000 of 1000000 sessions shown\n"),
             (rc, len(table(out)), len(fake.take()), err))
        rc, out, err = ctl("-a", fake.addr, "--json", "sessions")
        doc = json.loads(out) if rc == 0 else {}
        c.eq("--json at the bound: next_offset says where to go on",
             (0, 1000, 1000, 1000, ""), (rc, doc.get("pages"), len(doc.get("sessions", [])),
                                         doc.get("next_offset"), err))
        fake.take()
    finally:
        fake.close()


def test_cursor_pages():
    """With a server that gives next_after, sessions follows it (after=) rather than the
    offset; the same bound applies, and --json says where to go on by cursor."""
    fake = Fake()

    def cursor_page(total, ids, nxt):
        p = page(total, 0, None, ids)
        p["next_after"] = nxt
        return p
    script = [cursor_page(5, [1, 2], "0.0000000000000002"),
              cursor_page(5, [3, 4], "1.0000000000000004"), cursor_page(5, [5], None)]
    try:
        fake.queue = [Fake.json_reply(200, p) for p in script]
        rc, out, err = ctl("-a", fake.addr, "sessions")
        c.eq("each page asked for past the last one's cursor",
             ["/api/v1/sessions?limit=1000&offset=0",
              "/api/v1/sessions?limit=1000&after=0.0000000000000002",
              "/api/v1/sessions?limit=1000&after=1.0000000000000004"],
             [r["target"] for r in fake.take()])
        c.eq("one table of the three pages", (0, [f"/s{n}" for n in range(1, 6)], ""),
             (rc, [r["PATH"] for r in table(out)], err))
        fake.queue = [Fake.json_reply(200, cursor_page(9, [1, 2], "0.0000000000000002"))] * 2
        rc, out, err = ctl("-a", fake.addr, "sessions")
        c.eq("a cursor that does not move on ends the walk",
             (0, 2, 2, "wsbalctl: 2 of 9 sessions shown\n"),
             (rc, len(table(out)), len(fake.take()), err))

        def endless(target):
            n = int(target.rsplit(".", 1)[1], 16) + 1 if "after=" in target else 1
            return Fake.json_reply(200, cursor_page(10 ** 6, [n], f"0.{n:016x}"))
        fake.reply = endless
        rc, out, err = ctl("-a", fake.addr, "--json", "sessions")
        doc = json.loads(out) if rc == 0 else {}
        c.eq("--json at the bound: next_after says where to go on",
             (0, 1000, 1000, None, f"0.{1000:016x}", ""),
             (rc, doc.get("pages"), len(doc.get("sessions", [])), doc.get("next_offset"),
              doc.get("next_after"), err))
        fake.take()
    finally:
        fake.close()


def test_usage():
    fake = Fake()
    cases = [
        ([], "no command given"),
        (["frobnicate"], 'unknown command "frobnicate"'),
        (["enable"], "enable takes 1 operand"),
        (["enable", "a", "b"], "enable takes 1 operand"),
        (["status", "extra"], "status takes 0 operands"),
        (["add", "e3"], "add takes 2 operands"),
        (["status", "--to", "e1"], "--to does not go with status"),
        (["backends", "--backend", "e1"], "--backend does not go with backends"),
        (["add", "e3", "ws://h:1", "--weight", "0"], "--weight takes a whole number from 1 to 1000"),
        (["add", "e3", "ws://h:1", "--weight", "1001"], "--weight takes a whole number"),
        (["add", "e3", "ws://h:1", "--weight", "2x"], "--weight takes a whole number"),
        (["add", "e3", "ws://h:1", "--weight", "-1"], "--weight takes a whole number"),
        (["remove", "e1", "--sessions", "drop"], "--sessions takes keep, failover or close"),
        (["--bogus", "status"], "unknown option --bogus"),
        (["-x", "status"], "unknown option -x"),
        (["status", "--backend"], "--backend needs a value"),
        (["enable", ""], "enable: an operand is empty"),
        (["weight", "e1"], "weight takes 2 operands"),
        (["weight", "e1", "0"], "weight takes a whole number from 1 to 1000, not \"0\""),
        (["weight", "e1", "x"], "weight takes a whole number from 1 to 1000"),
        (["weight", "e1", "99999999999999999999999"], "weight takes a whole number"),
        (["drain", "e1", "--timeout", "5"], "--timeout goes with --wait"),
        (["drain", "e1", "--wait", "--timeout", "0"], "--timeout takes a whole number from 1"),
        (["enable", "e1", "--wait"], "--wait does not go with enable"),
        (["status", "--token-file"], "--token-file needs a value"),
    ]
    try:
        for argv, message in cases:
            rc, out, err = ctl("-a", fake.addr, *argv)
            c.true(f"usage {argv}: exit 2, says {message!r}",
                   rc == 2 and err.startswith("wsbalctl: " + message) and out == "", (rc, out, err))
        for bad in ("127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:80a", "https://127.0.0.1:1",
                    ":8081", "[::1"):
            rc, out, err = ctl("-a", bad, "status")
            c.true(f"bad address {bad!r}: exit 2", rc == 2 and "bad admin address" in err, err)
        c.eq("usage errors send nothing", [], fake.take())
        rc, out, err = ctl("--help")
        c.true("--help: exit 0, usage on stdout", rc == 0 and out.startswith("usage: wsbalctl")
               and "failover SESSION [--to NAME]" in out and err == "", (rc, out, err))
        c.eq("--version", (0, "wsbalctl 0.1.0\n", ""), ctl("-V"))
    finally:
        fake.close()


def test_unreachable():
    port = free_port()
    addr = f"127.0.0.1:{port}"
    c.eq("closed port: exit 1, cannot reach",
         (1, "", f"wsbalctl: cannot reach the admin API at {addr}: Connection refused\n"),
         ctl("-a", addr, "status"))
    c.eq("closed port from WSBAL_ADMIN",
         (1, f"wsbalctl: cannot reach the admin API at {addr}: Connection refused\n"),
         ctl("backends", env={"WSBAL_ADMIN": addr})[::2])
    rc, out, err = ctl("-a", f"[::1]:{port}", "status")
    c.true("an IPv6 address in brackets",
           rc == 1 and err.startswith(f"wsbalctl: cannot reach the admin API at [::1]:{port}: "), err)
    rc, out, err = ctl("-a", "no-such-host.invalid:8081", "status")
    c.true("unknown host: exit 1, cannot reach",
           rc == 1 and err.startswith("wsbalctl: cannot reach the admin API at "
                                      "no-such-host.invalid:8081: "), err)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8081))
            free8081 = True
        except OSError:
            free8081 = False
    if free8081:
        c.eq("the default address is 127.0.0.1:8081",
             (1, "wsbalctl: cannot reach the admin API at 127.0.0.1:8081: Connection refused\n"),
             ctl("status")[::2])
    else:
        print("SKIP default address check: port 8081 is in use here", flush=True)


# ---- against a live wsbal ----

def session_rows(a, *extra):
    rc, out, err = ctl("-a", a, "sessions", *extra)
    if rc != 0:
        return None
    return [] if out == "no live sessions\n" else table(out)


def test_live(e1, e2):
    ap = free_port()
    a = f"127.0.0.1:{ap}"
    sections = {"admin": {"address": a}}
    backends = [("e1", e1.url), ("e2", e2.url)]
    lb = Wsbal(backends, sections=sections)
    try:
        rc, out, err = ctl("-a", a, "status")
        fields = dict(line.split(None, 1) for line in out.split("\n\n")[0].split("\n") if line)
        c.eq("status: version, generation", (0, "0.1.0", "1"),
             (rc, fields.get("version"), fields.get("generation")))
        c.true("status: totals shown", fields.get("reloads") == "ok=0 error=0"
               and fields.get("sessions") == "0" and "ok=0" in fields.get("handshakes", ""), out)
        workers = table(out.split("\n\n")[1])
        c.eq("status: the workers with their pids",
             sorted(lb.pids()[1:]), sorted(int(w["PID"]) for w in workers))
        c.true("status: workers aligned", aligned(out.split("\n\n")[1], {"SLOT", "PID", "SESSIONS"}),
               out)

        rc, out, err = ctl("-a", a, "backends")
        rows = table(out)
        c.eq("backends: table", (0, [("e1", e1.url, "1", "yes", "yes"), ("e2", e2.url, "1", "yes",
                                                                           "yes")]),
             (rc, [(r["NAME"], r["URL"], r["WEIGHT"], r["ENABLED"], r["UP"]) for r in rows]))
        c.true("backends: aligned", aligned(out, {"WEIGHT", "MAX", "SESSIONS", "TOTAL", "FAILOVERS",
                                                  "FAILURES"}), out)
        rc, out, err = ctl("-a", a, "backends", "--json")
        c.eq("backends --json is the API's answer",
             (0, json.loads(request(ap, "GET", "/api/v1/backends")[1])), (rc, json.loads(out)))

        rc, out, err = ctl("-a", a, "disable", "e1")
        c.eq("disable e1: the row shows it", (0, "e1", "no"),
             (rc, table(out)[0]["NAME"], table(out)[0]["ENABLED"]))
        c.eq("disable e1: the API agrees", False,
             json.loads(request(ap, "GET", "/api/v1/backends/e1")[1])["enabled"])
        rc, out, err = ctl("-a", a, "enable", "e1")
        c.eq("enable e1", (0, "yes", True),
             (rc, table(out)[0]["ENABLED"],
              json.loads(request(ap, "GET", "/api/v1/backends/e1")[1])["enabled"]))
        c.eq("unknown backend: exit 1 with the server's message",
             (1, "", "wsbalctl: 404: no such backend\n"), ctl("-a", a, "enable", "nope"))
        c.eq("unknown backend in sessions --backend", (1, "wsbalctl: 404: no such backend\n"),
             ctl("-a", a, "sessions", "--backend", "nope")[::2])

        # A live session: listed, filtered, moved, killed.
        c.eq("no sessions yet", [], session_rows(a))
        cl = RawClient(lb.port)
        cl.request("/ctl/path?q=1")
        c.eq("session upgrades", 101, cl.read_head()[0])
        cl.send(frame(OP_TEXT, b"hello"))
        c.eq("echoed", b"hello", cl.read_frame()[2])
        rows = session_rows(a)
        c.eq("sessions: one row", 1, len(rows or []))
        if rows:
            s = rows[0]
            c.true("sessions: its fields",
                   re.fullmatch(r"[0-9a-f]{16}", s["ID"]) and s["CLIENT"] == "127.0.0.1"
                   and s["PATH"] == "/ctl/path?q=1" and s["BACKEND"] in ("e1", "e2")
                   and s["MSGS_IN"] == "1" and s["MSGS_OUT"] == "1" and s["FAILOVERS"] == "0", s)
            here, other = s["BACKEND"], "e2" if s["BACKEND"] == "e1" else "e1"
            c.eq("sessions --backend: its own backend", [s["ID"]],
                 [r["ID"] for r in session_rows(a, "--backend", here)])
            c.eq("sessions --backend: the other backend", [], session_rows(a, "--backend", other))
            rc, out, err = ctl("-a", a, "--json", "sessions")
            c.eq("sessions --json", (0, 1, s["ID"]),
                 (rc, json.loads(out)["total"], json.loads(out)["sessions"][0]["id"]))

            rc, out, err = ctl("-a", a, "failover", s["ID"], "--to", other)
            c.eq("failover: exit 0", (0, ""), (rc, err))
            moved = wait_for(lambda: (session_rows(a) or [{}])[0].get("BACKEND") == other, 5, 0.1)
            c.true("failover: the session is on the other backend", moved, session_rows(a))
            cl.send(frame(OP_TEXT, b"after"))
            c.eq("failover: the client still talks", b"after", cl.read_frame()[2])
            c.eq("failover: counted", "1", (session_rows(a) or [{}])[0].get("FAILOVERS"))

            rc, out, err = ctl("-a", a, "kill", s["ID"])
            c.eq("kill: exit 0", (0, ""), (rc, err))
            fin, op, payload = cl.read_frame()
            c.eq("kill: the client gets a close", OP_CLOSE, op)
            c.true("kill: the list empties", wait_for(lambda: session_rows(a) == [], 5, 0.1),
                   session_rows(a))
        cl.close()

        rc, out, err = ctl("-a", a, "drain", "e2")
        c.true("drain: exit 0, acknowledged", rc == 0 and "draining" in out, (rc, out, err))
        c.eq("drain: e2 takes no new sessions", False,
             json.loads(request(ap, "GET", "/api/v1/backends/e2")[1])["enabled"])
        c.eq("enable after drain", 0, ctl("-a", a, "enable", "e2")[0])

        # weight: the row shows it, the API agrees; back to 1 so the reload below discards only
        # what it expects.
        rc, out, err = ctl("-a", a, "weight", "e1", "7")
        row = (table(out) if out else [{}])[0]
        c.eq("weight e1 7: the row shows it", (0, "e1", "7"), (rc, row.get("NAME"), row.get("WEIGHT")))
        c.eq("weight e1 7: the API agrees", 7,
             json.loads(request(ap, "GET", "/api/v1/backends/e1")[1])["weight"])
        c.eq("weight of an unknown backend", (1, "wsbalctl: 404: no such backend\n"),
             ctl("-a", a, "weight", "nope", "2")[::2])
        c.eq("weight e1 1 again", 0, ctl("-a", a, "weight", "e1", "1")[0])

        # A session id that is well formed but not live: exit 1, said so.
        for cmd in ("kill", "failover"):
            c.eq(f"{cmd} of a session that is not live: exit 1, no such session",
                 (1, "", "wsbalctl: no such session: 00000000000000ff\n"),
                 ctl("-a", a, cmd, "00000000000000ff"))
        c.eq("kill of a malformed session id: exit 1, no such session",
             (1, "wsbalctl: no such session: xyz\n"), ctl("-a", a, "kill", "xyz")[::2])

        # drain --wait returns once the backend's live session has moved to the other.
        cl = RawClient(lb.port)
        cl.request("/ctl/drain")
        c.eq("drain --wait: a session upgrades", 101, cl.read_head()[0])
        rows = session_rows(a) or [{}]
        here = rows[0].get("BACKEND")
        rc, out, err = ctl("-a", a, "drain", str(here), "--wait", "--timeout", "20")
        c.true("drain --wait: exit 0 once drained", rc == 0 and out.endswith(
            f"{here}: drained, no live sessions left\n"), (rc, out, err))
        c.eq("drain --wait: none left on it when it returns", 0,
             json.loads(request(ap, "GET", f"/api/v1/backends/{here}")[1])["sessions"])
        c.true("drain --wait: the session lives on the other backend",
               [r.get("BACKEND") for r in session_rows(a) or []] == ["e2" if here == "e1" else "e1"],
               session_rows(a))
        cl.send(frame(OP_TEXT, b"still"))
        c.eq("drain --wait: the client still talks", b"still", cl.read_frame()[2])
        cl.close()
        c.eq("enable after drain --wait", 0, ctl("-a", a, "enable", str(here))[0])
        wait_for(lambda: session_rows(a) == [], 5, 0.1)

        # add, then remove it again.
        rc, out, err = ctl("-a", a, "add", "e3", e2.url, "--weight", "4")
        names = [b["name"] for b in json.loads(request(ap, "GET", "/api/v1/backends")[1])["backends"]]
        c.true("add: exit 0, e3 listed with its weight",
               rc == 0 and "e3" in names and table(out)[0]["WEIGHT"] == "4", (rc, out, err))
        rc, out, err = ctl("-a", a, "add", "e3", e2.url)
        c.true("add of a name in use: exit 1 with the server's 409",
               rc == 1 and err.startswith("wsbalctl: 409:"), (rc, out, err))
        c.eq("remove e3", 0, ctl("-a", a, "remove", "e3")[0])

        rc, out, err = ctl("-a", a, "remove", "e1")
        c.true("remove e1: exit 0", rc == 0 and err == "", (rc, out, err))
        c.eq("remove e1: gone from the list", ["e2"],
             [r["NAME"] for r in table(ctl("-a", a, "backends")[1])])

        # reload: a broken file answers 422 with FILE:LINE lines; the good file brings e1 back.
        lb.write_config(backends, sections, raw=open(lb.config).read() + "[wsbal]\nbogus = 1\n")
        rc, out, err = ctl("-a", a, "reload")
        lines = err.split("\n")
        c.eq("reload of a broken file: exit 1, the error",
             (1, "wsbalctl: 422: reload failed: the running configuration stays"), (rc, lines[0]))
        c.true("reload of a broken file: FILE:LINE lines",
               len(lines) > 1 and re.match(r"  " + re.escape(lb.config) + r":\d+: ", lines[1]), err)
        lb.write_config(backends, sections)
        rc, out, err = ctl("-a", a, "reload")
        c.true("reload: ok with the generation, and the runtime change it discards",
               rc == 0 and re.fullmatch(r"reload ok: configuration generation \d+\n"
                                        r"  discarded: backend e1: back \(deleted through the API\)\n",
                                        out), (rc, out, err))
        c.eq("reload restores e1", ["e1", "e2"],
             [r["NAME"] for r in table(ctl("-a", a, "backends")[1])])
    finally:
        lb.stop()
    rc, out, err = ctl("-a", a, "status")
    c.eq("wsbal stopped: exit 1, cannot reach",
         (1, f"wsbalctl: cannot reach the admin API at {a}: Connection refused\n"), (rc, err))


def test_token(e1):
    ap = free_port()
    a = f"127.0.0.1:{ap}"
    lb = Wsbal([("e1", e1.url)], sections={"admin": {"address": a, "token": "s3cret"}})
    msg = "wsbalctl: 401: missing or wrong bearer token (set WSBAL_TOKEN or -T)\n"
    try:
        c.eq("no token: 401 explained, exit 1", (1, "", msg), ctl("-a", a, "backends"))
        c.eq("wrong token: 401", (1, msg), ctl("-a", a, "-T", "nope", "backends")[::2])
        c.eq("WSBAL_TOKEN", 0, ctl("-a", a, "backends", env={"WSBAL_TOKEN": "s3cret"})[0])
        c.eq("-T", 0, ctl("-a", a, "-T", "s3cret", "status")[0])
        c.eq("-T over a wrong WSBAL_TOKEN", 0,
             ctl("-a", a, "-T", "s3cret", "backends", env={"WSBAL_TOKEN": "nope"})[0])
        c.eq("a write needs it too", (1, msg), ctl("-a", a, "disable", "e1")[::2])
    finally:
        lb.stop()


def main():
    e1, e2 = Echo("e1"), Echo("e2")
    try:
        rc = run_tests(c, test_usage, test_unreachable, test_exact_requests, test_pages, test_cursor_pages,
                       test_drain_wait, test_answers,
                       lambda: test_live(e1, e2), lambda: test_token(e1),
                       lambda: c.true("no sanitizer reports from wsbalctl", not ctl_sanitizer_lines,
                                      "\n".join(ctl_sanitizer_lines[:20])))
    finally:
        e1.stop()
        e2.stop()
    return rc


if __name__ == "__main__":
    raise SystemExit(main())

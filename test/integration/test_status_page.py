"""The status page (GET / on the admin server) in a real browser: Debian's headless Chromium loads
it from a running wsbal, and the page it builds must show what the API says; its buttons, clicked
through the DevTools protocol, must change the backends and show the API's errors."""
import asyncio
import base64
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from html.parser import HTMLParser

import websockets

from wsbtest import Checks, Echo, RawClient, Wsbal, free_port, run_tests

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Screenshots are kept for a person to look at; the folder is ignored by git.
ARTIFACTS = os.path.join(os.getcwd(), "status_page_artifacts")
SOURCE_ROOT = os.environ.get("WSBAL_SOURCE_ROOT", os.path.join(os.getcwd(), "..", ".."))
# A URL path whose text is "x&lt;i&gt;y" but shows as "x<i>y" if the page ever inserts data as
# HTML (the entities are decoded then): the check that every value goes in as text.
TRAP_PATH = "/x&lt;i&gt;y"
T = 20

c = Checks()


def request(port, method, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def api(port, method, path):
    s, _, body = request(port, method, path)
    return s, json.loads(body)


def chromium(*args, timeout=90):
    """Runs headless Chromium once with a fresh profile; returns its standard output."""
    with tempfile.TemporaryDirectory(prefix="wsbal-chromium-") as profile:
        r = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                           capture_output=True, timeout=timeout)
    if r.returncode != 0:
        print(r.stderr.decode(errors="replace")[-2000:], flush=True)
    c.eq(f"chromium {args[0]} exits 0", 0, r.returncode)
    return r.stdout.decode(errors="replace")


class Page(HTMLParser):
    """What a dumped DOM shows: the texts of the cells of each table body, the bars' widths, the
    buttons, the totals cards, the text of every element that has an id, and which are hidden."""

    VOID = {"meta", "link", "br", "hr", "img", "input"}  # elements without an end tag

    def __init__(self, html):
        super().__init__()
        self.rows = {"backends": [], "workers": []}
        self.widths = []
        self.buttons = []
        self.ids, self.hidden = {}, set()
        self.totals = []  # the cards' texts: number, name, number, name, ...
        self._stack = []  # (tag, id, classes) of the open elements, innermost last
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "").split()
        if "id" in a:
            self.ids[a["id"]] = ""
            if "hidden" in cls:
                self.hidden.add(a["id"])
        body = self._body()
        if tag == "tr" and body:
            self.rows[body].append([])
        elif tag == "td" and body:
            self.rows[body][-1].append("")
        elif tag == "div" and "fill" in cls:
            m = re.search(r"width:\s*([0-9.]+)%", a.get("style", ""))
            self.widths.append(float(m.group(1)) if m else None)
        elif tag == "button":
            self.buttons.append((a.get("data-backend"), a.get("data-action")))
        elif tag == "div" and cls in (["n"], ["k"]):
            self.totals.append("")
        if tag not in self.VOID:
            self._stack.append((tag, a.get("id"), cls))

    def handle_endtag(self, tag):
        while self._stack and self._stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for _, ident, _ in self._stack:
            if ident is not None:
                self.ids[ident] += data
        body = self._body()
        if body and any(t == "td" for t, _, _ in self._stack):
            self.rows[body][-1][-1] += data
        if self._stack and self._stack[-1][0] == "div" and self._stack[-1][2] in (["n"], ["k"]):
            self.totals[-1] += data

    def _body(self):
        """The id of the table body being read ("backends" or "workers"), or None."""
        return next((i for t, i, _ in self._stack if t == "tbody" and i in self.rows), None)

    def total(self, name):
        """The number shown on the totals card called name."""
        pairs = dict(zip(self.totals[1::2], self.totals[0::2]))
        return pairs.get(name)


def start_backends():
    e1 = Echo("e1")
    e2 = Echo("e2")
    return e1, e2


def stop_all(held, *processes):
    """Closes the held sessions, then stops wsbal and the backends."""
    for cl in held:
        cl.close()
    for p in processes:
        p.stop()


def hold_sessions(lb, ap):
    """Two sessions on e1 and one on e2, steered by disabling the other backend meanwhile."""
    held = []

    def open_sessions(n):
        for _ in range(n):
            cl = RawClient(lb.port)
            cl.request("/")
            c.eq("a held session upgrades", 101, cl.read_head()[0])
            held.append(cl)

    c.eq("disable e2", 200, request(ap, "POST", "/api/v1/backends/e2/disable")[0])
    open_sessions(2)
    c.eq("enable e2", 200, request(ap, "POST", "/api/v1/backends/e2/enable")[0])
    c.eq("disable e1", 200, request(ap, "POST", "/api/v1/backends/e1/disable")[0])
    open_sessions(1)
    c.eq("enable e1", 200, request(ap, "POST", "/api/v1/backends/e1/enable")[0])
    bs = api(ap, "GET", "/api/v1/backends")[1]["backends"]
    c.eq("the API counts 2 sessions on e1 and 1 on e2", [("e1", 2), ("e2", 1)],
         [(b["name"], b["sessions"]) for b in bs])
    return held


def test_served():
    e1, e2 = start_backends()
    ap = free_port()
    lb = Wsbal([("e1", e1.url), ("e2", e2.url)], sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        with open(os.path.join(SOURCE_ROOT, "master", "status_page.html"), "rb") as f:
            page = f.read()
        s, h, body = request(ap, "GET", "/")
        c.eq("GET /: 200 text/html", (200, "text/html; charset=utf-8"), (s, h.get("content-type")))
        c.true("GET / answers master/status_page.html byte for byte", body == page,
               f"{len(body)} bytes, the file has {len(page)}")
        s, h, body = request(ap, "POST", "/")
        c.eq("POST /: 405", 405, s)
        c.true("the page loads nothing from elsewhere",
               not re.search(rb"(src|href)\s*=|@import|url\(|https?://", page),
               "found an external reference")
    finally:
        lb.stop()
        e1.stop()
        e2.stop()


def test_dom_and_screenshot():
    e1, e2 = start_backends()
    ap = free_port()
    lb = Wsbal([("e1", e1.url), ("e2", e2.url + TRAP_PATH)],
               sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    held = []
    try:
        held = hold_sessions(lb, ap)
        st = api(ap, "GET", "/api/v1/status")[1]
        bs = api(ap, "GET", "/api/v1/backends")[1]["backends"]
        url = f"http://127.0.0.1:{ap}/"
        dom = chromium("--virtual-time-budget=5000", "--dump-dom", url)
        p = Page(dom)
        c.eq("no problem shown", {"problem", "message"}, p.hidden & {"problem", "message"})
        c.eq("version", st["version"], p.ids.get("version"))
        c.eq("configuration generation", str(st["generation"]), p.ids.get("generation"))
        c.true("uptime", re.fullmatch(r"(\d+[dhm] )*\d+s", p.ids.get("uptime", "")), p.ids.get("uptime"))
        c.eq("totals: live sessions, handshakes ok and errors, reloads, worker restarts",
             ["3", "3", "0", "0", "0"],
             [p.total(k) for k in ("live sessions", "handshakes ok", "handshake errors",
                                   "reloads", "worker restarts")])
        rows = p.rows["backends"]
        expected = [[b["name"], b["url"], "yes" if b["up"] else "no", "yes", b["breaker"],
                     str(b["weight"]), str(b["sessions"]), str(b["failovers"])] for b in bs]
        c.eq("a row per backend: name, url, up, enabled, breaker, weight, sessions, failovers",
             expected, [r[:8] for r in rows])
        c.eq("the URL with entities shows as text, never as markup",
             ("e2", "ws://127.0.0.1:%d%s" % (e2.port, TRAP_PATH)), tuple(rows[1][:2]) if rows[1:] else None)
        c.eq("bars: e1 (2 sessions) full width, e2 (1) half", [100.0, 50.0], p.widths)
        c.eq("buttons: enable, disable, drain for each backend",
             [(n, a) for n in ("e1", "e2") for a in ("enable", "disable", "drain")], p.buttons)
        c.eq("a row per worker: slot, pid, sessions, draining",
             [[str(w["slot"]), str(w["pid"]), str(w["sessions"]), "no"] for w in st["workers"]],
             p.rows["workers"])
        c.eq("two workers", 2, len(p.rows["workers"]))

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "status_page.png")
        if os.path.exists(shot):
            os.unlink(shot)
        chromium("--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1200,800", url)
        check_png(shot, 1200, 800)
    finally:
        stop_all(held, lb, e1, e2)


def check_png(path, width, height):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        c.true(f"screenshot {path} written", False, repr(e))
        return
    c.eq("screenshot is a PNG of the window's size", (b"\x89PNG", width, height),
         (data[:4], int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")))
    c.true("screenshot is more than a blank page", len(data) > 20000, f"{len(data)} bytes")
    print(f"screenshot kept: {path}", flush=True)


def test_token():
    e1 = Echo("e1")
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], sections={"admin": {"address": f"127.0.0.1:{ap}",
                                                      "token": "s3cret"}})
    try:
        c.eq("the page itself needs no token", 200, request(ap, "GET", "/")[0])
        url = f"http://127.0.0.1:{ap}/"
        p = Page(chromium("--virtual-time-budget=5000", "--dump-dom", url))
        c.eq("a token is set: the page says it needs it",
             "this page needs the admin token: the API answered 401", p.ids.get("problem"))
        c.true("the notice is visible", "problem" not in p.hidden, "hidden")
        c.eq("no buttons, no rows", ([], []), (p.buttons, p.rows["backends"]))
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "status_page_token.png")
        chromium("--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1200,800", url)
        check_png(shot, 1200, 800)
    finally:
        lb.stop()
        e1.stop()


class DevTools:
    """One page of a headless Chromium driven over the DevTools protocol (python3-websockets)."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    async def call(self, method, **params):
        """One command; returns its result."""
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), T))
            if msg.get("id") == self.next_id:
                break
        result = msg.get("result", {})
        if "exceptionDetails" in result or "error" in msg:
            raise RuntimeError(f"{method} {params}: {msg}")
        return result

    async def evaluate(self, expression):
        """The value of a JavaScript expression; promises are awaited."""
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression, timeout=T):
        """Waits until expression is truthy in the page; returns its last value."""
        deadline = time.monotonic() + timeout
        value = await self.evaluate(expression)
        while not value and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            value = await self.evaluate(expression)
        return value


def row_js(name):
    """The cells' texts of a backend's row, as JSON, or null when the row is not there."""
    return (f"(() => {{ const r = document.querySelector('#backends tr[data-backend=\"{name}\"]');"
            f" return r && [...r.cells].map(td => td.textContent); }})()")


def button_js(name, action):
    return f"document.querySelector('button[data-backend=\"{name}\"][data-action=\"{action}\"]')"


async def drive_buttons(lb, ap, dt, backends):
    def backend(name):
        return api(ap, "GET", f"/api/v1/backends/{name}")[1]

    # The same viewport as the command-line screenshots (a window of 1200x800 has a smaller one).
    await dt.call("Emulation.setDeviceMetricsOverride", width=1200, height=800,
                  deviceScaleFactor=1, mobile=False)
    message = "document.getElementById('message').textContent"
    c.true("the page shows the backends", await dt.until(row_js("e2")), "no row for e2")

    await dt.evaluate(button_js("e2", "disable") + ".click()")
    c.eq("disable: the page says it is done", "disable e2: done (200)",
         await dt.until(f"{message}.startsWith('disable') && {message}"))
    c.eq("disable: the API has e2 disabled", False, backend("e2")["enabled"])
    c.true("disable: the row says so at once",
           await dt.until(f"{row_js('e2')}[3] === 'no'"), "enabled still shows yes")

    await dt.evaluate(button_js("e2", "enable") + ".click()")
    c.eq("enable: the page says it is done", "enable e2: done (200)",
         await dt.until(f"{message}.startsWith('enable') && {message}"))
    c.eq("enable: the API has e2 enabled", True, backend("e2")["enabled"])

    await dt.evaluate(button_js("e1", "drain") + ".click()")
    text = await dt.until(f"{message}.startsWith('drain') && {message}")
    c.true("drain: the page shows the answer",
           text == "drain e1: done (202)" or (text or "").startswith("drain e1 failed: 501 "),
           repr(text))
    c.eq("drain: e1 disabled", False, backend("e1")["enabled"])
    deadline = time.monotonic() + T
    while backend("e2")["sessions"] < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    c.eq("drained: the API has all 3 sessions on e2", 3, backend("e2")["sessions"])

    # A fourth session, opened without the page knowing: its own refreshes must show it.
    extra = RawClient(lb.port)
    extra.request("/")
    c.eq("a fourth session upgrades", 101, extra.read_head()[0])
    try:
        cells = await dt.until(f"(() => {{ const r = {row_js('e2')}; return r && r[6] === '4'; }})()",
                               timeout=10)
        c.true("the page refreshes by itself: 4 sessions on e2", cells, "it never showed them")
        c.eq("e2's bar is full, drained e1's is empty",
             ["0%", "100%"], await dt.evaluate(
                 "[...document.querySelectorAll('.fill')].map(f => f.style.width)"))
    finally:
        extra.close()

    # An error answer: e2 is deleted behind the page's back, then its button is clicked.
    await dt.evaluate(f"window.held = {button_js('e2', 'enable')}")
    c.eq("delete e2 over the API", 200, request(ap, "DELETE", "/api/v1/backends/e2")[0])
    await dt.evaluate("window.held.click()")
    c.eq("an error answer: the page shows its JSON error text",
         "enable e2 failed: 404 no such backend",
         await dt.until(f"{message}.includes('failed') && {message}"))
    c.true("the deleted backend leaves the table",
           await dt.until(f"{row_js('e2')} === null"), "its row stays")
    shot = os.path.join(ARTIFACTS, "status_page_error.png")
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(shot, "wb") as f:
        f.write(base64.b64decode((await dt.call("Page.captureScreenshot", format="png"))["data"]))
    check_png(shot, 1200, 800)

    # A reload sets a token: the open page loses its buttons and says why; without one they return.
    visible_buttons = "[...document.querySelectorAll('button')].filter(b => b.offsetParent).length"
    problem = "document.getElementById('problem')"
    verdict, _ = lb.reload(backends, {"admin": {"address": f"127.0.0.1:{ap}", "token": "s3cret"}})
    c.true("reload with a token", verdict and verdict.startswith("reloaded"), repr(verdict))
    c.eq("a token set while the page is open: it says it needs it",
         "this page needs the admin token: the API answered 401",
         await dt.until(f"{problem}.textContent.includes('401') && {problem}.textContent"))
    c.eq("... and hides the buttons", 0, await dt.evaluate(visible_buttons))
    verdict, _ = lb.reload(backends, {"admin": {"address": f"127.0.0.1:{ap}"}})
    c.true("reload without a token", verdict and verdict.startswith("reloaded"), repr(verdict))
    c.eq("the token gone: the buttons are back for both backends", 6,
         await dt.until(f"{visible_buttons} === 6 && {visible_buttons}"))
    c.eq("... with their column's heading", True,
         await dt.evaluate("document.querySelector('th.actions').offsetParent !== null"))
    c.true("... and the notice is gone", await dt.evaluate(f"{problem}.classList.contains('hidden')"),
           "still shown")


async def devtools_session(lb, ap, backends):
    with tempfile.TemporaryDirectory(prefix="wsbal-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
            "--window-size=1200,800", f"http://127.0.0.1:{ap}/",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            endpoint = None
            while endpoint is None:
                line = await asyncio.wait_for(proc.stderr.readline(), 60)
                if not line:
                    raise RuntimeError("chromium exited before its DevTools endpoint was up")
                m = re.search(rb"DevTools listening on ws://([^/]+)/", line)
                endpoint = m and m.group(1).decode()
            # Chromium's stderr must keep draining, or it blocks on a full pipe.
            drain = asyncio.ensure_future(proc.stderr.read())
            targets = json.loads(urllib.request.urlopen(f"http://{endpoint}/json/list", timeout=T).read())
            page = next(t for t in targets if t["type"] == "page")
            async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
                await drive_buttons(lb, ap, DevTools(ws), backends)
            drain.cancel()
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), T)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()


def test_buttons():
    e1, e2 = start_backends()
    ap = free_port()
    backends = [("e1", e1.url), ("e2", e2.url)]
    lb = Wsbal(backends, sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    held = []
    try:
        held = hold_sessions(lb, ap)
        asyncio.run(asyncio.wait_for(devtools_session(lb, ap, backends), 120))
    finally:
        stop_all(held, lb, e1, e2)


if __name__ == "__main__":
    if not os.access(CHROMIUM, os.X_OK):
        print(f"FAIL: {CHROMIUM} is not installed; this test installs nothing itself. Install "
              "Debian's chromium package (tools/check does, with the other test packages).",
              flush=True)
        sys.exit(1)
    sys.exit(run_tests(c, test_served, test_dom_and_screenshot, test_token, test_buttons))

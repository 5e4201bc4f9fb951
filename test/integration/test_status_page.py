"""The status page (GET / on the admin server) in a real browser: Debian's headless Chromium loads
it from a running wsbal, and the page it builds must show what the API says (rates, history
charts, why a backend is down, drain and breaker states); its buttons, clicked through the
DevTools protocol, must change the backends and show the API's errors; with a token set it must
ask for the token in the page, keep it for the tab and ask again when it is refused."""
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

from wsbtest import OP_TEXT, Checks, Echo, RawClient, Wsbal, frame, free_port, run_tests

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Screenshots are kept for a person to look at; the folder is ignored by git.
ARTIFACTS = os.path.join(os.getcwd(), "status_page_artifacts")
SOURCE_ROOT = os.environ.get("WSBAL_SOURCE_ROOT", os.path.join(os.getcwd(), "..", ".."))
# A URL path whose text is "x&lt;i&gt;y" but shows as "x<i>y" if the page ever inserts data as
# HTML (the entities are decoded then): the check that every value goes in as text.
TRAP_PATH = "/x&lt;i&gt;y"
# The only URL the page may hold: the SVG namespace, a name rather than something loaded.
SVG_NS = b"http://www.w3.org/2000/svg"
# TCP checks fast enough that a stopped backend shows as down within a second.
HEALTH = {"health_check": "tcp", "health_interval": "250ms", "health_timeout": "200ms",
          "health_fall": "1", "health_rise": "1"}
T = 20

c = Checks()


def request(port, method, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers or {})
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
    buttons, the cards (totals and rates), each chart's lines, the text of every element that has
    an id, and which are hidden."""

    VOID = {"meta", "link", "br", "hr", "img", "input", "polyline", "line"}  # no end tag here

    def __init__(self, html):
        super().__init__()
        self.rows = {"backends": [], "workers": [], "pools": [], "routes": []}
        self.widths = []
        self.buttons = []
        self.ids, self.hidden = {}, set()
        self.cards = []  # the cards' texts: number, name, number, name, ...
        self.lines = {}  # chart's backend: [(line class, number of points)]
        self._chart = None
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
        elif tag == "button" and a.get("data-backend"):
            self.buttons.append((a.get("data-backend"), a.get("data-action")))
        elif tag == "div" and cls in (["n"], ["k"]):
            self.cards.append("")
        elif tag == "div" and "chart" in cls:
            self._chart = a.get("data-backend")
            self.lines[self._chart] = []
        elif tag == "polyline" and self._chart is not None:
            self.lines[self._chart].append((a.get("class"), len(a.get("points", "").split())))
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
            self.cards[-1] += data

    def _body(self):
        """The id of the table body being read ("backends", "workers" or "pools"), or None."""
        return next((i for t, i, _ in self._stack if t == "tbody" and i in self.rows), None)

    def card(self, name):
        """The number shown on the card called name."""
        pairs = dict(zip(self.cards[1::2], self.cards[0::2]))
        return pairs.get(name)


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


def test_served():
    e1 = Echo("e1")
    ap = free_port()
    lb = Wsbal([("e1", e1.url)], sections={"admin": {"address": f"127.0.0.1:{ap}"}})
    try:
        with open(os.path.join(SOURCE_ROOT, "master", "status_page.html"), "rb") as f:
            page = f.read()
        s, h, body = request(ap, "GET", "/")
        c.eq("GET /: 200 text/html", (200, "text/html; charset=utf-8"), (s, h.get("content-type")))
        c.true("GET / answers master/status_page.html byte for byte", body == page,
               f"{len(body)} bytes, the file has {len(page)}")
        csp = h.get("content-security-policy", "")
        c.true("the policy comes as a header too, with what only a header can say",
               "default-src 'none'" in csp and "connect-src 'self'" in csp
               and "frame-ancestors 'none'" in csp and "script-src 'unsafe-inline'" in csp, csp)
        c.eq("no framing, no sniffing, no referrer",
             ("DENY", "nosniff", "no-referrer"),
             (h.get("x-frame-options"), h.get("x-content-type-options"), h.get("referrer-policy")))
        c.eq("the API's answers do not carry the page's headers", None,
             request(ap, "GET", "/api/v1/status")[1].get("content-security-policy"))
        c.eq("health_check = off: no last check, and not draining", [(None, False)],
             [(b["last_check"], b["draining"]) for b in api(ap, "GET", "/api/v1/backends")[1]["backends"]])
        s, h, body = request(ap, "POST", "/")
        c.eq("POST /: 405", 405, s)
        c.true("the page loads nothing from elsewhere",
               not re.search(rb"(src|href)\s*=|@import|url\(|https?://", page.replace(SVG_NS, b"")),
               "found an external reference")
        c.true("the page never writes HTML from data, nor logs anything (the token)",
               not re.search(rb"innerHTML|outerHTML|insertAdjacentHTML|document\.write|console\.",
                             page), "found one")
    finally:
        lb.stop()
        e1.stop()


def sections(ap, token=None):
    admin = {"address": f"127.0.0.1:{ap}"}
    if token:
        admin["token"] = token
    return {"admin": admin, "upstream": dict(HEALTH)}


def hold_sessions(lb, ap, plan, names):
    """Opens sessions on the backends plan names ([(backend, count)]), each steered there by
    disabling the others meanwhile."""
    held = []
    for name, n in plan:
        others = [o for o in names if o != name]
        for o in others:
            c.eq(f"disable {o}", 200, request(ap, "POST", f"/api/v1/backends/{o}/disable")[0])
        for _ in range(n):
            cl = RawClient(lb.port)
            cl.request("/")
            c.eq("a held session upgrades", 101, cl.read_head()[0])
            held.append(cl)
        for o in others:
            c.eq(f"enable {o}", 200, request(ap, "POST", f"/api/v1/backends/{o}/enable")[0])
    return held


def wait_api(ap, what, timeout=T):
    """Polls /api/v1/backends until what(list of backends) is true; returns the last list."""
    deadline = time.monotonic() + timeout
    while True:
        bs = api(ap, "GET", "/api/v1/backends")[1]["backends"]
        if what(bs) or time.monotonic() > deadline:
            return bs
        time.sleep(0.05)


def check_dump(ap, e2):
    """A page loaded by a fresh Chromium, read from its DOM once it has polled three times."""
    st = api(ap, "GET", "/api/v1/status")[1]
    bs = api(ap, "GET", "/api/v1/backends")[1]["backends"]
    p = Page(chromium("--virtual-time-budget=5000", "--dump-dom", f"http://127.0.0.1:{ap}/"))
    c.eq("no problem shown, no token asked", {"problem", "message", "login"},
         p.hidden & {"problem", "message", "login"})
    c.eq("version", st["version"], p.ids.get("version"))
    c.eq("configuration generation", str(st["generation"]), p.ids.get("generation"))
    c.true("uptime", re.fullmatch(r"(\d+[dhm] )*\d+s", p.ids.get("uptime", "")), p.ids.get("uptime"))
    c.eq("totals: live sessions, handshakes ok and errors, reloads, worker restarts",
         ["3", "3", "0", "0", "0"],
         [p.card(k) for k in ("live sessions", "handshakes ok", "handshake errors",
                              "reloads", "worker restarts")])
    c.eq("rates: idle, so zero once two answers are known",
         ["0.0", "0.0", "0.0", "0 B/s", "0 B/s"],
         [p.card(k) for k in ("sessions opened/s", "messages/s to backends",
                              "messages/s to clients", "bytes/s to backends", "bytes/s to clients")])
    rows = p.rows["backends"]
    expected = [[b["name"], b["url"], "yes", "enabled", b["breaker"], str(b["weight"]),
                 str(b["sessions"]), "0.0", str(b["failovers"])] for b in bs]
    c.eq("a row per backend: name, url, up, state, breaker, weight, sessions, opened/s, failovers",
         expected, [r[:3] + r[4:10] for r in rows])
    c.true("last check: ok, a moment ago",
           all(re.fullmatch(r"ok, \d+s ago", r[3]) for r in rows), [r[3] for r in rows])
    c.eq("the URL with entities shows as text, never as markup",
         ("e2", "ws://127.0.0.1:%d%s" % (e2.port, TRAP_PATH)), tuple(rows[1][:2]) if rows[1:] else None)
    c.eq("bars: e1 (2 sessions) full width, e2 (1) half, e3 none", [100.0, 50.0, 0.0], p.widths)
    c.eq("buttons: only what applies, disable and drain for enabled backends",
         [(n, a) for n in ("e1", "e2", "e3") for a in ("disable", "drain")], p.buttons)
    c.eq("a chart per backend, each with live sessions, opened/s and messages/s each way",
         {n: [("s0", True), ("s1", True), ("s2", True), ("s3", True)] for n in ("e1", "e2", "e3")},
         {n: [(cls, k >= 2) for cls, k in v] for n, v in p.lines.items()})
    c.eq("a row per worker: slot, pid, sessions, draining",
         [[str(w["slot"]), str(w["pid"]), str(w["sessions"]), "no"] for w in st["workers"]],
         p.rows["workers"])
    c.eq("two workers", 2, len(p.rows["workers"]))
    c.eq("a row per pool: name, algorithm, backends, available, live sessions",
         [["default", "least_conn", ", ".join(b["name"] for b in bs), str(len(bs)), "3"]],
         p.rows["pools"])
    c.eq("no route: one row, the fallback to pool default, with every session so far",
         [["(default)", "default", "-", "-", "-", "-", "-", str(api(ap, "GET", "/api/v1/routes")[1]["default"]["matches"])]],
         p.rows["routes"])


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

    async def screenshot(self, name):
        shot = os.path.join(ARTIFACTS, name)
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(shot, "wb") as f:
            f.write(base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"]))
        check_png(shot, 1200, 800)


def row_js(name):
    """The cells' texts of a backend's row, as JSON, or null when the row is not there."""
    return (f"(() => {{ const r = document.querySelector('#backends tr[data-backend=\"{name}\"]');"
            f" return r && [...r.cells].map(td => td.textContent); }})()")


def buttons_js(name):
    """The actions of a backend's buttons, as the page shows them."""
    return (f"[...document.querySelectorAll('button[data-backend=\"{name}\"]')]"
            ".filter(b => b.offsetParent).map(b => b.dataset.action).join(',')")


def button_js(name, action):
    return f"document.querySelector('button[data-backend=\"{name}\"][data-action=\"{action}\"]')"


RATES_JS = ("Object.fromEntries([...document.querySelectorAll('#rates .total')]"
            ".map(t => [t.children[1].textContent, t.children[0].textContent]))")
# Each chart's number of points per line, by backend.
CHARTS_JS = ("Object.fromEntries([...document.querySelectorAll('.chart')].map(ch => [ch.dataset.backend,"
             " [...ch.querySelectorAll('polyline')].map(l => l.getAttribute('points').split(' ')"
             ".filter(Boolean).length)]))")
MESSAGE = "document.getElementById('message').textContent"
LOGIN_SHOWN = "document.getElementById('login').offsetParent !== null"
LOGIN_WHY = "document.getElementById('login-why').textContent"
VISIBLE_BUTTONS = "[...document.querySelectorAll('button[data-backend]')].filter(b => b.offsetParent).length"


async def traffic_until_rates(lb, dt, held):
    """Messages on the held sessions and a few short sessions, until the rates show them."""
    busy = lambda r: (r and r.get("sessions opened/s") not in ("–", "0.0")  # noqa: E731
                      and r.get("messages/s to backends") not in ("–", "0.0")
                      and r.get("bytes/s to clients") not in ("–", "0 B/s"))
    rates = None
    for _ in range(60):  # at most about 30 s; two polls (4 s) are enough
        for cl in held:
            for _ in range(5):
                cl.send(frame(OP_TEXT, b"x" * 200))
                cl.read_frame()
        extra = RawClient(lb.port)
        extra.request("/")
        extra.read_head()
        extra.close()
        rates = await dt.evaluate(RATES_JS)
        if busy(rates):
            break
        await asyncio.sleep(0.4)
    c.true("rates: non-zero with traffic (sessions opened, messages, bytes)", busy(rates), rates)
    return rates


async def drive(lb, ap, dt, backends, e3, held):
    def backend(name):
        return api(ap, "GET", f"/api/v1/backends/{name}")[1]

    # The same viewport as the command-line screenshots (a window of 1200x800 has a smaller one).
    await dt.call("Emulation.setDeviceMetricsOverride", width=1200, height=800,
                  deviceScaleFactor=1, mobile=False)
    c.true("the page shows the backends", await dt.until(row_js("e3")), "no row for e3")
    c.eq("no token set: no question shown", False, await dt.evaluate(LOGIN_SHOWN))

    # Rates and history: traffic makes them move; every backend's chart gets its points.
    await traffic_until_rates(lb, dt, held)
    charts = await dt.until(f"(() => {{ const c = {CHARTS_JS}; return ['e1', 'e2', 'e3'].every("
                            "n => c[n] && c[n].length === 4 && c[n].every(k => k >= 2)) && c; })()")
    c.true("history: a chart per backend with points on its four lines", charts, charts)
    opened = await dt.evaluate(
        "[...document.querySelectorAll('.chart .key1')].map(k => k.textContent)")
    c.true("history: some backend's opened/s went above zero",
           any(not t.endswith("(max 0.0)") for t in opened or []), opened)
    relayed = await dt.evaluate(
        "[...document.querySelectorAll('.chart .key2, .chart .key3')].map(k => k.textContent)")
    c.true("history: some backend's messages/s in and out went above zero",
           any(t.startswith("messages/s in") and not t.endswith("(max 0.0)") for t in relayed or [])
           and any(t.startswith("messages/s out") and not t.endswith("(max 0.0)")
                   for t in relayed or []), relayed)
    await dt.screenshot("status_page.png")
    await dt.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme",
                                                           "value": "dark"}])
    c.eq("dark mode: the page follows the system's scheme", "rgb(22, 25, 29)", await dt.evaluate(
        "getComputedStyle(document.body).backgroundColor"))
    await dt.screenshot("status_page_dark.png")
    await dt.call("Emulation.setEmulatedMedia", features=[])

    # A stopped backend: down, and the page says why, from its last check.
    e3.stop()
    cells = await dt.until(f"(() => {{ const r = {row_js('e3')};"
                           " return r && r[2] === 'no' && r[3].startsWith('refused') && r; })()")
    c.true("a stopped backend: up no, last check refused with its reason",
           cells and re.fullmatch(r"refused: Connection refused, \d+s ago", cells[3]), cells)
    last = backend("e3")["last_check"]
    c.eq("the API says the same: last_check result and reason", ("refused", "Connection refused"),
         ((last or {}).get("result"), (last or {}).get("reason")))
    c.true("... and its age", isinstance((last or {}).get("age_ms"), int), last)
    await dt.screenshot("status_page_backend_down.png")
    c.eq("breaker: each row shows the API's state",
         [b["breaker"] for b in api(ap, "GET", "/api/v1/backends")[1]["backends"]],
         await dt.evaluate("[...document.querySelectorAll('#backends tr')].map(r => r.cells[5].textContent)"))

    # Only the button that applies.
    await dt.evaluate(button_js("e2", "disable") + ".click()")
    c.eq("disable: the page says it is done", "disable e2: done (200)",
         await dt.until(f"{MESSAGE}.startsWith('disable') && {MESSAGE}"))
    c.eq("disable: the API has e2 disabled, not draining", (False, False),
         (backend("e2")["enabled"], backend("e2")["draining"]))
    c.eq("disabled: the row says so and shows only enable", ["disabled", "enable"], [
        (await dt.until(f"{row_js('e2')}[4] === 'disabled' && 'disabled'")),
        await dt.evaluate(buttons_js("e2"))])
    await dt.evaluate(button_js("e2", "enable") + ".click()")
    c.eq("enable: the page says it is done", "enable e2: done (200)",
         await dt.until(f"{MESSAGE}.startsWith('enable') && {MESSAGE}"))
    c.eq("enabled again: disable and drain", "disable,drain",
         await dt.until(f"{buttons_js('e2')} === 'disable,drain' && {buttons_js('e2')}"))

    await dt.evaluate(button_js("e1", "drain") + ".click()")
    c.eq("drain: the page shows the answer", "drain e1: done (202)",
         await dt.until(f"{MESSAGE}.startsWith('drain') && {MESSAGE}"))
    c.eq("drain: the API has e1 disabled and draining", (False, True),
         (backend("e1")["enabled"], backend("e1")["draining"]))
    deadline = time.monotonic() + T
    while backend("e1")["sessions"] > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    c.eq("drained: e1's sessions moved to e2", (0, 3),
         (backend("e1")["sessions"], backend("e2")["sessions"]))
    c.eq("drained: the row says so, with only enable", ["drained", "enable"], [
        await dt.until(f"{row_js('e1')}[4] === 'drained' && 'drained'"),
        await dt.evaluate(buttons_js("e1"))])

    # A fourth session, opened without the page knowing: its own refreshes must show it.
    extra = RawClient(lb.port)
    extra.request("/")
    c.eq("a fourth session upgrades", 101, extra.read_head()[0])
    try:
        c.true("the page refreshes by itself: 4 sessions on e2",
               await dt.until(f"(() => {{ const r = {row_js('e2')}; return r && r[7] === '4'; }})()",
                              timeout=10), "it never showed them")
        c.eq("e2's bar is full, drained e1's and stopped e3's are empty",
             ["0%", "100%", "0%"], await dt.evaluate(
                 "[...document.querySelectorAll('.fill')].map(f => f.style.width)"))
    finally:
        extra.close()

    # An error answer: e2 is deleted behind the page's back, then its button is clicked.
    await dt.evaluate(f"window.held = {button_js('e2', 'disable')}")
    c.eq("delete e2 over the API", 200, request(ap, "DELETE", "/api/v1/backends/e2")[0])
    await dt.evaluate("window.held.click()")
    c.eq("an error answer: the page shows its JSON error text",
         "disable e2 failed: 404 no such backend",
         await dt.until(f"{MESSAGE}.includes('failed') && {MESSAGE}"))
    c.true("the deleted backend leaves the table, and its chart goes",
           await dt.until(f"{row_js('e2')} === null && !document.querySelector("
                          "'.chart[data-backend=\"e2\"]')"), "its row stays")
    await dt.screenshot("status_page_error.png")
    await token_flow(lb, ap, dt, backends)


async def enter_token(dt, text):
    """Types text into the page's token field and submits it, as a person would."""
    await dt.evaluate("document.getElementById('token').focus()")
    await dt.call("Input.insertText", text=text)
    await dt.evaluate("document.querySelector('#login button').click()")


async def token_flow(lb, ap, dt, backends):
    """A reload sets a token: the open page asks for it, keeps it for the tab, sends it, asks
    again when it is refused, and without a token works as before."""
    stored = "sessionStorage.getItem('wsbal.admin_token')"
    verdict, _ = lb.reload(backends, sections(ap, token="s3cret"))
    c.true("reload with a token", verdict and verdict.startswith("reloaded"), repr(verdict))
    c.eq("a token set while the page is open: it asks for it in the page",
         "the admin API needs its token (401): enter it",
         await dt.until(f"{LOGIN_SHOWN} && {LOGIN_WHY}"))
    c.eq("... hides the buttons, and shows no other notice", (0, True), (
        await dt.evaluate(VISIBLE_BUTTONS),
        await dt.evaluate("document.getElementById('problem').classList.contains('hidden')")))
    await dt.screenshot("status_page_token.png")

    await enter_token(dt, "wrong")
    c.eq("a wrong token: asked again, saying it was refused",
         "the admin API refused the token (401): enter the current one",
         await dt.until(f"{LOGIN_WHY}.includes('refused') && {LOGIN_WHY}"))
    c.eq("... and it is not kept", None, await dt.evaluate(stored))
    await dt.evaluate("refresh().then(() => true)")  # a poll without a token: 401 again
    c.eq("... and the next poll leaves the reason as it is",
         "the admin API refused the token (401): enter the current one", await dt.evaluate(LOGIN_WHY))

    await enter_token(dt, "s3cret")
    # The reload put the file's state back: e2 is there again, every backend enabled.
    c.eq("the right token: the API answers, the buttons are back", 6,
         await dt.until(f"!({LOGIN_SHOWN}) && {VISIBLE_BUTTONS} === 6 && {VISIBLE_BUTTONS}"))
    c.eq("... kept for this tab, the field emptied, never in the URL",
         ("s3cret", "", f"http://127.0.0.1:{ap}/"),
         (await dt.evaluate(stored), await dt.evaluate("document.getElementById('token').value"),
          await dt.evaluate("location.href")))
    await dt.evaluate(button_js("e1", "disable") + ".click()")
    c.eq("a button sends the token too", "disable e1: done (200)",
         await dt.until(f"{MESSAGE}.startsWith('disable e1') && {MESSAGE}"))
    await dt.call("Page.reload")
    c.true("a reload of the page keeps the token: no question",
           await dt.until(f"{row_js('e1')} && !({LOGIN_SHOWN}) && {VISIBLE_BUTTONS} === 5"),
           "asked again")

    verdict, _ = lb.reload(backends, sections(ap, token="0ther"))
    c.true("reload with another token", verdict and verdict.startswith("reloaded"), repr(verdict))
    c.eq("the token changed: asked again, the old one forgotten",
         ("the admin API refused the token (401): enter the current one", None),
         (await dt.until(f"{LOGIN_SHOWN} && {LOGIN_WHY}"), await dt.evaluate(stored)))

    verdict, _ = lb.reload(backends, sections(ap))
    c.true("reload without a token", verdict and verdict.startswith("reloaded"), repr(verdict))
    c.eq("the token gone: no question, the buttons are back", 6,
         await dt.until(f"!({LOGIN_SHOWN}) && {VISIBLE_BUTTONS} === 6 && {VISIBLE_BUTTONS}"))
    c.eq("... with their column's heading", True,
         await dt.evaluate("document.querySelector('th.actions').offsetParent !== null"))


async def devtools_session(lb, ap, backends, e3, held):
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
                await drive(lb, ap, DevTools(ws), backends, e3, held)
            drain.cancel()
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), T)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()


def test_page():
    """One wsbal for the whole walk: a DOM dump, then a page driven over DevTools."""
    e1, e2, e3 = Echo("e1"), Echo("e2"), Echo("e3")
    ap = free_port()
    backends = [("e1", e1.url), ("e2", e2.url + TRAP_PATH), ("e3", e3.url)]
    lb = Wsbal(backends, sections=sections(ap))
    held = []
    try:
        bs = wait_api(ap, lambda bs: all(b["last_check"] and b["up"] for b in bs))
        c.eq("every backend checked once and up", [("ok", "", True)] * 3,
             [((b["last_check"] or {}).get("result"), (b["last_check"] or {}).get("reason"),
               b["up"]) for b in bs])
        c.eq("the API: no backend draining", [False] * 3, [b["draining"] for b in bs])
        held = hold_sessions(lb, ap, [("e1", 2), ("e2", 1)], ["e1", "e2", "e3"])
        c.eq("the API counts 2 sessions on e1, 1 on e2, none on e3",
             [("e1", 2), ("e2", 1), ("e3", 0)],
             [(b["name"], b["sessions"]) for b in api(ap, "GET", "/api/v1/backends")[1]["backends"]])
        check_dump(ap, e2)
        asyncio.run(asyncio.wait_for(devtools_session(lb, ap, backends, e3, held), 150))
    finally:
        for cl in held:
            cl.close()
        for p in (lb, e1, e2, e3):
            p.stop()


if __name__ == "__main__":
    if not os.access(CHROMIUM, os.X_OK):
        print(f"FAIL: {CHROMIUM} is not installed; this test installs nothing itself. Install "
              "Debian's chromium package (tools/check does, with the other test packages).",
              flush=True)
        sys.exit(1)
    sys.exit(run_tests(c, test_served, test_page))

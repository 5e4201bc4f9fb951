"""The manual pages cannot drift from the programs.

- wsbal.ini(5): every key the parser accepts (test/docs/list_keys.c lists them) has a
  "*key* = ..." entry under its section's heading, and every entry is a key the parser accepts.
  Each entry says "Default: *value*.", "Unset by default" or "Required."; the values are
  written into one file that `wsbal -t` must accept.
- wsbalctl(1): every command of tools/ctl.c's table has a "*name*" entry under COMMANDS, and
  every entry is a command wsbalctl knows (it answers a usage error, never "unknown command").
- wsbal(8), wsbalctl(1), wsbal-echo(1): every long option the program's --help lists is on its
  page.
- The page sources are ASCII, and the rendered pages given as arguments are roff from scdoc.
WSBAL_MAN_DIR points at other page sources (the report's demonstration of a failure).
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from wsbtest import Checks  # noqa: E402

ROOT = os.environ.get("WSBAL_SOURCE_ROOT", ".")
MAN = os.environ.get("WSBAL_MAN_DIR", os.path.join(ROOT, "packaging", "man"))
WSBAL = os.environ.get("WSBAL", "build/wsbal")
WSBALCTL = os.environ.get("WSBALCTL", "build/wsbalctl")
ECHO = os.environ.get("WSBAL_ECHO", "build/wsbal-echo")
LIST_KEYS = os.environ.get("WSBAL_LIST_KEYS", "build/test/docs/list_keys")

checks = Checks()


def page(name):
    with open(os.path.join(MAN, name + ".scd"), encoding="utf-8") as f:
        return f.read()


def plain(s):
    """scdoc source text without its escapes: tls\\_cert -> tls_cert."""
    return s.replace("\\_", "_").replace("\\*", "*")


def entries(text, heading_rx):
    """{heading: {name: body}} of the '*name* ...' entries under headings matching heading_rx
    (group 1 names the heading); an entry's body is its tab-indented lines."""
    out, current, name = {}, None, None
    for line in text.split("\n"):
        if line.startswith("# "):
            m = re.match(heading_rx, line)
            current = m.group(1) if m else None
            name = None
            if current is not None:
                out.setdefault(current, {})
            continue
        m = re.match(r"\*([a-z][a-z0-9\\_-]*)\*", line)
        if current is not None and m:
            name = plain(m.group(1))
            checks.true(f"{name} documented once under {current}", name not in out[current])
            out[current][name] = ""
        elif current is not None and name is not None and line.startswith("\t"):
            out[current][name] += line[1:] + "\n"
        elif line.strip():
            name = None
    return out


def parser_keys():
    out = subprocess.run([LIST_KEYS], capture_output=True, text=True, timeout=10)
    checks.eq("list_keys exits 0", 0, out.returncode)
    keys = {}
    for line in out.stdout.split("\n"):
        if line:
            sec, key = line.split(" ")
            keys.setdefault(sec, set()).add(key)
    return keys


def test_ini_keys():
    keys = parser_keys()
    checks.true("the parser has keys in six sections", len(keys) == 6, repr(sorted(keys)))
    doc = entries(page("wsbal.ini.5"), r"# \[([a-z]+)(?::NAME)?\] SECTION$")
    for sec in sorted(keys):
        documented = set(doc.get(sec, {}))
        for key in sorted(keys[sec] - documented):
            checks.true(f"[{sec}] {key} is in wsbal.ini(5)", False,
                        f"the parser accepts [{sec}] {key}; add a '*{key}* = ...' entry under "
                        f"'# [{sec}] SECTION' in packaging/man/wsbal.ini.5.scd")
        for key in sorted(documented - keys[sec]):
            checks.true(f"[{sec}] {key} of wsbal.ini(5) is a key", False,
                        f"wsbal.ini(5) documents [{sec}] {key}, which the parser does not accept")
        checks.true(f"[{sec}] documented as the parser has it", documented == keys[sec])
    for sec in sorted(set(doc) - set(keys)):
        checks.true(f"section [{sec}] of wsbal.ini(5) exists", False, "no such section")
    return doc


def test_ini_defaults(doc):
    """Every literal default the page gives is a value wsbal -t accepts, all at once."""
    text, given = "", 0
    for sec, keys in doc.items():
        lines = []
        for key, body in keys.items():
            flat = body.replace("\n", " ")
            m = re.search(r"Default: \*([^*]+)\*\.", flat)
            checks.true(f"[{sec}] {key} says its default", m is not None or
                        "Unset by default" in flat or flat.startswith("Required."),
                        "write 'Default: *VALUE*.', 'Unset by default' or 'Required.'")
            if m:
                lines.append(f"{key} = {plain(m.group(1))}\n")
        given += len(lines)
        if sec == "backend":
            lines.insert(0, "url = ws://127.0.0.1:9\n")
            text += "[backend:docs]\n" + "".join(lines)
        elif sec == "route":
            text += "[route:docs]\npool = default\n" + "".join(lines)
        else:
            text = f"[{sec}]\n" + "".join(lines) + text
    checks.true("keys document defaults", given >= 40, f"only {given}")
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
        f.write(text)
    try:
        out = subprocess.run([WSBAL, "-t", "-c", f.name], capture_output=True, text=True,
                             timeout=20)
        errs = out.stderr.strip()
        for line in errs.split("\n") if errs else []:
            m = re.match(r".*?:(\d+): ", line)
            bad = text.split("\n")[int(m.group(1)) - 1] if m else ""
            checks.true("a documented default is valid", False, f"{line}  <- {bad}")
        checks.eq("wsbal -t accepts every documented default", (0, "configuration OK"),
                  (out.returncode, out.stdout.strip()))
    finally:
        os.unlink(f.name)


def ctl_commands():
    """The names of tools/ctl.c's command table, checked against the program."""
    with open(os.path.join(ROOT, "tools", "ctl.c"), encoding="utf-8") as f:
        src = f.read()
    table = re.search(r"struct command commands\[\] = \{(.*?)\n\};", src, re.S)
    checks.true("tools/ctl.c has a command table", table is not None)
    names = re.findall(r'^\s*\{"([a-z-]+)",', table.group(1) if table else "", re.M)
    checks.true("the command table has commands", len(names) >= 10, repr(names))
    return names


def known_to_wsbalctl(name):
    """wsbalctl knows name when it does not call it unknown (too many operands: a usage error)."""
    out = subprocess.run([WSBALCTL, "-a", "127.0.0.1:9", name, "x", "x", "x", "x"],
                         capture_output=True, text=True, timeout=10)
    return out.returncode == 2 and "unknown command" not in out.stderr


def test_ctl_commands():
    names = ctl_commands()
    doc = entries(page("wsbalctl.1"), r"# (COMMANDS)$").get("COMMANDS", {})
    checks.true("wsbalctl(1) has a COMMANDS section", len(doc) > 0)
    for name in names:
        checks.true(f"wsbalctl {name} is in wsbalctl(1)", name in doc,
                    f"add a '*{name}* ...' entry under COMMANDS in packaging/man/wsbalctl.1.scd")
        checks.true(f"wsbalctl knows {name} (the table was read right)", known_to_wsbalctl(name))
    for name in sorted(set(doc) - set(names)):
        checks.true(f"{name} of wsbalctl(1) is a command", False,
                    "documented under COMMANDS but not in tools/ctl.c's table")
    checks.true("wsbalctl calls a made-up command unknown", not known_to_wsbalctl("no-such"))


def test_options():
    for prog, name in ((WSBAL, "wsbal.8"), (WSBALCTL, "wsbalctl.1"), (ECHO, "wsbal-echo.1")):
        out = subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=10)
        opts = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", out.stdout)))
        checks.true(f"{prog} --help lists options", len(opts) >= 3, out.stdout)
        text = plain(page(name))
        for opt in opts:
            checks.true(f"{opt} is in {name}", f"*{opt}*" in text, f"add {opt} to {name}.scd")


def test_ascii():
    """man-db reads pages under /usr/share/man as ISO-8859-1: anything else would be garbled."""
    for path in sorted(glob.glob(os.path.join(MAN, "*.scd"))):
        with open(path, "rb") as f:
            bad = [n + 1 for n, line in enumerate(f.read().split(b"\n")) if not line.isascii()]
        checks.true(f"{os.path.basename(path)} is ASCII", not bad, f"lines {bad[:10]}")


def test_rendered():
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            head = f.read(2000)
        checks.true(f"{os.path.basename(path)} is rendered roff",
                    "Generated by scdoc" in head and ".TH" in head, head[:200])
    if len(sys.argv) < 2:
        print("no rendered pages given (scdoc not found, or -Dman=disabled): sources checked only")


def main():
    doc = test_ini_keys()
    test_ini_defaults(doc)
    test_ctl_commands()
    test_options()
    test_ascii()
    test_rendered()
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())

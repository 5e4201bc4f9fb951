"""Checks a /metrics text as an exposition format reader would: every sample in a family with
HELP and TYPE before it, families not interleaved, no series twice, and, under OpenMetrics'
rules, no two families whose names or sample names collide. Pure text in, problems out."""
import re

# The sample names a family of each type carries, by exposition format. Prometheus text 0.0.4
# names a counter's family with the _total of its samples; OpenMetrics without it.
OPENMETRICS = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
TEXT_004 = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("", "_count", "_sum"), "untyped": ("",)}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_labels(text):
    """{name: value} of a sample's label text, or None when it is malformed."""
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m or m.group(1) in labels:
            return None
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def openmetrics_family(name, typ, openmetrics):
    """The OpenMetrics family name of a family declared as name in either format."""
    if not openmetrics and typ == "counter" and name.endswith("_total"):
        return name[:-len("_total")]
    return name


def problems(text, openmetrics=False, allow_collisions=()):
    """The problems found, as strings; [] when the text is clean. allow_collisions: declared
    family names whose OpenMetrics collision is known and documented (0.0.4's wsbal_sessions)."""
    found, helps, types = [], {}, {}
    suffixes = OPENMETRICS if openmetrics else TEXT_004
    sample_family = {}  # sample name -> declared family
    seen_series, finished, current = set(), set(), None
    lines = text.split("\n")
    if openmetrics:
        if lines[-2:] != ["# EOF", ""]:
            found.append("OpenMetrics text does not end with '# EOF'")
        lines = lines[:-2]
    elif lines and lines[-1] == "":
        lines = lines[:-1]
    for i, line in enumerate(lines, 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4:
                found.append(f"line {i}: malformed: {line!r}")
                continue
            kind, name, rest = parts[1], parts[2], parts[3]
            seen = helps if kind == "HELP" else types
            if name in seen:
                found.append(f"line {i}: a second {kind} for {name}")
            seen[name] = rest
            if kind == "TYPE":
                if rest not in suffixes:
                    found.append(f"line {i}: type {rest} of {name} not in this format")
                    continue
                if rest == "counter" and name.endswith("_total") == openmetrics:
                    found.append(f"line {i}: counter family {name}: _total wrong in this format")
                for suffix in suffixes[rest]:
                    sample_family.setdefault(name + suffix, name)
            continue
        if line == "" or (line.startswith("#") and openmetrics):
            found.append(f"line {i}: unexpected line {line!r}")
            continue
        if line.startswith("#"):
            continue  # a comment, in 0.0.4
        m = SAMPLE.match(line)
        if not m:
            found.append(f"line {i}: malformed sample {line!r}")
            continue
        name, labels = m.group(1), parse_labels(m.group(3) or "")
        if labels is None:
            found.append(f"line {i}: malformed labels {line!r}")
            continue
        try:
            float(m.group(4))
        except ValueError:
            found.append(f"line {i}: value is not a number: {line!r}")
        fam = sample_family.get(name)
        if fam is None:
            found.append(f"line {i}: sample {name} has no TYPE before it")
            continue
        if fam not in helps:
            found.append(f"line {i}: family {fam} has no HELP")
        if fam != current:
            if fam in finished:
                found.append(f"line {i}: samples of {fam} are not together (interleaved)")
            if current is not None:
                finished.add(current)
            current = fam
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            found.append(f"line {i}: series twice: {line!r}")
        seen_series.add(key)
    for name in helps:
        if name not in types:
            found.append(f"HELP without TYPE: {name}")
    # OpenMetrics: no two families share a family name or any sample name they may carry.
    claims = {}
    for name, typ in types.items():
        if name in allow_collisions or typ not in OPENMETRICS:
            continue
        fam = openmetrics_family(name, typ, openmetrics)
        for claimed in {fam} | {fam + s for s in OPENMETRICS[typ]}:
            claims.setdefault(claimed, []).append(name)
    for claimed, names in sorted(claims.items()):
        if len(names) > 1:
            found.append(f"OpenMetrics collision on {claimed}: {names}")
    return found


def series(text):
    """{(name, frozenset of label items): value} of every sample."""
    out = {}
    for line in text.split("\n"):
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out[(m.group(1), frozenset((parse_labels(m.group(3) or "") or {}).items()))] = \
                float(m.group(4))
    return out

#!/usr/bin/env python3
"""Parses a cowblkd log strictly, every line, and prints it as JSON.

usage: log_lines.py logfmt|json|text LOG

Each line becomes {"ts": ..., "level": ..., "event": ..., FIELD: VALUE, ...}
in the order the line gives; the output is a JSON array of them. Exits 1,
naming the line, when a line is not in the format: a ts that is not UTC
with milliseconds, a level cowblkd does not write, keys out of order, a
value quoted wrongly, or bytes that are not UTF-8. The json format is read
with Python's json module, line by line.
"""
import json
import re
import sys

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "info", "warning", "error"}
TEXT_LEVELS = {"DEBUG": "debug", "INFO ": "info", "WARN ": "warning", "ERROR": "error"}
KEY = r"[a-z_][a-z0-9_]*"
PAIR = re.compile(r' (' + KEY + r')=("(?:\\.|[^"\\])*"|[^ "=]+)')


def logfmt_pairs(rest):
    """' k=v k="v v"' -> [(k, v), ...]; None unless the whole text is pairs."""
    pairs, pos = [], 0
    while pos < len(rest):
        m = PAIR.match(rest, pos)
        if not m:
            return None
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs.append((m.group(1), value))
        pos = m.end()
    return pairs


def parse(fmt, line):
    if fmt == "json":
        obj = json.loads(line, object_pairs_hook=list)
        if not all(isinstance(v, str) for _, v in obj):
            raise ValueError("a value that is not a string")
        pairs = obj
    elif fmt == "logfmt":
        pairs = logfmt_pairs(" " + line)
    else:
        m = re.match(r"^(\S+) (DEBUG|INFO |WARN |ERROR) (" + KEY + r")(.*)$", line)
        rest = logfmt_pairs(m.group(4)) if m else None
        pairs = None if rest is None else [
            ("ts", m.group(1)), ("level", TEXT_LEVELS[m.group(2)]), ("event", m.group(3))] + rest
    if pairs is None:
        raise ValueError("not " + fmt)
    if [k for k, _ in pairs[:3]] != ["ts", "level", "event"]:
        raise ValueError("keys do not start ts, level, event")
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key twice")
    record = dict(pairs)
    if not TS.match(record["ts"]) or record["level"] not in LEVELS:
        raise ValueError("bad ts or level")
    if not re.fullmatch(KEY, record["event"]):
        raise ValueError("bad event name")
    return record


def main():
    fmt, path = sys.argv[1], sys.argv[2]
    records = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
                if not line.endswith("\n"):
                    raise ValueError("no newline")
                records.append(parse(fmt, line[:-1]))
            except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError too
                sys.exit("%s:%d: %s: %r" % (path, n, e, raw))
    if not records:
        sys.exit(path + ": empty")
    json.dump(records, sys.stdout)


main()

#!/usr/bin/env python3
"""render_golden.py - the `render` command end to end on golden/live_ct.json.

Turns runs of consecutive records into get-entries bodies, runs
`<command> --format F --log-name N --log-url U --start I --seen 1700000000`
and compares every output line with the record's expected message, byte for
byte. Also checks that a malformed entry is reported on stderr by index,
that the entries around it still render, and that the exit status is 1.

With --names null the command runs without --absent-name-fields (its
default) and every expected full/lite message is the corpus's, rewritten to
the null form of absent subject/issuer keys (absent_names.py); without it
the command runs with --absent-name-fields omit and the corpus bytes are
expected as they are.

usage: render_golden.py --testdata DIR [--names null|omit] -- COMMAND [ARGS...]
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from absent_names import null_form  # noqa: E402

FORMATS = (("full", "expected_full"), ("lite", "expected_lite"), ("domains", "expected_domains_only"))


NAMES = "omit"


def run(cmd, body, fmt, rec, start):
    args = cmd + ["--format", fmt, "--log-name", rec["log_name"], "--log-url", rec["log_url"],
                  "--start", str(start), "--seen", "1700000000"]
    if NAMES == "omit":
        args += ["--absent-name-fields", "omit"]
    return subprocess.run(args, input=json.dumps(body).encode(), capture_output=True, timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--names", choices=("null", "omit"), default="omit")
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()
    global NAMES
    NAMES = a.names
    records = json.load(open(a.testdata + "/golden/live_ct.json"))
    if NAMES == "null":
        for r in records:
            r["expected_full"] = null_form(r["expected_full"])
            r["expected_lite"] = null_form(r["expected_lite"])
    runs = []
    for r in records:
        last = runs[-1][-1] if runs else None
        if last and last["log_url"] == r["log_url"] and last["cert_index"] + 1 == r["cert_index"]:
            runs[-1].append(r)
        else:
            runs.append([r])
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL:", what)

    for group in runs:
        body = {"entries": [{"leaf_input": r["leaf_input"], "extra_data": r["extra_data"]} for r in group]}
        for fmt, key in FORMATS:
            p = run(a.cmd, body, fmt, group[0], group[0]["cert_index"])
            lines = p.stdout.decode().split("\n")
            check(p.returncode == 0, "%s --format %s exit %d: %s" % (group[0]["name"], fmt, p.returncode, p.stderr.decode()))
            check(lines[-1] == "" and len(lines) == len(group) + 1, "%s --format %s: %d lines" % (group[0]["name"], fmt, len(lines) - 1))
            for r, line in zip(group, lines):
                check(line == r[key], "%s --format %s bytes" % (r["name"], fmt))

    # A malformed entry between two good ones: reported by index, skipped.
    g = runs[0][0]
    body = {"entries": [
        {"leaf_input": g["leaf_input"], "extra_data": g["extra_data"]},
        {"leaf_input": "AAAA", "extra_data": ""},
        {"leaf_input": "not base64!", "extra_data": ""},
        {"leaf_input": g["leaf_input"], "extra_data": g["extra_data"]},
    ]}
    p = run(a.cmd, body, "lite", g, g["cert_index"])
    lines = p.stdout.decode().split("\n")
    err = p.stderr.decode()
    check(p.returncode == 1, "malformed entry: exit status %d (want 1)" % p.returncode)
    check(len(lines) == 3 and lines[0] == g["expected_lite"], "malformed entry: good entries still render")
    check(("entry %d:" % (g["cert_index"] + 1)) in err and ("entry %d:" % (g["cert_index"] + 2)) in err,
          "malformed entries named on stderr: %r" % err)
    check(lines[1].startswith('{"message_type":"certificate_update"') and
          ('"cert_index":%d,' % (g["cert_index"] + 3)) in lines[1], "index advances past malformed entries")

    # Not a get-entries body at all.
    p = subprocess.run(a.cmd + ["--seen", "1"], input=b"[1,2", capture_output=True, timeout=60)
    check(p.returncode == 2, "bad body: exit status %d (want 2)" % p.returncode)

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())

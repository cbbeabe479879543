#!/usr/bin/env python3
"""accesslog_bench.py - what the access log costs per connection.

The access log writes nothing per message (a line is built when a
connection ends), so its cost is per connection. For each repeat, and for
each mode in the same run (off; to a file; to the server's own log), starts
the server (1 fanout worker, replaying the corpus slowly), opens --n short
connections one after another (GET /example.json, Connection: close, the
whole answer read) and records the fanout worker's CPU time (utime+stime
from /proc) per connection. Prints medians and the ratios to "off" as a
Markdown table.

Usage: accesslog_bench.py --server BIN --corpus FILE [--n 3000] [--repeats 5]
"""
import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Server, cpu_delta, cpu_snapshot, free_port  # noqa: E402

MODES = ("off", "file", "server log")


def run_once(args, d, mode):
    port = free_port()
    yaml = "workers: 1\nct_log:\n  state_file: %s\n" % os.path.join(d, "state.json")
    if mode != "off":
        yaml += "access_log:\n  enabled: true\n"
        if mode == "file":
            yaml += "  path: %s\n" % os.path.join(d, "access.log")
    try:
        with Server(os.path.abspath(args.server), d, port, yaml, replay=os.path.abspath(args.corpus), rate=1,
                    settle=1.5, tag="") as srv:
            fan = srv.fanout()
            req = b"GET /example.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            a = cpu_snapshot(fan)
            for _ in range(args.n):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(req)
                while s.recv(65536):
                    pass
                s.close()
            return 1e6 * sum(cpu_delta(a, cpu_snapshot(fan)).values()) / args.n
    finally:
        for name in ("access.log", "server.log", "state.json"):
            try:
                os.unlink(os.path.join(d, name))
            except FileNotFoundError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="cs-alogbench-")
    try:
        res = {m: [] for m in MODES}
        for r in range(args.repeats):
            for m in MODES:
                us = run_once(args, d, m)
                res[m].append(us)
                print("repeat %d %s: %.1f us of worker CPU per connection" % (r, m, us), file=sys.stderr)
        off = statistics.median(res["off"])
        print("| access log, %d connections per run, medians of %d | worker CPU per connection | vs off |"
              % (args.n, args.repeats))
        print("|---|---|---|")
        for m in MODES:
            v = statistics.median(res[m])
            print("| %s | %.1f µs | %.2f |" % (m, v, v / off))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

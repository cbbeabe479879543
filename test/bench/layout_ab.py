#!/usr/bin/env python3
"""layout_ab.py - server CPU per delivered message of two builds of the
server, measured in the same run (A and B alternate, repeat after repeat),
with the bundled load generator: N WebSocket clients of one stream, the
golden corpus replayed at --rate entries/s, one fanout worker. Used to
compare the ring record layouts (docs/benchmarks.md, "Ring record layout").

For each run: delivered messages/s (loadgen), server CPU (utime+stime of
every server process over the loadgen's window) and fanout CPU alone, per
delivered message. Medians per build and the ratio B/A of the medians.

usage: test/bench/layout_ab.py --a build-base --b build-rel [--clients 1000]
                               [--streams lite,full] [--rate 500] [--repeats 3]
"""
import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import measure_point  # noqa: E402
from benchlib import CORPUS, log  # noqa: E402


def point_args(build, a):
    build = os.path.abspath(build)
    return types.SimpleNamespace(
        server=os.path.join(build, "certstream-server"),
        loadgen=os.path.join(build, "test", "loadgen", "certstream-loadgen"),
        corpus=CORPUS,
        buffer_size=a.buffer_size, settle=1.0, duration=a.duration, warmup=a.warmup, ramp=2000,
        handshake_timeout=10, procs=0)


def per_msg(r):
    d = r["loadgen"].get("msgs_per_s") or r["loadgen"].get("rate")
    fan = sum(v for k, v in r["cpu"].items() if k.startswith("fanout"))
    return d, r["cpu_total"] / d * 1e6 if d else None, fan / d * 1e6 if d else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="build directory A (the baseline)")
    ap.add_argument("--b", required=True, help="build directory B")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--streams", default="lite")
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--buffer-size", type=int, default=20000)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir = tempfile.mkdtemp(prefix="cs-layout-ab-")
    try:
        for stream in a.streams.split(","):
            res = {"A": [], "B": []}
            for rep in range(a.repeats):
                for name, build in (("A", a.a), ("B", a.b)):
                    log("layout_ab: %s %s run %d" % (name, stream, rep + 1))
                    r = measure_point(point_args(build, a), 1, a.clients, stream, False, workdir, rate=a.rate)
                    if r.get("error"):
                        log("  error: %s" % r["error"])
                        continue
                    d, us, fus = per_msg(r)
                    res[name].append((d, us, fus))
                    print("%s %s run %d: %.0f msg/s delivered, server %.3f us/msg, fanout %.3f us/msg"
                          % (name, stream, rep + 1, d, us, fus), flush=True)
            med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in res.items() if v}
            if "A" in med and "B" in med:
                print("%s, %d clients, %g entries/s: A %.0f msg/s %.3f us/msg (fanout %.3f); "
                      "B %.0f msg/s %.3f us/msg (fanout %.3f); B/A server %.2f, fanout %.2f (medians of %d)"
                      % (stream, a.clients, a.rate, med["A"][0], med["A"][1], med["A"][2], med["B"][0], med["B"][1],
                         med["B"][2], med["B"][1] / med["A"][1], med["B"][2] / med["A"][2], a.repeats), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
